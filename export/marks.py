"""Mark drawings as mattes: the Sora mark (per DESIGN.md "The real mark"), a ring logo, user PNGs.

Why: synthetic clips need a mark whose alpha and per-pixel colour are known exactly, drawn from the
measured facts rather than from a copyrighted file. The Sora mark is a SOLID white cloud with two
dark oval pupils (each with a small white star highlight) that move from frame to frame, the white
"Sora" wordmark to its right and an optional "@username" line under it. Geometry is in reference
pixels of a 704-px-wide portrait picture (mark ≈152×50: cloud ≈52×50, text ≈81×27).

Compositing model (what matte inversion assumes), template alpha ``a``, colour ``W``, opacity ``o``::

    observed = a*o*W + (1 - a*o) * background
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

# Reference geometry (pixels at scale 1 = a picture whose short side is 704 px).
REF_SHORT_SIDE = 704
CLOUD_W, CLOUD_H = 52, 50
TEXT_GAP = 19
TEXT_W, TEXT_H = 81, 27
PUPIL_COLOR = (22, 22, 28)
PUPIL_RANGE = 2.0  # how far (reference px) the pupils wander from their rest position
_SS = 4  # supersampling for anti-aliased edges


@dataclass(frozen=True)
class Template:
    """A mark as a matte: ``alpha`` float32 [h, w] in 0..1 and ``color`` float32 [h, w, 3] 0..255."""

    alpha: np.ndarray
    color: np.ndarray

    def __post_init__(self) -> None:
        if self.alpha.ndim != 2 or self.color.shape != (*self.alpha.shape, 3):
            raise ValueError(f"template alpha {self.alpha.shape} and color {self.color.shape} disagree")
        if self.alpha.size == 0:
            raise ValueError("template is empty")

    @property
    def height(self) -> int:
        return int(self.alpha.shape[0])

    @property
    def width(self) -> int:
        return int(self.alpha.shape[1])

    def resized(self, width: int) -> "Template":
        """Same mark at another width (aspect kept); used for user PNGs and size variation."""
        width = max(4, int(round(width)))
        height = max(2, int(round(self.height * width / self.width)))
        return _downsample(self.alpha, self.alpha[..., None] * self.color, (width, height), Image.BILINEAR)


def _font(size: int) -> ImageFont.ImageFont:
    """Pillow's bundled scalable font (no system font files needed)."""
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow without FreeType: fixed bitmap font
        return ImageFont.load_default()


def _downsample(alpha: np.ndarray, premult: np.ndarray, size: tuple[int, int], resample) -> Template:
    """Resize a matte in premultiplied form (so dark pupils do not bleed white at their edges)."""
    a = np.asarray(Image.fromarray(alpha.astype(np.float32), mode="F").resize(size, resample), np.float32)
    pm = np.stack([np.asarray(Image.fromarray(premult[..., c].astype(np.float32), mode="F").resize(size, resample))
                   for c in range(3)], -1)
    a = np.clip(a, 0.0, 1.0)
    color = np.where(a[..., None] > 1e-4, pm / np.maximum(a[..., None], 1e-4), 255.0)
    return Template(a, np.clip(color, 0, 255).astype(np.float32))


def tight(t: Template, threshold: float = 0.004) -> tuple[Template, tuple[int, int]]:
    """Crop a matte to the pixels that carry the mark; returns it and the (x, y) offset removed."""
    ys, xs = np.nonzero(t.alpha > threshold)
    if ys.size == 0:
        raise ValueError("template has no visible pixels (alpha is zero everywhere)")
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    return Template(np.ascontiguousarray(t.alpha[y0:y1, x0:x1]),
                    np.ascontiguousarray(t.color[y0:y1, x0:x1])), (int(x0), int(y0))


def _star(draw: ImageDraw.ImageDraw, cx: float, cy: float, r: float, fill) -> None:
    k = r / 3
    draw.polygon([(cx, cy - r), (cx + k, cy - k), (cx + r, cy), (cx + k, cy + k), (cx, cy + r),
                  (cx - k, cy + k), (cx - r, cy), (cx - k, cy - k)], fill=fill)


def _draw_sora(username: str | None, eyes: tuple[float, float], text: bool) -> tuple[np.ndarray, np.ndarray]:
    """Supersampled alpha [H, W] and colour [H, W, 3] of the full-layout mark (text may be hidden)."""
    s = _SS
    width = (CLOUD_W + TEXT_GAP + max(TEXT_W, 0)) + 4
    uname_font = _font(int(12 * s))
    if username:
        width = max(width, CLOUD_W + TEXT_GAP + int(uname_font.getlength(username) / s) + 4)
    h = CLOUD_H + 2
    alpha = Image.new("L", (width * s, h * s), 0)
    rgb = Image.new("RGB", (width * s, h * s), (255, 255, 255))
    da, dc = ImageDraw.Draw(alpha), ImageDraw.Draw(rgb)

    def ell(cx, cy, rx, ry, a_fill, c_fill):
        box = ((cx - rx) * s, (cy - ry) * s, (cx + rx) * s, (cy + ry) * s)
        da.ellipse(box, fill=a_fill)
        dc.ellipse(box, fill=c_fill)

    # Solid cloud: three puffs over a rounded base, all opaque white.
    for cx, cy, r in ((14, 31, 13), (27, 19.5, 17.5), (40, 29, 12)):
        ell(cx, cy + 1, r, r, 255, (255, 255, 255))
    da.rounded_rectangle((1 * s, 26 * s, 51 * s, 50 * s), radius=11 * s, fill=255)
    # Two dark oval pupils that wander; each carries a small white star highlight.
    ex, ey = eyes
    for cx in (20.5, 32.5):
        px, py = cx + ex, 28.5 + ey
        ell(px, py, 3.6, 5.2, 255, PUPIL_COLOR)
        _star(dc, (px + 1.2) * s, (py - 2.2) * s, 1.7 * s, (255, 255, 255))
    if text:
        tx = CLOUD_W + TEXT_GAP
        size = _sora_font_size()
        ty = 25 if not username else 16
        da.text((tx * s, ty * s), "Sora", font=_font(size), fill=255, anchor="lm")
        if username:
            da.text((tx * s, 33 * s), username, font=uname_font, fill=255, anchor="lt")
    a = np.asarray(alpha, np.float32) / 255.0
    return a, np.asarray(rgb, np.float32)


@lru_cache(maxsize=1)
def _sora_font_size() -> int:
    """Supersampled font size whose "Sora" is TEXT_W reference pixels wide."""
    probe = _font(100)
    return max(8, int(round(100 * TEXT_W * _SS / max(probe.getlength("Sora"), 1.0))))


@lru_cache(maxsize=1024)
def _sora_cached(scale_milli: int, username: str | None, eyes: tuple[float, float], text: bool):
    scale = scale_milli / 1000.0
    a, c = _draw_sora(username, eyes, text)
    full_a, _ = _draw_sora(username, (0.0, 0.0), True)
    size = (max(4, int(round(a.shape[1] / _SS * scale))), max(2, int(round(a.shape[0] / _SS * scale))))
    t = _downsample(a, a[..., None] * c, size, Image.BOX)
    # Crop every variant to the FULL mark's box so all frames of a visit share one origin.
    ref = np.asarray(Image.fromarray(full_a, mode="F").resize(size, Image.BOX), np.float32)
    ys, xs = np.nonzero(ref > 0.004)
    x0, y0, x1, y1 = xs.min(), ys.min(), xs.max() + 1, ys.max() + 1
    return Template(np.ascontiguousarray(t.alpha[y0:y1, x0:x1]), np.ascontiguousarray(t.color[y0:y1, x0:x1]))


def sora_mark(scale: float = 1.0, *, username: str | None = None, eyes: tuple[float, float] = (0.0, 0.0),
              text: bool = True) -> Template:
    """The Sora mark at ``scale`` (1 = a 704-px picture), pupils offset by ``eyes`` (reference px).

    ``text=False`` is the frame or two before a jump when only the cloud remains; the array keeps the
    full mark's size so a visit's frames share one origin.
    """
    if scale <= 0:
        raise ValueError(f"mark scale must be > 0, got {scale}")
    q = (round(float(eyes[0]) * 2) / 2, round(float(eyes[1]) * 2) / 2)  # half-px steps: bounded cache
    t = _sora_cached(int(round(scale * 1000)), username or None, q, bool(text))
    return Template(t.alpha.copy(), t.color.copy())


def sora_scale_for_picture(width: int, height: int) -> float:
    """Sora sizes its mark by the picture (not the frame): 152 px wide on a 704-px short side."""
    return min(width, height) / REF_SHORT_SIDE


def pupil_offset(frame: int, phase: float = 0.0) -> tuple[float, float]:
    """Where the pupils look in a frame: a smooth wander within ±PUPIL_RANGE reference px."""
    t = frame / 30.0
    return (PUPIL_RANGE * float(np.sin(2.1 * t + phase)), 0.6 * PUPIL_RANGE * float(np.sin(1.3 * t + 2 * phase)))


def ring_mark(size: int) -> Template:
    """Another generator's logo for discovery tests: a white ring with three bars beside it."""
    if size < 8:
        raise ValueError(f"ring mark size must be >= 8 px, got {size}")
    s = _SS
    w, h = int(size * 1.9), size
    img = Image.new("L", (w * s, h * s), 0)
    d = ImageDraw.Draw(img)
    d.ellipse((0, 0, h * s - 1, h * s - 1), fill=255)
    inset = int(0.22 * h * s)
    d.ellipse((inset, inset, h * s - 1 - inset, h * s - 1 - inset), fill=0)
    bar_w = 0.16 * h
    for k, frac in enumerate((0.45, 0.75, 1.0)):
        x0 = h * 1.1 + k * bar_w * 1.6
        d.rectangle((x0 * s, (h - frac * h) * s, (x0 + bar_w) * s, h * s - 1), fill=255)
    a = np.asarray(img, np.float32) / 255.0
    t = _downsample(a, np.repeat(a[..., None] * 255.0, 3, axis=2), (w, h), Image.BOX)
    return tight(t)[0]


def template_from_png(path: str | Path) -> Template:
    """A user's own mark: a PNG with an alpha channel (RGB = mark colour)."""
    path = Path(path)
    try:
        with Image.open(path) as im:
            rgba = np.asarray(im.convert("RGBA"), np.float32)
    except (OSError, ValueError, ImportError) as exc:
        # ImportError: Ultralytics, once imported, patches Image.open to try a HEIF plugin on
        # unreadable files; an unreadable file is still just unreadable.
        raise ValueError(f"cannot read watermark template {path}: {exc}") from exc
    alpha = rgba[..., 3] / 255.0
    if float(alpha.min()) >= 1.0:
        raise ValueError(f"watermark template {path} has no transparency (needs an alpha channel)")
    return tight(Template(alpha, rgba[..., :3].copy()), threshold=0.02)[0]


# --------------------------------------------------------------------------------------------
# Compositing
# --------------------------------------------------------------------------------------------

def clip_rect(frame_w: int, frame_h: int, t: Template, x: int, y: int):
    """((fx0, fy0, fx1, fy1), (ty0, ty1, tx0, tx1)) of the visible part, or None."""
    x0, y0 = max(x, 0), max(y, 0)
    x1, y1 = min(x + t.width, frame_w), min(y + t.height, frame_h)
    if x1 <= x0 or y1 <= y0:
        return None
    return (x0, y0, x1, y1), (y0 - y, y1 - y, x0 - x, x1 - x)


def composite(frame: np.ndarray, template: Template, x: int, y: int, opacity: float) -> np.ndarray:
    """Return ``frame`` (uint8 [H,W,3]) with the mark at top-left (x, y); parts outside are cut."""
    if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(f"frame must be uint8 [H,W,3], got {frame.dtype} {frame.shape}")
    out = frame.copy()
    rect = clip_rect(frame.shape[1], frame.shape[0], template, x, y)
    if rect is None or opacity <= 0:
        return out
    (fx0, fy0, fx1, fy1), (ty0, ty1, tx0, tx1) = rect
    a = (template.alpha[ty0:ty1, tx0:tx1] * float(opacity))[..., None]
    bg = out[fy0:fy1, fx0:fx1].astype(np.float32)
    mixed = a * template.color[ty0:ty1, tx0:tx1] + (1.0 - a) * bg
    out[fy0:fy1, fx0:fx1] = np.clip(np.rint(mixed), 0, 255).astype(np.uint8)
    return out


def alpha_map(width: int, height: int, template: Template, x: int, y: int, opacity: float) -> np.ndarray:
    """Full-frame effective alpha (alpha * opacity), float32 [H, W]."""
    out = np.zeros((height, width), np.float32)
    rect = clip_rect(width, height, template, x, y)
    if rect is not None and opacity > 0:
        (fx0, fy0, fx1, fy1), (ty0, ty1, tx0, tx1) = rect
        out[fy0:fy1, fx0:fx1] = template.alpha[ty0:ty1, tx0:tx1] * float(opacity)
    return out


def color_map(width: int, height: int, template: Template, x: int, y: int) -> np.ndarray:
    """Full-frame mark colour W (float32 [H, W, 3]; 255 where the mark is absent)."""
    out = np.full((height, width, 3), 255.0, np.float32)
    rect = clip_rect(width, height, template, x, y)
    if rect is not None:
        (fx0, fy0, fx1, fy1), (ty0, ty1, tx0, tx1) = rect
        out[fy0:fy1, fx0:fx1] = template.color[ty0:ty1, tx0:tx1]
    return out

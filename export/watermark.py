"""A Sora-like watermark drawn by the project itself, its jumping positions, and synthetic clips.

Why: detector training, the quality benchmark and the pipeline tests all need videos whose clean
frames and true mark (box + alpha per frame) are known exactly. Everything here is deterministic
from a seed, so a clip's ground truth is regenerated instead of stored.

Compositing model (the one matte inversion assumes): with a template alpha ``a`` in [0, 1], colour
``W`` (0..255) and a per-frame opacity ``o``::

    observed = a*o*W + (1 - a*o) * background

Only numpy and Pillow are needed (PyAV only for :func:`make_clip`). No third-party logo files: the
icon is drawn from circles and text in Pillow's bundled font.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import math
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

LOGGER = logging.getLogger(__name__)

# Reference frame of the public position measurements (DESIGN.md): Sora landscape 1280x704.
REF_LANDSCAPE = (1280, 704)
REF_PORTRAIT = (704, 1280)
LANDSCAPE_BOXES = ((30, 68, 179, 118), (1112, 321, 1266, 367), (35, 585, 176, 638))
PORTRAIT_BOXES = ((25, 79, 173, 136), (538, 604, 685, 657), (28, 1029, 175, 1091))
# The mark jumps about every 67 frames at 30 fps.
JUMP_PERIOD_S = 67 / 30
# Template width (pixels) in a 1280x704 frame.
BASE_WIDTH = 150
DEFAULT_USERNAME = "@sora_user"


# --------------------------------------------------------------------------------------------
# Template
# --------------------------------------------------------------------------------------------

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
        a = Image.fromarray(self.alpha.astype(np.float32), mode="F").resize((width, height), Image.BILINEAR)
        rgb = Image.fromarray(np.clip(self.color, 0, 255).astype(np.uint8)).resize((width, height), Image.BILINEAR)
        return Template(np.clip(np.asarray(a, np.float32), 0, 1), np.asarray(rgb, np.float32))


def _font(size: int) -> ImageFont.ImageFont:
    """Pillow's bundled scalable font (no system font files needed)."""
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow without FreeType: fixed bitmap font
        return ImageFont.load_default()


def _tight(alpha: np.ndarray, color: np.ndarray, threshold: float = 0.02) -> Template:
    """Crop a matte to the pixels that carry the mark, so the template box IS the mark's box."""
    ys, xs = np.nonzero(alpha > threshold)
    if ys.size == 0:
        raise ValueError("template has no visible pixels (alpha is zero everywhere)")
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    return Template(np.ascontiguousarray(alpha[y0:y1, x0:x1]), np.ascontiguousarray(color[y0:y1, x0:x1]))


@lru_cache(maxsize=64)
def _sora_template_cached(width: int, username: str | None) -> Template:
    ss = 4  # supersampling for anti-aliased edges
    # Layout in units of the single-line height h: icon (1.15h wide), gap, "Sora" text.
    h = 40 * ss
    canvas_w = 190 * ss
    canvas_h = (h + (h * 5) // 8 + 8 * ss) if username else h + 8 * ss
    img = Image.new("L", (canvas_w, canvas_h), 0)
    draw = ImageDraw.Draw(img)
    # Cloud-like icon: outlined puffs (stroke opaque) with a faint fill, plus a small sparkle.
    cy = 4 * ss + h // 2
    puffs = ((0.30, 0.12, 0.22), (0.58, -0.05, 0.28), (0.86, 0.13, 0.20))
    stroke = max(2, int(0.07 * h))
    for fx, fy, fr in puffs:
        cx_, cy_, r = int(fx * h), int(cy + fy * h), int(fr * h)
        draw.ellipse((cx_ - r, cy_ - r, cx_ + r, cy_ + r), fill=80)
    draw.rounded_rectangle((int(0.10 * h), int(cy + 0.05 * h), int(1.06 * h), int(cy + 0.35 * h)),
                           radius=int(0.15 * h), fill=80)
    for fx, fy, fr in puffs:
        cx_, cy_, r = int(fx * h), int(cy + fy * h), int(fr * h)
        draw.arc((cx_ - r, cy_ - r, cx_ + r, cy_ + r), 160, 380, fill=255, width=stroke)
    draw.line((int(0.10 * h), int(cy + 0.35 * h), int(1.06 * h), int(cy + 0.35 * h)), fill=255, width=stroke)
    # Sparkle (four-pointed star) inside the cloud.
    sx, sy, sr = int(0.58 * h), int(cy + 0.10 * h), int(0.13 * h)
    draw.polygon([(sx, sy - sr), (sx + sr // 3, sy - sr // 3), (sx + sr, sy), (sx + sr // 3, sy + sr // 3),
                  (sx, sy + sr), (sx - sr // 3, sy + sr // 3), (sx - sr, sy), (sx - sr // 3, sy - sr // 3)],
                 fill=255)
    text_x = int(1.30 * h)
    draw.text((text_x, cy), "Sora", font=_font(int(0.95 * h)), fill=245, anchor="lm",
              stroke_width=max(1, ss // 2), stroke_fill=245)
    if username:
        draw.text((text_x, cy + int(0.62 * h)), username, font=_font(int(0.48 * h)), fill=225, anchor="lt")
    alpha = np.asarray(img, np.float32) / 255.0
    color = np.full((*alpha.shape, 3), 255.0, np.float32)
    big = _tight(alpha, color)
    # Downsample to the requested width with a box filter (true area average of the supersampled mark).
    height = max(2, int(round(big.height * width / big.width)))
    a = Image.fromarray(big.alpha, mode="F").resize((width, height), Image.BOX)
    alpha_small = np.clip(np.asarray(a, np.float32), 0.0, 1.0)
    return _tight(alpha_small, np.full((*alpha_small.shape, 3), 255.0, np.float32), threshold=0.004)


def sora_template(width: int = BASE_WIDTH, username: str | None = DEFAULT_USERNAME) -> Template:
    """The project's Sora-like mark: cloud icon + "Sora" (+ an "@username" line), white."""
    if width < 8:
        raise ValueError(f"template width must be >= 8 px, got {width}")
    t = _sora_template_cached(int(width), username or None)
    return Template(t.alpha.copy(), t.color.copy())


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
    return _tight(alpha, rgba[..., :3].copy())


def template_for_frame(width: int, height: int, *, username: str | None = DEFAULT_USERNAME,
                       template: Template | None = None, scale: float = 1.0) -> Template:
    """The mark at the size Sora uses for a frame of this size (150 px wide at 1280x704)."""
    ref_w, ref_h = REF_LANDSCAPE if width >= height else REF_PORTRAIT
    factor = min(width / ref_w, height / ref_h) * scale
    target = max(12, int(round(BASE_WIDTH * factor)))
    if template is not None:
        return template.resized(target)
    return sora_template(target, username)


# --------------------------------------------------------------------------------------------
# Compositing
# --------------------------------------------------------------------------------------------

def _clip_rect(frame_w: int, frame_h: int, t: Template, x: int, y: int):
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
    rect = _clip_rect(frame.shape[1], frame.shape[0], template, x, y)
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
    rect = _clip_rect(width, height, template, x, y)
    if rect is not None and opacity > 0:
        (fx0, fy0, fx1, fy1), (ty0, ty1, tx0, tx1) = rect
        out[fy0:fy1, fx0:fx1] = template.alpha[ty0:ty1, tx0:tx1] * float(opacity)
    return out


# --------------------------------------------------------------------------------------------
# Positions
# --------------------------------------------------------------------------------------------

def sora_slots(width: int, height: int, tw: int, th: int) -> list[tuple[int, int]]:
    """Top-left corners of the three Sora positions for a frame, for a ``tw`` x ``th`` mark.

    Public boxes are measured on 1280x704 (or 704x1280); they are scaled to the frame, the mark is
    anchored to the nearer side horizontally and centred vertically on the box, and kept inside.
    """
    landscape = width >= height
    ref_w, ref_h = REF_LANDSCAPE if landscape else REF_PORTRAIT
    boxes = LANDSCAPE_BOXES if landscape else PORTRAIT_BOXES
    sx, sy = width / ref_w, height / ref_h
    slots = []
    for x1, y1, x2, y2 in boxes:
        if (x1 + x2) / 2 > ref_w / 2:
            x = int(round(x2 * sx)) - tw
        else:
            x = int(round(x1 * sx))
        y = int(round((y1 + y2) / 2 * sy - th / 2))
        slots.append((min(max(x, 0), max(width - tw, 0)), min(max(y, 0), max(height - th, 0))))
    return slots


@dataclass(frozen=True)
class Placement:
    """Where the mark is in one frame: top-left (x, y), effective opacity (0 = absent), slot index."""

    x: int
    y: int
    opacity: float
    slot: int


def sora_schedule(n_frames: int, *, width: int, height: int, fps: float, tw: int, th: int,
                  opacity: float = 0.7, period_s: float = JUMP_PERIOD_S, fade_frames: int = 2,
                  jitter: int = 1, start_slot: int = 0, seed: int = 0) -> list[Placement]:
    """Sora-like placements: slot 0 → 1 → 2 → 0 …, a jump every ``period_s``.

    Around each jump the opacity ramps over ``fade_frames`` (0 = hard cut). ``jitter`` is a small
    per-segment offset (constant inside a segment, as the real mark repeats its positions).
    """
    if n_frames < 0 or fps <= 0:
        raise ValueError(f"bad schedule: n_frames={n_frames}, fps={fps}")
    if not 0.0 <= opacity <= 1.0:
        raise ValueError(f"opacity must be in [0, 1], got {opacity}")
    rng = np.random.default_rng(seed)
    slots = sora_slots(width, height, tw, th)
    period = max(1, int(round(period_s * fps)))
    out: list[Placement] = []
    seg_offsets: dict[int, tuple[int, int]] = {}
    for i in range(n_frames):
        seg, j = divmod(i, period)
        seg_len = min(period, n_frames - seg * period)
        if seg not in seg_offsets:
            seg_offsets[seg] = tuple(int(v) for v in rng.integers(-jitter, jitter + 1, 2)) if jitter else (0, 0)
        slot = (start_slot + seg) % 3
        dx, dy = seg_offsets[seg]
        x = min(max(slots[slot][0] + dx, 0), max(width - tw, 0))
        y = min(max(slots[slot][1] + dy, 0), max(height - th, 0))
        fade = 1.0
        if fade_frames > 0:
            first = seg > 0  # no fade-in at the very start of the clip
            last = seg * period + seg_len < n_frames
            if first:
                fade = min(fade, (j + 1) / (fade_frames + 1))
            if last:
                fade = min(fade, (seg_len - j) / (fade_frames + 1))
        out.append(Placement(x, y, round(opacity * fade, 6), slot))
    return out


# --------------------------------------------------------------------------------------------
# Backgrounds
# --------------------------------------------------------------------------------------------

def _package_file(package: str, *parts: str) -> Path | None:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]).joinpath(*parts)
    return path if path.exists() else None


# Natural photographs that ship inside installed packages (used when present).
PHOTO_SOURCES: dict[str, tuple[str, tuple[str, ...]]] = {
    "astronaut": ("skimage", ("data", "astronaut.png")),
    "coffee": ("skimage", ("data", "coffee.png")),
    "chelsea": ("skimage", ("data", "chelsea.png")),
    "rocket": ("skimage", ("data", "rocket.jpg")),
    "motorcycle": ("skimage", ("data", "motorcycle_left.png")),
    "hubble": ("skimage", ("data", "hubble_deep_field.jpg")),
    "retina": ("skimage", ("data", "retina.jpg")),
    "brick": ("skimage", ("data", "brick.png")),
    "grass": ("skimage", ("data", "grass.png")),
    "gravel": ("skimage", ("data", "gravel.png")),
    "camera": ("skimage", ("data", "camera.png")),
    "page": ("skimage", ("data", "page.png")),
    "coins": ("skimage", ("data", "coins.png")),
    "grace_hopper": ("matplotlib", ("mpl-data", "sample_data", "grace_hopper.jpg")),
}
# Held out from detector training so evaluation clips have backgrounds the model never saw.
HELDOUT_PHOTOS = ("chelsea", "grace_hopper")
PROCEDURAL_KINDS = ("texture", "gradient", "stripes")


def available_photos() -> list[str]:
    return [name for name, (pkg, parts) in PHOTO_SOURCES.items() if _package_file(pkg, *parts)]


@lru_cache(maxsize=32)
def _load_photo(name: str) -> np.ndarray:
    pkg, parts = PHOTO_SOURCES[name]
    path = _package_file(pkg, *parts)
    if path is None:
        raise ValueError(f"background photo {name!r} is not installed ({pkg})")
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"), np.uint8)


def _smooth_noise(rng: np.random.Generator, w: int, h: int, cells: int, channels: int = 3) -> np.ndarray:
    """Value noise in 0..1: random grid upsampled bicubically."""
    gw, gh = max(2, cells), max(2, int(round(cells * h / max(w, 1))))
    grid = rng.random((gh, gw, channels)).astype(np.float32)
    ups = [np.asarray(Image.fromarray(grid[..., c], mode="F").resize((w, h), Image.BICUBIC)) for c in range(channels)]
    return np.clip(np.stack(ups, -1), 0, 1)


def _procedural(kind: str, rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    """A smooth procedural picture, computed at half resolution (4x cheaper) and upscaled."""
    full_w, full_h = w, h
    w, h = max(2, w // 2), max(2, h // 2)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    c0, c1 = rng.random(3) * 255, rng.random(3) * 255
    if kind == "gradient":
        ang = rng.random() * 2 * math.pi
        t = (np.cos(ang) * xx + np.sin(ang) * yy)
        t = (t - t.min()) / max(float(np.ptp(t)), 1.0)
        img = c0 + (c1 - c0) * t[..., None]
        img += (_smooth_noise(rng, w, h, 6) - 0.5) * 60
    elif kind == "stripes":
        f = 2 * math.pi / rng.uniform(6, 40)  # half-resolution pixels
        ang = rng.random() * math.pi
        t = 0.5 + 0.5 * np.sin(f * (np.cos(ang) * xx + np.sin(ang) * yy))
        img = c0 + (c1 - c0) * t[..., None] + (_smooth_noise(rng, w, h, 10) - 0.5) * 50
    else:  # texture: multi-octave coloured value noise
        img = np.zeros((h, w, 3), np.float32)
        amp, total = 1.0, 0.0
        for cells in (4, 12, 40, 120):
            img += amp * _smooth_noise(rng, w, h, cells)
            total += amp
            amp *= 0.55
        img = img / total
        img = (img - img.min()) / max(float(np.ptp(img)), 1e-6)
        img = c0 * (1 - img) + c1 * img
    small = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))
    return np.asarray(small.resize((full_w, full_h), Image.BILINEAR))


class Background:
    """A deterministic moving background: a large canvas seen through a panning, zooming camera.

    ``frame(i)`` depends only on (kind, seed, size, fps, i), so clean frames can be regenerated.
    """

    def __init__(self, width: int, height: int, *, fps: float = 30.0, seed: int = 0,
                 kind: str | None = None, motion: float = 1.0, objects: int | None = None) -> None:
        self.width, self.height, self.fps = int(width), int(height), float(fps)
        rng = np.random.default_rng([seed, 7])
        photos = available_photos()
        # Draw from the full list (installed or not) so a seed means the same thing everywhere
        # the photo exists; a missing photo falls back to a procedural kind.
        kinds = [f"photo:{p}" for p in PHOTO_SOURCES] + list(PROCEDURAL_KINDS)
        drawn = kinds[int(rng.integers(len(kinds)))]
        if drawn.startswith("photo:") and drawn[6:] not in photos:
            drawn = PROCEDURAL_KINDS[len(drawn) % len(PROCEDURAL_KINDS)]
        self.kind = kind or drawn
        margin = 1.35
        cw, ch = int(self.width * margin) + 8, int(self.height * margin) + 8
        if self.kind.startswith("photo:"):
            src = _load_photo(self.kind.split(":", 1)[1])
            scale = max(cw / src.shape[1], ch / src.shape[0])
            im = Image.fromarray(src).resize((max(cw, int(src.shape[1] * scale + 1)),
                                              max(ch, int(src.shape[0] * scale + 1))), Image.BICUBIC)
            canvas = np.asarray(im)[:ch, :cw]
        elif self.kind in PROCEDURAL_KINDS:
            canvas = _procedural(self.kind, rng, cw, ch)
        else:
            raise ValueError(f"unknown background kind {self.kind!r}; photos: {photos}, or {PROCEDURAL_KINDS}")
        self.canvas = Image.fromarray(np.ascontiguousarray(canvas))
        self.cw, self.ch = cw, ch
        # Camera path: slow pan + sinusoidal shake + gentle zoom (amplitudes in output pixels).
        amp = motion * min(self.width, self.height) * 0.08
        self.pan = rng.uniform(-1, 1, 2) * amp * 0.6
        self.shake_amp = rng.uniform(0.3, 1.0, 2) * amp
        self.shake_f = rng.uniform(0.05, 0.3, 2)
        self.shake_ph = rng.uniform(0, 2 * math.pi, 2)
        self.zoom_amp = motion * rng.uniform(0.0, 0.06)
        self.zoom_f = rng.uniform(0.05, 0.2)
        n_obj = int(rng.integers(0, 3)) if objects is None else objects
        self.objects = [
            dict(color=tuple(int(c) for c in rng.integers(0, 256, 3)),
                 r=float(rng.uniform(0.04, 0.12) * min(self.width, self.height)),
                 p0=rng.uniform(0, 1, 2), v=rng.uniform(-0.15, 0.15, 2))
            for _ in range(n_obj)
        ]

    def frame(self, i: int) -> np.ndarray:
        t = i / self.fps
        zoom = 1.0 + self.zoom_amp * (1 + math.sin(2 * math.pi * self.zoom_f * t)) / 2 * 2
        off = self.pan * t / 4.0 + self.shake_amp * np.sin(2 * math.pi * self.shake_f * t + self.shake_ph)
        cx = self.cw / 2 + float(off[0])
        cy = self.ch / 2 + float(off[1])
        inv = 1.0 / zoom
        # Output (x, y) samples canvas (cx + (x - W/2)/zoom, cy + (y - H/2)/zoom).
        coeffs = (inv, 0.0, cx - self.width / 2 * inv, 0.0, inv, cy - self.height / 2 * inv)
        im = self.canvas.transform((self.width, self.height), Image.AFFINE, coeffs, resample=Image.BILINEAR)
        if self.objects:
            draw = ImageDraw.Draw(im)
            for ob in self.objects:
                px = ((ob["p0"][0] + ob["v"][0] * t) % 1.2 - 0.1) * self.width
                py = ((ob["p0"][1] + ob["v"][1] * t) % 1.2 - 0.1) * self.height
                r = ob["r"]
                draw.ellipse((px - r, py - r * 0.7, px + r, py + r * 0.7), fill=ob["color"])
        return np.asarray(im, np.uint8)


# --------------------------------------------------------------------------------------------
# Synthetic clips with ground truth
# --------------------------------------------------------------------------------------------

@dataclass
class ClipTruth:
    """Ground truth of a synthetic clip, regenerated from its parameters (no frames stored).

    ``boxes[i]`` is the mark's (x1, y1, x2, y2) in frame i (exclusive right/bottom, clipped to the
    frame) or None when the mark is absent; ``placements[i].opacity`` is its effective opacity.
    The first position is ``seed % 3`` (so clips of different seeds start in different corners).
    """

    width: int
    height: int
    fps: float
    n_frames: int
    seed: int = 0
    opacity: float = 0.7
    username: str | None = DEFAULT_USERNAME
    template_png: str | None = None
    background: str | None = None
    fade_frames: int = 2
    jitter: int = 1
    mark_scale: float = 1.0
    template: Template = field(init=False, repr=False)
    placements: list[Placement] = field(init=False, repr=False)
    boxes: list[tuple[int, int, int, int] | None] = field(init=False, repr=False)
    _bg: Background = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.width <= 0 or self.height <= 0 or self.n_frames < 0 or self.fps <= 0:
            raise ValueError(f"bad clip size {self.width}x{self.height}, {self.n_frames} frames at {self.fps} fps")
        user_t = template_from_png(self.template_png) if self.template_png else None
        self.template = template_for_frame(self.width, self.height, username=self.username,
                                           template=user_t, scale=self.mark_scale)
        self.placements = sora_schedule(
            self.n_frames, width=self.width, height=self.height, fps=self.fps,
            tw=self.template.width, th=self.template.height, opacity=self.opacity,
            fade_frames=self.fade_frames, jitter=self.jitter, start_slot=self.seed % 3, seed=self.seed)
        self.boxes = []
        for p in self.placements:
            rect = _clip_rect(self.width, self.height, self.template, p.x, p.y)
            self.boxes.append(rect[0] if rect is not None and p.opacity > 0 else None)
        self._bg = Background(self.width, self.height, fps=self.fps, seed=self.seed, kind=self.background)
        self.background = self._bg.kind


    def clean_frame(self, i: int) -> np.ndarray:
        if not 0 <= i < self.n_frames:
            raise IndexError(f"frame {i} outside 0..{self.n_frames - 1}")
        return self._bg.frame(i)

    def marked_frame(self, i: int) -> np.ndarray:
        p = self.placements[i]
        return composite(self.clean_frame(i), self.template, p.x, p.y, p.opacity)

    def alpha(self, i: int) -> np.ndarray:
        """Effective alpha (template alpha * opacity) over the whole frame, float32 [H, W]."""
        p = self.placements[i]
        return alpha_map(self.width, self.height, self.template, p.x, p.y, p.opacity)

    def mask(self, i: int, threshold: float = 0.01) -> np.ndarray:
        return self.alpha(i) > threshold

    def params(self) -> dict:
        keys = ("width", "height", "fps", "n_frames", "seed", "opacity", "username", "template_png",
                "background", "fade_frames", "jitter", "mark_scale")
        return {k: getattr(self, k) for k in keys}

    def save(self, path: str | Path) -> None:
        """Write parameters + boxes as JSON; :meth:`load` regenerates everything else."""
        data = self.params()
        data["boxes"] = self.boxes
        data["placements"] = [asdict(p) for p in self.placements]
        Path(path).write_text(json.dumps(data, indent=1))

    @classmethod
    def load(cls, path: str | Path) -> "ClipTruth":
        data = json.loads(Path(path).read_text())
        keys = ("width", "height", "fps", "n_frames", "seed", "opacity", "username", "template_png",
                "background", "fade_frames", "jitter", "mark_scale")
        return cls(**{k: data[k] for k in keys if k in data})


def _tone(n: int, start: int, rate: int, seed: int) -> np.ndarray:
    """A quiet chord that changes pitch every second: audio a remover must pass through untouched."""
    t = (np.arange(start, start + n) / rate).astype(np.float64)
    base = 220.0 * (1.0 + (seed % 5) / 10)
    pitch = base * (1.0 + 0.25 * (np.floor(t) % 3))
    left = 0.15 * np.sin(2 * np.pi * pitch * t) + 0.05 * np.sin(2 * np.pi * 2.5 * pitch * t)
    right = 0.15 * np.sin(2 * np.pi * pitch * 1.5 * t)
    return np.stack([left, right]).astype(np.float32)


def make_clip(path: str | Path, *, width: int = 640, height: int = 360, fps: float = 30.0,
              seconds: float = 4.0, opacity: float = 0.7, audio: bool = True, seed: int = 0,
              template: str | Path | None = None, username: str | None = DEFAULT_USERNAME,
              background: str | None = None, fade_frames: int = 2, jitter: int = 1,
              mark_scale: float = 1.0, crf: int = 18, preset: str = "veryfast",
              marked: bool = True) -> ClipTruth:
    """Write an H.264 mp4 (yuv420p, optional AAC stereo) with the mark, and return its ground truth.

    ``template`` is an optional user PNG with alpha; ``marked=False`` writes the clean clip instead
    (same truth, for reference encodes).
    """
    import av  # PyAV: only needed to write files

    if width % 2 or height % 2:
        raise ValueError(f"H.264 yuv420p needs even width and height, got {width}x{height}")
    if seconds <= 0:
        raise ValueError(f"seconds must be > 0, got {seconds}")
    n_frames = max(1, int(round(seconds * fps)))
    truth = ClipTruth(width, height, float(fps), n_frames, seed=seed, opacity=opacity, username=username,
                      template_png=str(template) if template else None, background=background,
                      fade_frames=fade_frames, jitter=jitter, mark_scale=mark_scale)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rate = Fraction(fps).limit_denominator(1001)
    with av.open(str(path), mode="w") as container:
        vs = container.add_stream("libx264", rate=rate)
        vs.width, vs.height, vs.pix_fmt = width, height, "yuv420p"
        vs.options = {"crf": str(crf), "preset": preset}
        astream = None
        if audio:
            sr = 48000
            astream = container.add_stream("aac", rate=sr)
            astream.layout = "stereo"
        for i in range(n_frames):
            img = truth.marked_frame(i) if marked else truth.clean_frame(i)
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts = i
            frame.time_base = 1 / rate
            for packet in vs.encode(frame):
                container.mux(packet)
        for packet in vs.encode():
            container.mux(packet)
        if astream is not None:
            total = int(round(n_frames / float(rate) * sr))
            chunk = 1024
            for start in range(0, total, chunk):
                n = min(chunk, total - start)
                af = av.AudioFrame.from_ndarray(_tone(n, start, sr, seed), format="fltp", layout="stereo")
                af.sample_rate = sr
                af.pts = start
                for packet in astream.encode(af):
                    container.mux(packet)
            for packet in astream.encode():
                container.mux(packet)
    LOGGER.info("wrote %s: %dx%d, %d frames at %s fps, background %s", path, width, height, n_frames,
                fps, truth.background)
    return truth


def main(argv: list[str] | None = None) -> int:
    """CLI: write a sample clip with the mark (and its ground truth JSON beside it)."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(description="Write a synthetic clip with a Sora-like watermark")
    parser.add_argument("--out", type=Path, required=True, help="output .mp4")
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=360)
    parser.add_argument("--fps", type=float, default=30.0)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--opacity", type=float, default=0.7)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--template", type=Path, help="your own mark: PNG with alpha")
    parser.add_argument("--username", default=DEFAULT_USERNAME, help="'' for no username line")
    parser.add_argument("--background", help="photo:<name> or " + "/".join(PROCEDURAL_KINDS))
    parser.add_argument("--no-audio", action="store_true")
    parser.add_argument("--clean", action="store_true", help="write the clip WITHOUT the mark")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        truth = make_clip(args.out, width=args.width, height=args.height, fps=args.fps, seconds=args.seconds,
                          opacity=args.opacity, audio=not args.no_audio, seed=args.seed, template=args.template,
                          username=args.username or None, background=args.background, marked=not args.clean)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    truth.save(args.out.with_suffix(".truth.json"))
    print(args.out)
    return 0


__all__ = [
    "Template", "sora_template", "template_from_png", "template_for_frame", "composite", "alpha_map",
    "sora_slots", "sora_schedule", "Placement", "Background", "ClipTruth", "make_clip",
    "available_photos", "HELDOUT_PHOTOS", "PHOTO_SOURCES", "PROCEDURAL_KINDS",
]


if __name__ == "__main__":
    raise SystemExit(main())

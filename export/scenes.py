"""Moving backgrounds for synthetic clips: photos when installed, else procedural scenes.

Why: detection and removal must be judged on footage-like content — bright walls and skies, dark
hair-like texture, textured ceilings, saturated objects, faces (two dark eyes look like the cloud's)
and on-screen text — not only on smooth noise. Everything is procedural and deterministic from a
seed (no real photos are needed offline); a camera pans, shakes and zooms over a larger canvas.
"""

from __future__ import annotations

import importlib.util
import math
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from export.marks import _font

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


SCENE_KINDS = ("sky", "wall", "hair", "ceiling", "saturated", "night")
CAPTIONS = ("and then we went outside", "Breaking: storms tonight", "I can't believe it!", "Chapter 2",
            "LIVE 18:42", "subscribe for more", "Tokyo, 2031", "what do you think?", "SALE 50%")


def _hsv(h: float, s: float, v: float) -> tuple[int, int, int]:
    import colorsys

    return tuple(int(round(c * 255)) for c in colorsys.hsv_to_rgb(h % 1.0, s, v))


def _scene(kind: str, rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    """A footage-like still (uint8 [h, w, 3]) that the camera moves over."""
    yy = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
    fine = (_smooth_noise(rng, w, h, max(8, w // 3), 1) - 0.5)
    if kind == "sky":  # bright: blue to hazy white with soft clouds
        top, low = np.array([95, 150, 225]) + rng.uniform(-15, 15, 3), np.array([236, 240, 248])
        img = top + (low - top) * yy ** 0.7
        cloud = np.clip((_smooth_noise(rng, w, h, 7, 1) * 0.6 + _smooth_noise(rng, w, h, 25, 1) * 0.4 - 0.45) * 3,
                        0, 1)
        img = img * (1 - cloud) + 250 * cloud + fine * 6
    elif kind == "wall":  # bright plaster with mottling, a light gradient and a door-frame edge
        base = np.array([235, 228, 214]) + rng.uniform(-12, 12, 3)
        img = base * (0.9 + 0.1 * yy) + (_smooth_noise(rng, w, h, 12, 1) - 0.5) * 18 + fine * 14
        x0 = int(rng.uniform(0.55, 0.85) * w)
        img[:, x0:x0 + max(3, w // 40)] *= 0.78
    elif kind == "hair":  # dark, fine, oriented strands
        img = np.zeros((h, w, 3), np.float32) + np.array([28, 20, 16])
        layer = Image.fromarray(img.astype(np.uint8))
        d = ImageDraw.Draw(layer)
        flow = _smooth_noise(rng, w, h, 5, 1)[..., 0] * math.pi * 1.5 + rng.uniform(0, math.pi)
        for _ in range(w * h // 90):
            x, y = rng.uniform(0, w), rng.uniform(0, h)
            shade = int(rng.uniform(30, 95))
            pts = [(x, y)]
            for _ in range(int(rng.integers(6, 16))):
                a = flow[int(min(y, h - 1)) if y > 0 else 0, int(min(x, w - 1)) if x > 0 else 0]
                x, y = x + 4 * math.cos(a), y + 4 * math.sin(a)
                pts.append((x, y))
            d.line(pts, fill=(shade, int(shade * 0.75), int(shade * 0.55)), width=1)
        return np.asarray(layer)
    elif kind == "ceiling":  # light tiles with popcorn texture and a lamp glow
        img = np.zeros((h, w, 3), np.float32) + rng.uniform(195, 215)
        img += (_smooth_noise(rng, w, h, max(8, w // 2), 1) - 0.5) * 40
        step = int(rng.uniform(0.12, 0.2) * min(w, h))
        img[:, ::step] *= 0.72
        img[::step, :] *= 0.72
        lx, ly = rng.uniform(0.2, 0.8) * w, rng.uniform(0.2, 0.8) * h
        xx = np.arange(w, dtype=np.float32)[None, :]
        glow = np.exp(-(((xx - lx) ** 2 + ((yy[..., 0] * h) - ly) ** 2) / (0.08 * w * h)))
        img = img * (0.8 + 0.3 * glow[..., None])
    elif kind == "saturated":  # strongly coloured objects on a coloured ground
        img = np.zeros((h, w, 3), np.float32) + np.array(_hsv(rng.random(), 0.9, 0.7))
        layer = Image.fromarray(img.astype(np.uint8))
        d = ImageDraw.Draw(layer)
        for _ in range(int(rng.integers(14, 26))):
            r = rng.uniform(0.05, 0.18) * min(w, h)
            cx, cy = rng.uniform(0, w), rng.uniform(0, h)
            box = (cx - r, cy - r * rng.uniform(0.5, 1.2), cx + r, cy + r * rng.uniform(0.5, 1.2))
            fill = _hsv(rng.random(), rng.uniform(0.8, 1.0), rng.uniform(0.75, 1.0))
            (d.ellipse if rng.random() < 0.5 else d.rectangle)(box, fill=fill)
        img = np.asarray(layer, np.float32) * (0.85 + 0.15 * yy) + fine * 8
    else:  # night: dark ground, dim lights
        img = np.zeros((h, w, 3), np.float32) + np.array([10, 12, 22]) * (0.6 + yy)
        img += _smooth_noise(rng, w, h, 9, 3) * 25
        for _ in range(int(rng.integers(5, 12))):
            cx, cy, r = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(2, 0.03 * min(w, h))
            xx = np.arange(w, dtype=np.float32)[None, :]
            g = np.exp(-(((xx - cx) ** 2 + ((yy[..., 0] * h) - cy) ** 2) / (2 * r * r)))
            img += g[..., None] * np.array(_hsv(rng.random(), 0.5, 0.8)) * 0.8
        img += fine * 4
    return np.clip(img, 0, 255).astype(np.uint8)


def _draw_face(draw: ImageDraw.ImageDraw, cx: float, cy: float, r: float, skin, t: float) -> None:
    """A face-like shape: skin oval, hair cap, two eyes with dark pupils, a talking mouth."""
    draw.ellipse((cx - r * 1.05, cy - r * 1.45, cx + r * 1.05, cy + r * 0.2), fill=(30, 22, 18))
    draw.ellipse((cx - r, cy - r * 1.25, cx + r, cy + r * 1.25), fill=skin)
    for side in (-1, 1):
        ex, ey = cx + side * r * 0.38, cy - r * 0.2
        draw.ellipse((ex - r * 0.2, ey - r * 0.11, ex + r * 0.2, ey + r * 0.11), fill=(240, 240, 235))
        draw.ellipse((ex - r * 0.09, ey - r * 0.1, ex + r * 0.09, ey + r * 0.1), fill=(25, 20, 20))
        draw.line((ex - r * 0.22, ey - r * 0.25, ex + r * 0.22, ey - r * 0.28), fill=(40, 30, 25),
                  width=max(1, int(r * 0.06)))
    open_ = r * (0.05 + 0.12 * abs(math.sin(7.0 * t)))
    draw.ellipse((cx - r * 0.3, cy + r * 0.55 - open_, cx + r * 0.3, cy + r * 0.55 + open_), fill=(120, 40, 45))


class Background:
    """A deterministic moving background: a large canvas seen through a panning, zooming camera.

    ``frame(i)`` depends only on the constructor's arguments and ``i``, so clean frames can be
    regenerated. ``faces`` moving face-like shapes and ``captions`` (subtitles that change every
    ~2 s) are drawn over the scene per frame.
    """

    def __init__(self, width: int, height: int, *, fps: float = 30.0, seed: int = 0,
                 kind: str | None = None, motion: float = 1.0, objects: int | None = None,
                 faces: int = 0, captions: bool = False, face_size: tuple[float, float] = (0.08, 0.16)) -> None:
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
        elif self.kind in SCENE_KINDS:
            canvas = _scene(self.kind, rng, cw, ch)
        else:
            raise ValueError(f"unknown background kind {self.kind!r}; photos: {photos}, "
                             f"or {PROCEDURAL_KINDS + SCENE_KINDS}")
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
        self.faces = [
            dict(skin=tuple(int(c) for c in np.array([225, 180, 150]) * rng.uniform(0.45, 1.05)),
                 r=float(rng.uniform(*face_size) * min(self.width, self.height)),
                 p0=rng.uniform(0.2, 0.8, 2), v=rng.uniform(-0.04, 0.04, 2), ph=rng.uniform(0, 6.3))
            for _ in range(faces)
        ]
        self.captions = [CAPTIONS[int(k)] for k in rng.integers(0, len(CAPTIONS), 16)] if captions else []
        self.caption_period = float(rng.uniform(1.5, 2.5))

    def _camera(self, t: float) -> tuple[float, ...]:
        zoom = 1.0 + self.zoom_amp * (1 + math.sin(2 * math.pi * self.zoom_f * t)) / 2 * 2
        off = self.pan * t / 4.0 + self.shake_amp * np.sin(2 * math.pi * self.shake_f * t + self.shake_ph)
        cx = self.cw / 2 + float(off[0])
        cy = self.ch / 2 + float(off[1])
        inv = 1.0 / zoom
        # Output (x, y) samples canvas (cx + (x - W/2)/zoom, cy + (y - H/2)/zoom).
        return (inv, 0.0, cx - self.width / 2 * inv, 0.0, inv, cy - self.height / 2 * inv)

    def frame(self, i: int) -> np.ndarray:
        t = i / self.fps
        im = self.canvas.transform((self.width, self.height), Image.AFFINE, self._camera(t),
                                   resample=Image.BILINEAR)
        if self.objects or self.faces or self.captions:
            draw = ImageDraw.Draw(im)
            for ob in self.objects:
                px = ((ob["p0"][0] + ob["v"][0] * t) % 1.2 - 0.1) * self.width
                py = ((ob["p0"][1] + ob["v"][1] * t) % 1.2 - 0.1) * self.height
                r = ob["r"]
                draw.ellipse((px - r, py - r * 0.7, px + r, py + r * 0.7), fill=ob["color"])
            for f, (px, py) in zip(self.faces, self.face_centres(i)):
                _draw_face(draw, px, py, f["r"], f["skin"], t + f["ph"])
            if self.captions:
                self._caption(draw, t)
        return np.asarray(im, np.uint8)

    def face_centres(self, i: int) -> list[tuple[float, float]]:
        """Where each face is in frame ``i`` (pixels)."""
        t = i / self.fps
        return [((f["p0"][0] + f["v"][0] * t + 0.03 * math.sin(1.7 * t + f["ph"])) * self.width,
                 (f["p0"][1] + f["v"][1] * t + 0.02 * math.sin(2.3 * t + f["ph"])) * self.height)
                for f in self.faces]

    def _caption(self, draw: ImageDraw.ImageDraw, t: float) -> None:
        k = int(t / self.caption_period)
        if k % 4 == 3:  # a pause between lines
            return
        size = max(10, int(0.05 * min(self.width, self.height)))
        draw.text((self.width / 2, self.height * 0.9), self.captions[k % len(self.captions)], font=_font(size),
                  fill=(255, 255, 255), anchor="ms", stroke_width=max(1, size // 10), stroke_fill=(0, 0, 0))

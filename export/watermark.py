"""The Sora mark's schedule and synthetic clips with exact ground truth (box, alpha, colour per frame).

Why: detector training, the quality benchmark and the pipeline tests need videos whose clean frames
and true mark are known exactly; everything is deterministic from the parameters, so a clip's truth
is regenerated instead of stored. Facts followed (DESIGN.md "The real mark"): three positions per
orientation revisited in a cycle, a jump every 67 frames at 30 fps with the text leaving 2 frames
before the cloud and the new position at full strength on the next frame, constant opacity
0.75–0.84, a mark sized to the PICTURE, and uploads that are scaled and padded with black bars.
Drawings live in :mod:`export.marks`, backgrounds in :mod:`export.scenes`, named clip kinds and the
seed sets in :mod:`export.clips`.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from export.marks import (Template, alpha_map, clip_rect, color_map, composite, pupil_offset, ring_mark,
                          sora_mark, sora_scale_for_picture, template_from_png)
from export.mp4 import write_video
from export.scenes import (HELDOUT_PHOTOS, PHOTO_SOURCES, PROCEDURAL_KINDS, SCENE_KINDS, Background,
                           available_photos)

LOGGER = logging.getLogger(__name__)

# Reference frames of the public position measurements (DESIGN.md): Sora 1280x704 / 704x1280.
REF_LANDSCAPE = (1280, 704)
REF_PORTRAIT = (704, 1280)
LANDSCAPE_BOXES = ((30, 68, 179, 118), (1112, 321, 1266, 367), (35, 585, 176, 638))
PORTRAIT_BOXES = ((25, 79, 173, 136), (538, 604, 685, 657), (28, 1029, 175, 1091))
# Measured on a real portrait clip: top-left corners as fractions of the picture, in visiting order
# (right-middle, left-lower, top-left).
PORTRAIT_FRACTIONS = ((0.78, 0.36), (0.06, 0.64), (0.06, 0.075))
# A jump every 67 frames at 30 fps; the text leaves this many frames before the cloud.
JUMP_PERIOD_S = 67 / 30
TEXT_LEAD_FRAMES = 2
OPACITY_RANGE = (0.75, 0.84)
# Mark width (no username) at scale 1, i.e. on a picture whose short side is 704 px.
BASE_WIDTH = 149
DEFAULT_USERNAME = "@sora_user"
# Another generator's mark for discovery tests: a ring with bars, α 0.55, 3 positions.
RING_OPACITY = 0.55
RING_PERIOD_S = 1.5
RING_FRACTIONS = ((0.95, 0.06), (0.05, 0.45), (0.95, 0.80))  # x is the right edge when > 0.5
MARKS = ("sora", "ring")


def sora_template(width: int = BASE_WIDTH, username: str | None = DEFAULT_USERNAME) -> Template:
    """The Sora mark about ``width`` px wide (without the username line), eyes at rest."""
    if width < 8:
        raise ValueError(f"template width must be >= 8 px, got {width}")
    return sora_mark(width / BASE_WIDTH, username=username)


def template_for_frame(width: int, height: int, *, username: str | None = DEFAULT_USERNAME,
                       template: Template | None = None, scale: float = 1.0) -> Template:
    """The mark at the size Sora uses for a picture of this size (149 px wide on a 704-px side)."""
    factor = sora_scale_for_picture(width, height) * scale
    if template is not None:
        return template.resized(max(12, int(round(BASE_WIDTH * factor))))
    return sora_mark(max(factor, 12 / BASE_WIDTH), username=username)


# --------------------------------------------------------------------------------------------
# Positions and schedule
# --------------------------------------------------------------------------------------------

def sora_slots(width: int, height: int, tw: int, th: int, *, layout: str = "measured") -> list[tuple[int, int]]:
    """Top-left corners of the three positions in a ``width`` x ``height`` picture, in visiting order.

    Portrait pictures use the measured fractions (``layout="public"``: the public remover's portrait
    boxes); landscape ones the public landscape boxes scaled to the picture, right-anchored on the
    right side and centred vertically on the box. Corners are kept inside the picture.
    """
    if width < height and layout == "measured":
        raw = [(int(round(fx * width)), int(round(fy * height))) for fx, fy in PORTRAIT_FRACTIONS]
    else:
        ref_w, ref_h = REF_LANDSCAPE if width >= height else REF_PORTRAIT
        boxes = LANDSCAPE_BOXES if width >= height else PORTRAIT_BOXES
        order = (1, 2, 0)  # right-middle, left-lower, top-left
        sx, sy = width / ref_w, height / ref_h
        raw = []
        for k in order:
            x1, y1, x2, y2 = boxes[k]
            x = int(round(x2 * sx)) - tw if (x1 + x2) / 2 > ref_w / 2 else int(round(x1 * sx))
            raw.append((x, int(round((y1 + y2) / 2 * sy - th / 2))))
    return [(min(max(x, 0), max(width - tw, 0)), min(max(y, 0), max(height - th, 0))) for x, y in raw]


def ring_slots(width: int, height: int, tw: int, th: int) -> list[tuple[int, int]]:
    """The ring mark's three positions (top-right, left-middle, right-lower)."""
    out = []
    for fx, fy in RING_FRACTIONS:
        x = int(round(fx * width)) - tw if fx > 0.5 else int(round(fx * width))
        y = int(round(fy * height))
        out.append((min(max(x, 0), max(width - tw, 0)), min(max(y, 0), max(height - th, 0))))
    return out


@dataclass(frozen=True)
class Placement:
    """The mark in one frame: top-left (x, y), opacity (0 = absent), slot, text shown, pupil offset."""

    x: int
    y: int
    opacity: float
    slot: int
    text: bool = True
    eyes: tuple[float, float] = (0.0, 0.0)


def sora_schedule(n_frames: int, *, width: int, height: int, fps: float, tw: int, th: int,
                  opacity: float = 0.8, period_s: float = JUMP_PERIOD_S, fade_frames: int = 0,
                  text_lead: int = TEXT_LEAD_FRAMES, jitter: int = 0, start_slot: int = 0, seed: int = 0,
                  phase: int = 0, slots: list[tuple[int, int]] | None = None) -> list[Placement]:
    """Placements: slot ``start_slot`` → next → … in a cycle of 3, a jump every ``period_s``.

    In the last ``text_lead`` frames of a visit that ends in a jump only the cloud shows; the next
    position starts at full opacity. ``phase`` frames of the first visit lie before the clip start.
    ``fade_frames`` > 0 ramps the opacity around jumps instead (older synthetic marks); ``jitter``
    offsets each visit by a few pixels (the real mark repeats its positions exactly: 0).
    """
    if n_frames < 0 or fps <= 0:
        raise ValueError(f"bad schedule: n_frames={n_frames}, fps={fps}")
    if not 0.0 <= opacity <= 1.0:
        raise ValueError(f"opacity must be in [0, 1], got {opacity}")
    rng = np.random.default_rng(seed)
    slots = slots or sora_slots(width, height, tw, th)
    period = max(1, int(round(period_s * fps)))
    eye_phase = float(rng.uniform(0, 2 * np.pi))
    out: list[Placement] = []
    offsets: dict[int, tuple[int, int]] = {}
    for i in range(n_frames):
        seg, j = divmod(i + phase, period)
        if seg not in offsets:
            offsets[seg] = tuple(int(v) for v in rng.integers(-jitter, jitter + 1, 2)) if jitter else (0, 0)
        slot = (start_slot + seg) % len(slots)
        x = min(max(slots[slot][0] + offsets[seg][0], 0), max(width - tw, 0))
        y = min(max(slots[slot][1] + offsets[seg][1], 0), max(height - th, 0))
        jumps_after = (seg + 1) * period - phase < n_frames  # this visit ends inside the clip
        fade = 1.0
        if fade_frames > 0:
            if seg * period - phase > 0:
                fade = min(fade, (j + 1) / (fade_frames + 1))
            if jumps_after:
                fade = min(fade, (period - j) / (fade_frames + 1))
        text = not (jumps_after and j >= period - text_lead)
        out.append(Placement(x, y, round(opacity * fade, 6), slot, text, pupil_offset(i, eye_phase)))
    return out


# --------------------------------------------------------------------------------------------
# Synthetic clips with ground truth
# --------------------------------------------------------------------------------------------

_PARAMS = ("width", "height", "fps", "n_frames", "seed", "opacity", "username", "template_png", "background",
           "fade_frames", "jitter", "mark_scale", "mark", "picture", "source", "faces", "captions", "phase",
           "text_lead", "layout")


@dataclass
class ClipTruth:
    """Ground truth of a synthetic clip, regenerated from its parameters (no frames stored).

    The picture (``picture`` = x, y, w, h inside the frame; default the whole frame) is rendered at
    ``source`` size (default: the picture's), marked there, scaled to the picture and padded with
    black bars, as a re-encoded upload is. ``boxes[i]`` is the visible mark's (x1, y1, x2, y2) in
    frame i (exclusive right/bottom) or None; :meth:`alpha` and :meth:`color` give α and W per pixel
    (exact at source size; a scaled picture's are the scaled source truth, which the scaled pixels
    follow only approximately at edges where both α and the background vary).
    ``mark`` is "sora", "ring" or None (a mark-free clip); ``opacity`` None draws one in 0.75–0.84
    (0.55 for the ring). The first position is ``seed % 3``.
    """

    width: int
    height: int
    fps: float
    n_frames: int
    seed: int = 0
    opacity: float | None = None
    username: str | None = DEFAULT_USERNAME
    template_png: str | None = None
    background: str | None = None
    fade_frames: int = 0
    jitter: int = 0
    mark_scale: float = 1.0
    mark: str | None = "sora"
    picture: tuple[int, int, int, int] | None = None
    source: tuple[int, int] | None = None
    faces: int = 0
    captions: bool = False
    phase: int = 0
    text_lead: int = TEXT_LEAD_FRAMES
    layout: str = "measured"
    placements: list[Placement] = field(init=False, repr=False)
    boxes: list[tuple[int, int, int, int] | None] = field(init=False, repr=False)
    _bg: Background = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.width <= 0 or self.height <= 0 or self.n_frames < 0 or self.fps <= 0:
            raise ValueError(f"bad clip size {self.width}x{self.height}, {self.n_frames} frames at {self.fps} fps")
        if self.mark not in (*MARKS, None):
            raise ValueError(f"unknown mark {self.mark!r}; one of {MARKS} or None")
        self.picture = tuple(int(v) for v in self.picture) if self.picture else (0, 0, self.width, self.height)
        px, py, pw, ph = self.picture
        if px < 0 or py < 0 or pw <= 0 or ph <= 0 or px + pw > self.width or py + ph > self.height:
            raise ValueError(f"picture {self.picture} does not fit the {self.width}x{self.height} frame")
        self.source = tuple(int(v) for v in self.source) if self.source else (pw, ph)
        sw, sh = self.source
        if self.opacity is None:
            lo, hi = OPACITY_RANGE
            self.opacity = RING_OPACITY if self.mark == "ring" else round(
                float(np.random.default_rng([self.seed, 11]).uniform(lo, hi)), 4)
        self._user_t = template_from_png(self.template_png) if self.template_png else None
        full = self._template(Placement(0, 0, 1.0, 0))
        if self.mark == "ring":
            slots, period = ring_slots(sw, sh, full.width, full.height), RING_PERIOD_S
        else:
            slots = sora_slots(sw, sh, full.width, full.height, layout=self.layout)
            period = JUMP_PERIOD_S
        self.placements = sora_schedule(
            self.n_frames, width=sw, height=sh, fps=self.fps, tw=full.width, th=full.height,
            opacity=self.opacity if self.mark else 0.0, period_s=period, fade_frames=self.fade_frames,
            text_lead=self.text_lead if self.mark == "sora" and not self._user_t else 0, jitter=self.jitter,
            start_slot=self.seed % 3, seed=self.seed, phase=self.phase, slots=slots)
        self._box_cache: dict = {}
        self.boxes = [self._box(p) for p in self.placements]
        self._bg = Background(sw, sh, fps=self.fps, seed=self.seed, kind=self.background, faces=self.faces,
                              captions=self.captions)
        self.background = self._bg.kind

    @property
    def template(self) -> Template:
        """The full mark (text shown, eyes at rest) at source size."""
        return self._template(Placement(0, 0, 1.0, 0))

    def _template(self, p: Placement) -> Template:
        sw, sh = self.source
        if self._user_t is not None:
            return template_for_frame(sw, sh, template=self._user_t, scale=self.mark_scale)
        if self.mark == "ring":
            return ring_mark(max(8, int(round(0.07 * min(sw, sh) * self.mark_scale))))
        scale = max(sora_scale_for_picture(sw, sh) * self.mark_scale, 12 / BASE_WIDTH)
        return sora_mark(scale, username=self.username, eyes=p.eyes, text=p.text)

    def template_at(self, i: int) -> Template:
        """The mark as drawn in frame ``i`` (pupils moved, text maybe gone), at source size."""
        return self._template(self.placements[i])

    def _to_frame(self, src: np.ndarray, mode: str) -> np.ndarray:
        """Scale a source-size array to the picture and place it in the frame (bars = 0)."""
        px, py, pw, ph = self.picture
        if src.shape[1] != pw or src.shape[0] != ph:
            if mode == "RGB":
                src = np.asarray(Image.fromarray(src).resize((pw, ph), Image.BILINEAR))
            else:
                src = np.asarray(Image.fromarray(src.astype(np.float32), mode="F").resize((pw, ph), Image.BILINEAR))
        out = np.zeros((self.height, self.width, *src.shape[2:]), src.dtype)
        out[py:py + ph, px:px + pw] = src
        return out

    def _box(self, p: Placement):
        if p.opacity <= 0 or not self.mark:
            return None
        key = (p.x, p.y, p.text)
        if key not in self._box_cache:
            sw, sh = self.source
            a = self._to_frame(alpha_map(sw, sh, self._template(p), p.x, p.y, 1.0), "F")
            ys, xs = np.nonzero(a > 0.004)
            self._box_cache[key] = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1) \
                if ys.size else None
        return self._box_cache[key]

    def clean_frame(self, i: int) -> np.ndarray:
        if not 0 <= i < self.n_frames:
            raise IndexError(f"frame {i} outside 0..{self.n_frames - 1}")
        return self._to_frame(self._bg.frame(i), "RGB")

    def marked_frame(self, i: int) -> np.ndarray:
        if not 0 <= i < self.n_frames:
            raise IndexError(f"frame {i} outside 0..{self.n_frames - 1}")
        p = self.placements[i]
        src = self._bg.frame(i)
        if self.mark and p.opacity > 0:
            src = composite(src, self.template_at(i), p.x, p.y, p.opacity)
        return self._to_frame(src, "RGB")

    def alpha(self, i: int) -> np.ndarray:
        """Effective alpha (template alpha * opacity) over the whole frame, float32 [H, W]."""
        p = self.placements[i]
        sw, sh = self.source
        if not self.mark:
            return np.zeros((self.height, self.width), np.float32)
        return self._to_frame(alpha_map(sw, sh, self.template_at(i), p.x, p.y, p.opacity), "F")

    def color(self, i: int) -> np.ndarray:
        """The mark's colour W per pixel (float32 [H, W, 3]; 255 where α is 0)."""
        p = self.placements[i]
        sw, sh = self.source
        if not self.mark:
            return np.full((self.height, self.width, 3), 255.0, np.float32)
        t = self.template_at(i)
        a = alpha_map(sw, sh, t, p.x, p.y, 1.0)
        pm = color_map(sw, sh, t, p.x, p.y) * a[..., None]
        a_f = self._to_frame(a, "F")
        pm_f = np.stack([self._to_frame(pm[..., c], "F") for c in range(3)], -1)
        return np.where(a_f[..., None] > 1e-4, pm_f / np.maximum(a_f[..., None], 1e-4), 255.0).astype(np.float32)

    def mask(self, i: int, threshold: float = 0.01) -> np.ndarray:
        return self.alpha(i) > threshold

    def params(self) -> dict:
        return {k: getattr(self, k) for k in _PARAMS}

    def save(self, path: str | Path) -> None:
        """Write parameters + boxes as JSON; :meth:`load` regenerates everything else."""
        data = self.params()
        data["boxes"] = self.boxes
        data["placements"] = [asdict(p) for p in self.placements]
        Path(path).write_text(json.dumps(data, indent=1))

    @classmethod
    def load(cls, path: str | Path) -> "ClipTruth":
        data = json.loads(Path(path).read_text())
        return cls(**{k: data[k] for k in _PARAMS if k in data})


def make_clip(path: str | Path, *, width: int = 640, height: int = 360, fps: float = 30.0,
              seconds: float = 4.0, opacity: float | None = None, audio: bool = True, seed: int = 0,
              template: str | Path | None = None, username: str | None = DEFAULT_USERNAME,
              background: str | None = None, fade_frames: int = 0, jitter: int = 0,
              mark_scale: float = 1.0, crf: int = 18, preset: str = "veryfast", marked: bool = True,
              **clip) -> ClipTruth:
    """Write an H.264 mp4 (yuv420p, optional AAC stereo) with the mark, and return its ground truth.

    ``template`` is an optional user PNG with alpha; ``marked=False`` writes the clean clip instead
    (same truth, for reference encodes). Further keywords (``mark``, ``picture``, ``source``,
    ``faces``, ``captions``, ``phase``, ``text_lead``, ``layout``) go to :class:`ClipTruth`.
    """
    if width % 2 or height % 2:
        raise ValueError(f"H.264 yuv420p needs even width and height, got {width}x{height}")
    if seconds <= 0:
        raise ValueError(f"seconds must be > 0, got {seconds}")
    n_frames = max(1, int(round(seconds * fps)))
    truth = ClipTruth(width, height, float(fps), n_frames, seed=seed, opacity=opacity, username=username,
                      template_png=str(template) if template else None, background=background,
                      fade_frames=fade_frames, jitter=jitter, mark_scale=mark_scale, **clip)
    render = truth.marked_frame if marked else truth.clean_frame
    write_video(path, (render(i) for i in range(n_frames)), n_frames, width=width, height=height, fps=fps,
                audio=audio, seed=seed, crf=crf, preset=preset)
    LOGGER.info("wrote %s: %dx%d, %d frames at %s fps, background %s", path, width, height, n_frames,
                fps, truth.background)
    return truth


def main(argv: list[str] | None = None) -> int:
    """CLI: write a sample clip with the mark (and its ground truth JSON beside it)."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(description="Write a synthetic clip with a Sora-like watermark")
    parser.add_argument("--out", type=Path, required=True, help="output .mp4")
    parser.add_argument("--kind", help="a named clip kind of export.clips (overrides the size options)")
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=360)
    parser.add_argument("--fps", type=float, default=30.0)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--opacity", type=float, default=None, help="default: drawn in 0.75-0.84")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--template", type=Path, help="your own mark: PNG with alpha")
    parser.add_argument("--username", default=DEFAULT_USERNAME, help="'' for no username line")
    parser.add_argument("--background", help="photo:<name>, " + "/".join(PROCEDURAL_KINDS + SCENE_KINDS))
    parser.add_argument("--no-audio", action="store_true")
    parser.add_argument("--clean", action="store_true", help="write the clip WITHOUT the mark")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        if args.kind:
            from export.clips import clip_spec

            spec = clip_spec(args.kind, args.seed)
            truth = make_clip(args.out, audio=not args.no_audio, marked=not args.clean, **spec.make_kwargs())
        else:
            truth = make_clip(args.out, width=args.width, height=args.height, fps=args.fps, seconds=args.seconds,
                              opacity=args.opacity, audio=not args.no_audio, seed=args.seed,
                              template=args.template, username=args.username or None,
                              background=args.background, marked=not args.clean)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    truth.save(args.out.with_suffix(".truth.json"))
    print(args.out)
    return 0


__all__ = [
    "Template", "sora_template", "sora_mark", "ring_mark", "template_from_png", "template_for_frame",
    "composite", "alpha_map", "color_map", "sora_slots", "ring_slots", "sora_schedule", "Placement",
    "Background", "ClipTruth", "make_clip", "write_video", "available_photos", "HELDOUT_PHOTOS",
    "PHOTO_SOURCES", "PROCEDURAL_KINDS", "SCENE_KINDS", "clip_rect",
]


if __name__ == "__main__":
    raise SystemExit(main())

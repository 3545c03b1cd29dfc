"""One registry of named synthetic clip kinds × seeds: the marked video, the clean one and the truth.

Why: the detector, discovery, do-no-harm and no-ghost work all measure on the same clips, and a
figure means something only on clips nobody tuned on. So seeds come in two fixed sets:

- ``TUNING_SEEDS`` (1–8): use these freely while developing and tuning.
- ``HELDOUT_SEEDS`` (7001, 7002, 7003): FROZEN. Never tune thresholds, recipes or code against
  them; run them once a change is settled and report what they give. (Also in bench/README.md.)
  Seen by now: rules were added after looking at their failures, so they are no longer blind.
- ``FRESH_SEEDS`` (9201, 9202, 9203): FROZEN and unseen. Run once, at the end of a round, on the
  merged code; 8001–8003, 9001–9003 and 9101–9103 were earlier rounds' fresh sets and have been looked at.

Kinds with the Sora mark: dark, bright, textured, saturated, pillarbox (1280×704 frame, a portrait
picture pillarboxed to 396×704, mark ≈60×20 as measured), revisits_10s, username, 1080p (a Sora
1280×704 scaled to 1920×1056 with 12-px bars); with another generator's mark: other_shape (a ring
with bars, α 0.55, 3 positions); mark-free: clean, clean_bars, clean_faces_text.

Usage::

    from export.clips import make, clip_spec
    clip = make("pillarbox", 7001, "/tmp/clips")   # writes marked + clean mp4, returns Clip
    clip.truth.boxes[i], clip.truth.alpha(i), clip.truth.color(i), clip.truth.clean_frame(i)
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from export.mp4 import X264_PARAMS
from export.watermark import ClipTruth, make_clip

LOGGER = logging.getLogger(__name__)

TUNING_SEEDS = (1, 2, 3, 4, 5, 6, 7, 8)
HELDOUT_SEEDS = (7001, 7002, 7003)  # frozen: never tune on these
FRESH_SEEDS = (9201, 9202, 9203)  # frozen and unseen: run once per round on the merged code
MARKED_KINDS = ("dark", "bright", "textured", "saturated", "pillarbox", "revisits_10s", "username",
                "other_shape", "1080p")
MARK_FREE_KINDS = ("clean", "clean_bars", "clean_faces_text")
KINDS = MARKED_KINDS + MARK_FREE_KINDS
_USERNAMES = ("@mira.k", "@sunset_rider", "@jo", "@pixelgarden42", "@the.real.tom")


@dataclass(frozen=True)
class ClipSpec:
    """Everything that defines one clip; ``make_kwargs()`` feeds :func:`export.watermark.make_clip`."""

    kind: str
    seed: int
    width: int
    height: int
    seconds: float
    background: str
    fps: float = 30.0
    mark: str | None = "sora"
    username: str | None = None
    picture: tuple[int, int, int, int] | None = None
    source: tuple[int, int] | None = None
    mark_scale: float = 1.0
    faces: int = 0
    captions: bool = False
    phase: int = 0
    crf: int = 18
    opacity: float | None = None

    def make_kwargs(self) -> dict:
        """make_clip's keywords; the clip's own seed mixes in the kind so kinds never share a scene."""
        kw = asdict(self)
        kw["seed"] = self.seed * 16 + KINDS.index(kw.pop("kind"))
        return kw

    def truth(self) -> ClipTruth:
        """The ground truth without writing any video."""
        kw = self.make_kwargs()
        kw.pop("crf")
        seconds = kw.pop("seconds")
        return ClipTruth(n_frames=max(1, int(round(seconds * self.fps))), **kw)


@dataclass(frozen=True)
class Clip:
    """A written clip: ``marked`` and ``clean`` mp4 (same encoder settings) and the truth."""

    spec: ClipSpec
    marked: Path
    clean: Path | None
    truth: ClipTruth


def _pick(rng: np.random.Generator, options):
    return options[int(rng.integers(len(options)))]


def clip_spec(kind: str, seed: int) -> ClipSpec:
    """The clip of ``kind`` for ``seed`` (deterministic). See the module docstring for the kinds."""
    if kind not in KINDS:
        raise ValueError(f"unknown clip kind {kind!r}; one of {KINDS}")
    rng = np.random.default_rng([seed, KINDS.index(kind), 99])
    portrait = bool(rng.random() < 0.5)
    small = (360, 640) if portrait else (640, 360)
    phase = int(rng.integers(0, 67))
    opacity = round(float(rng.uniform(0.75, 0.84)), 3) if kind != "other_shape" else 0.55
    common = dict(kind=kind, seed=seed, phase=phase, opacity=opacity)
    if kind == "dark":
        return ClipSpec(**common, width=small[0], height=small[1], seconds=4.0, background=_pick(rng, ("night", "hair")))
    if kind == "bright":
        return ClipSpec(**common, width=small[0], height=small[1], seconds=4.0, background=_pick(rng, ("sky", "wall")))
    if kind == "textured":
        return ClipSpec(**common, width=small[0], height=small[1], seconds=4.0,
                        background=_pick(rng, ("ceiling", "hair", "texture")))
    if kind == "saturated":
        return ClipSpec(**common, width=small[0], height=small[1], seconds=4.0, background="saturated")
    if kind == "username":
        return ClipSpec(**common, width=small[0], height=small[1], seconds=4.0,
                        background=_pick(rng, ("wall", "ceiling", "night")), username=_pick(rng, _USERNAMES))
    if kind == "revisits_10s":
        return ClipSpec(**common, width=360, height=640, seconds=10.0, background=_pick(rng, ("ceiling", "wall")),
                        faces=1)
    if kind == "other_shape":
        return ClipSpec(**common, width=small[0], height=small[1], seconds=4.0, mark="ring",
                        background=_pick(rng, ("wall", "night", "ceiling")))
    if kind in ("pillarbox", "clean_bars"):
        # A 720x1280 portrait scaled to 396x704 and pillarboxed into 1280x704; the real mark measured
        # ≈60×20 there (0.7 of the picture-size rule), re-encoded at CRF 23.
        return ClipSpec(**common, width=1280, height=704, seconds=3.0, background="ceiling", faces=1,
                        picture=(442, 0, 396, 704), source=(720, 1280), mark_scale=0.7, crf=23,
                        mark="sora" if kind == "pillarbox" else None)
    if kind == "1080p":
        return ClipSpec(**common, width=1920, height=1080, seconds=2.5, background=_pick(rng, ("wall", "sky")),
                        picture=(0, 12, 1920, 1056), source=(1280, 704), crf=23)
    if kind == "clean":
        return ClipSpec(**common, width=small[0], height=small[1], seconds=4.0, mark=None,
                        background=_pick(rng, ("ceiling", "hair", "sky", "saturated", "wall")))
    return ClipSpec(**common, width=small[0], height=small[1], seconds=4.0, mark=None,  # clean_faces_text
                    background=_pick(rng, ("wall", "ceiling")), faces=2, captions=True)


def make(kind: str, seed: int, out_dir: str | Path, *, clean: bool = True, audio: bool = False) -> Clip:
    """Write ``<kind>_<seed>.mp4`` (+ ``_clean.mp4``) under ``out_dir``; reused when already written."""
    spec = clip_spec(kind, seed)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    marked, clean_path = out / f"{kind}_{seed}.mp4", out / f"{kind}_{seed}_clean.mp4"
    stamp = out / f"{kind}_{seed}.spec.json"
    want = json.dumps({**asdict(spec), "audio": audio, "writer": X264_PARAMS}, sort_keys=True)
    written = stamp.exists() and stamp.read_text() == want
    # A clip once written is never rewritten for its clean twin: an encode is one of several
    # (x264 on another CPU), and a benchmark must see the file the earlier runs saw.
    if not (written and marked.exists()):
        stamp.unlink(missing_ok=True)
        clean_path.unlink(missing_ok=True)
        _write_clip(marked, audio=audio, **spec.make_kwargs())
    if clean and not (written and clean_path.exists()):
        _write_clip(clean_path, audio=audio, marked=False, **spec.make_kwargs())
    stamp.write_text(want)
    return Clip(spec, marked, clean_path if clean else None, spec.truth())


def _write_clip(path: Path, **kwargs) -> None:
    """``make_clip`` to a temporary name, then renamed: a reader never sees half a clip."""
    part = path.with_name(f".{path.stem}.{os.getpid()}.part.mp4")
    make_clip(part, **kwargs)
    part.replace(path)


@dataclass(frozen=True)
class FrameScore:
    """Counts of a timeline's boxes against the true mark of each frame (see ``frame_score``)."""

    marked: int  # frames with a mark
    found: int  # ...of those, with a box that covers half of it
    boxes: int  # boxes over all frames
    right: int  # ...of those, covering half of the true mark of their frame


def covers(box, truth) -> bool:
    """Whether ``box`` covers at least half of the ``truth`` box (both x0, y0, x1, y1)."""
    x0, y0 = max(box[0], truth[0]), max(box[1], truth[1])
    x1, y1 = min(box[2], truth[2]), min(box[3], truth[3])
    return max(0.0, x1 - x0) * max(0.0, y1 - y0) >= 0.5 * (truth[2] - truth[0]) * (truth[3] - truth[1])


def frame_score(truth_boxes, timeline) -> FrameScore:
    """Score ``timeline`` (``boxes_at(i)``, ``positions``) against the true box (or None) of each frame."""
    marked = found = boxes = right = 0
    for i, truth in enumerate(truth_boxes):
        got = timeline.boxes_at(i) if timeline.positions.size else np.zeros((0, 4))
        hits = [covers(b, truth) for b in got] if truth is not None else [False] * len(got)
        boxes += len(got)
        right += sum(hits)
        if truth is not None:
            marked += 1
            found += any(hits)
    return FrameScore(marked, found, boxes, right)


__all__ = ["ClipSpec", "Clip", "FrameScore", "clip_spec", "covers", "frame_score", "make", "KINDS", "MARKED_KINDS", "MARK_FREE_KINDS", "TUNING_SEEDS",
           "HELDOUT_SEEDS", "FRESH_SEEDS"]

"""Which candidate places hold an overlay, and over which frames: the verdict ``Discoverer.finish``
gives each track before the places are merged and paired.

A jump shows the same matte leaving one place and arriving at another within a few frames: two
fitted steps of opposite direction, the same α and the same shape (``jump_pair``). A place with
such a partner has shown what an overlay is, so its presence may be less still (animated eyes over
busy texture) and its visits may be cut short by the video's start or end. A place's own fitted
steps bound its visits: the overlay is not there before it arrived nor after it left (a template
that also matches texture reads as present on and on).
"""

from __future__ import annotations

import numpy as np

from orchestrator.pipeline import boxes as bx
from orchestrator.pipeline.discover.tracks import MAX_STEP_GAP, MIN_SHAPE, StepFit, Track, presence, runs, same_shape

MIN_FRAMES = 6  # a confirmed place must hold the overlay this many frames in all
STILL = 0.85  # median presence score over a place's visits
STILL_FITTED = 0.7  # ...of a place where the overlay arrived and left with fitting steps of one α
SAME_ALPHA = 0.06  # ...of one α
STILL_JUMPED = 0.5  # ...of a place that jumped to or from another with the same matte
PAIR_FRAMES = 3  # a jump's departure and arrival are this close
PAIR_ALPHA = 0.08  # ...and show the same α (one mark)
SHAPED_ALPHA = 0.15  # ...or α this close where their α maps also agree:
SHAPE_MATCH = 0.75  # normalised correlation of the two steps' α maps
PAIR_SHAPE = 0.4  # ...at least this where α agrees within PAIR_ALPHA (a face's steps: 0-0.3)
JUMP_SHAPE = 0.6  # ...for a pair that lets its places be less still and cut short (``jumpers``)
STRONG = 0.5  # share of a place's largest step body that a step must show to cut its visits
BLIP = 15  # frames: a run shorter than this between a place's departure and arrival is not a visit


def _mark_sized(step: StepFit) -> bool:
    return step.shape is not None and min(step.shape.shape) >= MIN_SHAPE[0] and step.shape.size >= MIN_SHAPE[1]


def jump_pair(a: StepFit, b: StepFit, *, shaped: bool = False) -> bool:
    """Two fitted steps (of two places) are one jump: opposite directions, within
    ``PAIR_FRAMES``, each with an α map of a mark's size, the same α and roughly the same shape
    (more alike where ``shaped``: the icon alone leaving, the icon and text arriving ~0.6), or a
    close α and the same shape."""
    if a.arrive == b.arrive or abs(a.frame - b.frame) > PAIR_FRAMES or not (a.fits and b.fits):
        return False
    if not (_mark_sized(a) and _mark_sized(b)):
        return False  # a few pixels of a face's edge stepping (faces make many α pairs)
    d = abs(float(np.mean(a.alpha)) - float(np.mean(b.alpha)))
    if d > SHAPED_ALPHA:
        return False
    shape = same_shape(a.shape, b.shape)
    return shape >= SHAPE_MATCH or (d <= PAIR_ALPHA and shape >= (JUMP_SHAPE if shaped else PAIR_SHAPE))


def jumpers(tracks: list[Track]) -> set[int]:
    """ids of the fitted steps that make a shaped jump with a step at another place (boxes
    apart), and of the tracks that hold them."""
    steps = sorted(((s.frame, k, s) for k, t in enumerate(tracks) for s in t.steps if s.fits), key=lambda x: x[0])
    if len({k for _, k, _ in steps}) < 2:
        return set()
    boxes = np.array([t.box for t in tracks], np.float64)
    apart = bx.iou_matrix(boxes, boxes) == 0
    out: set[int] = set()
    for i, (f, k, x) in enumerate(steps):
        for g, m, y in steps[i + 1 :]:
            if g - f > PAIR_FRAMES:
                break
            if apart[k, m] and jump_pair(x, y, shaped=True):
                out.update((id(tracks[k]), id(tracks[m]), id(x), id(y)))
    return out


def partnered(track: Track, tracks: list[Track]) -> bool:
    """Whether a fitted step of ``track`` makes a shaped jump with one at another place."""
    mine = [s for s in track.steps if s.fits]
    if not mine:
        return False
    others = [t for t in tracks if t is not track]
    if not others:
        return False
    apart = bx.iou_matrix(np.array([track.box], np.float64), np.array([t.box for t in others], np.float64))[0] == 0
    return any(jump_pair(x, y, shaped=True) for t, ok in zip(others, apart) if ok for y in t.steps for x in mine)


def still_needed(track: Track, jumped: bool) -> float:
    """The stillness a place must show: less where the overlay both arrived and left there with
    fitting white steps of one α (an icon with animated eyes over busy texture scores ~0.78), less
    still where it jumped to or from another place with the same matte (a template built from the
    8 frames after an arrival over drifting clouds scores ~0.55; a face's steps that happen to fit
    show different α and shapes)."""
    fits = [s for s in track.steps if s.fits]
    same = any(a.arrive and not b.arrive and abs(np.mean(a.alpha) - np.mean(b.alpha)) <= SAME_ALPHA
               for a in fits for b in fits)
    return STILL_JUMPED if jumped else STILL_FITTED if same else STILL


def bounded(track: Track, on: np.ndarray, jumps: set[int]) -> np.ndarray:
    """``on`` with every visit cut at the track's own strong steps: those that made a jump
    (``jumpers``) or stepped with at least half the body of its largest (a few pixels of a face
    beside the place that fit by chance do not cut). An arrival starts its visit, the last
    departure of a burst (the text leaves ~2 frames before the icon) ends it; a short run between
    a departure and the next arrival (texture matching a moment) is dropped. Cuts only remove
    frames."""
    out = on.copy()
    fits = [s for s in track.steps if s.fits]
    largest = max((s.body for s in fits), default=0)
    fits = [s for s in fits if id(s) in jumps or s.body >= STRONG * largest]
    leaves = sorted({s.frame for s in fits if not s.arrive})
    leaves = [f for f in leaves if not any(f < g <= f + MAX_STEP_GAP for g in leaves)]
    arrivals = sorted({s.frame for s in fits if s.arrive})
    for f in arrivals:
        since = max((g for g in leaves if g < f), default=0)
        for a, b in runs(out):
            if a < f < b:
                out[a:f] = False
            elif since <= a and b <= f and b - a < BLIP:
                out[a:b] = False
    for f in leaves:
        until = min((g for g in arrivals if g > f), default=out.size)
        for a, b in runs(out):
            if a < f < b - 2:
                out[f:b] = False
            elif f <= a and b <= until and b - a < BLIP:
                out[a:b] = False
    return out


def verdict(track: Track, scores: np.ndarray, jumps: set[int]) -> np.ndarray | None:
    """The frames a confirmed-or-not track holds an overlay, or None when it does not: enough
    frames (any, for a jump's place the video cuts short) at the stillness it needs; ``jumps``
    from ``jumpers``. Only a place that jumped is judged on its visits cut at its steps (cuts
    must never make a face's track look like an overlay)."""
    jumped = id(track) in jumps
    on = presence(scores)
    if jumped:  # a visit the video's start or end cuts to a frame or two
        on = bounded(track, presence(scores, edge_run=1), jumps)
    if not on.any() or (on.sum() < MIN_FRAMES and not jumped):
        return None
    return on if float(np.median(scores[on])) >= still_needed(track, jumped) else None

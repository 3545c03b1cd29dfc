"""Which places are one mark: places the mark jumped between share one mark id even where their
extents differ in size (one took texture along), so a third place visited once mid-video is taken
with its mark (``fuse``'s coverage rule judges a mark by all its places)."""

from __future__ import annotations

import numpy as np

from orchestrator.pipeline.discover.result import group, jump_marks
from orchestrator.pipeline.discover.tracks import StepFit, Track

N = 120


def _shape(seed: int) -> np.ndarray:
    """A ring's α map (21×36) with a little noise."""
    yy, xx = np.mgrid[:21, :36]
    r = np.hypot((xx - 18) / 1.6, yy - 10)
    m = np.where((r > 6) & (r < 9), 0.55, 0.0)
    return (m + np.random.default_rng(seed).normal(0, 0.02, m.shape)).astype(np.float32)


def _step(frame: int, arrive: bool, seed: int, alpha: float = 0.55) -> StepFit:
    on, off = (frame, frame - 1) if arrive else (frame - 1, frame)
    return StepFit(on, off, arrive, (alpha,) * 3, 0.9, 400, 0, _shape(seed))


def _place(box, extent, visits, *steps):
    t = Track(box, np.zeros(0), np.zeros(0), 0, 0)
    t.extent = extent
    t.steps.extend(steps)
    on = np.zeros(N, bool)
    for a, b in visits:
        on[a:b] = True
    return t, on


def _marks(kept):
    return jump_marks(kept, group([(t.extent or t.box, t.alpha()) for t, _ in kept]))


def test_a_place_visited_once_between_two_of_its_marks_places_is_that_mark():
    a = _place((446, 227, 491, 254), None, [(0, 26), (116, 120)], _step(26, False, 1), _step(116, True, 2))
    # The third place's extent took texture along (50×49 against 45×27): not of the mark's size...
    b = _place((446, 14, 491, 41), (446, 14, 496, 63), [(26, 71)], _step(26, True, 3), _step(71, False, 4))
    c = _place((21, 126, 66, 153), None, [(71, 116)], _step(71, True, 5), _step(116, False, 6))
    assert group([(t.extent or t.box, t.alpha()) for t, _ in (a, b, c)]) == [0, 1, 0]
    # ...but the mark left A when it arrived there and left there when it arrived at C.
    assert _marks([a, b, c]) == [0, 0, 0]


def test_a_place_joined_by_one_side_of_a_jump_alone_stays_apart():
    a = _place((446, 227, 491, 254), None, [(0, 26), (116, 120)], _step(26, False, 1), _step(116, True, 2))
    c = _place((21, 126, 66, 153), None, [(71, 116)], _step(71, True, 5), _step(116, False, 6))
    # Arrives as A leaves, but nothing arrives anywhere when it leaves (a face's features stepping).
    d = _place((300, 14, 330, 60), None, [(26, 60)], _step(26, True, 3), _step(60, False, 4))
    assert _marks([a, c, d]) == [0, 0, 1]
    # Another shape arriving as A leaves is not its jump, on both sides or not.
    other = np.zeros((21, 36), np.float32)
    other[5:15, 3:12] = 0.55
    e = _place((300, 14, 345, 70), None, [(26, 71)],
               StepFit(26, 25, True, (0.55,) * 3, 0.9, 400, 0, other), StepFit(70, 71, False, (0.55,) * 3, 0.9, 400, 0, other))
    assert _marks([a, c, e]) == [0, 0, 1]


def test_a_visit_the_video_cuts_needs_its_jump_on_the_other_side_only():
    a = _place((446, 227, 491, 254), None, [(50, 120)], _step(50, True, 1))
    b = _place((446, 14, 496, 80), None, [(0, 50)], _step(50, False, 2))  # from the start, then left for A
    assert _marks([a, b]) == [0, 0]

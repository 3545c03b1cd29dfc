"""Discovery's cheap looks before its costly work keep what matters: jump events looked for only
around the pixels that changed are the whole frame's (a mark far from a moving object too), the
bars are never summed, and a fitting step whose pixels do not hold still (a white object moving
on) builds no track, while a mark arriving on moving texture does."""

from __future__ import annotations

import numpy as np

from export.clips import make
from orchestrator.pipeline.decode import iter_frames
from orchestrator.pipeline.discover import Discoverer
from orchestrator.pipeline.discover.events import Event, _events, holds_still, step_events
from orchestrator.pipeline.discover.features import luma

BOX = (60, 40, 100, 56)  # a mark in a 200x120 small frame


def _marked(img: np.ndarray, box=BOX, alpha: float = 0.8) -> np.ndarray:
    out = img.astype(np.float32).copy()
    x0, y0, x1, y1 = box
    out[y0:y1, x0:x1:2] = alpha * 255 + (1 - alpha) * out[y0:y1, x0:x1:2]  # vertical bars: edges
    return np.clip(out, 0, 255).astype(np.uint8)


def _square(img: np.ndarray, x: int, y: int) -> np.ndarray:
    out = img.copy()
    out[y : y + 12, x : x + 12] = 250
    return out


def _diffs(frames):
    g = [luma(f).astype(np.int16) for f in frames]
    d = [b - a for a, b in zip(g, g[1:])]
    return np.abs(d[0]), d[1], np.abs(d[2])


def test_events_around_the_changed_pixels_are_the_whole_frames():
    rng = np.random.default_rng(7)
    still = rng.integers(30, 160, (120, 200, 3)).astype(np.uint8)
    # The mark arrives at frame 2 while a white square jumps about in the far corner (and a
    # second mark arrives at the picture's very edge).
    edge = (4, 100, 40, 114)
    frames = [_square(still, 150, 4), _square(still, 170, 6), _marked(_marked(_square(still, 150, 8)), edge),
              _marked(_marked(_square(still, 172, 2)), edge)]
    before, step, after = _diffs(frames)
    area = (0, 0, 200, 120)
    got = step_events(before, step, after, 2, area)
    whole = _events(before, step, after, (slice(3, 117), slice(3, 197)), (200, 120))
    assert [(e.box, e.arrive) for e in got] == [(box, arrive) for box, _, arrive in whole]
    for e, (_, mask, _) in zip(got, whole):
        np.testing.assert_array_equal(e.mask, mask)
    arrivals = [e.box for e in got if e.arrive]
    assert any(abs(b[0] - BOX[0]) <= 2 and abs(b[2] - BOX[2]) <= 2 for b in arrivals), got
    assert any(abs(b[1] - edge[1]) <= 2 and abs(b[2] - edge[2]) <= 2 for b in arrivals), got


def test_the_bars_are_never_summed_and_a_mark_in_the_picture_steps():
    rng = np.random.default_rng(8)
    frames = []
    for k in range(12):
        f = rng.integers(12, 22, (120, 200, 3)).astype(np.uint8)  # black bars (coding noise) left and right
        f[:, 50:150] = rng.integers(30, 160, (120, 100, 3))
        frames.append(_marked(f, (80, 40, 120, 56)) if k >= 6 else f)
    d = Discoverer(200, 120, chunk=20)
    for k, f in enumerate(frames):
        d.add(k, f)
    assert d.picture.work_area() == (50, 0, 150, 120)
    assert not d.stats.se[:, :49].any() and not d.stats.se[:, 151:].any()
    assert d.stats.se[:, 50:150].any()


def _event(still, box=BOX) -> Event:
    x0, y0, x1, y1 = box
    return Event(2, box, np.ones((y1 - y0, x1 - x0), bool), True)


def test_a_mark_on_moving_texture_holds_still_and_a_moving_white_object_does_not():
    rng = np.random.default_rng(9)
    wide = rng.integers(30, 160, (120, 260, 3)).astype(np.uint8)
    scene = [np.ascontiguousarray(wide[:, 3 * k : 3 * k + 200]) for k in range(10)]
    off, on, far = scene[1], _marked(scene[2]), _marked(scene[9])  # the picture moves 3 px a frame
    assert holds_still(_event(off), luma(on), luma(far), luma(off))
    # A white object that arrived and moved on: 7 frames later it is elsewhere.
    moved_on = _marked(scene[9], (120, 70, 160, 86))
    assert not holds_still(_event(off), luma(on), luma(moved_on), luma(off))


def test_faces_and_captions_build_few_tracks_from_their_steps():
    # clean_faces_text 1 (tuning): moving faces and captions step at many moments; most of them
    # do not hold still, so they are neither fitted nor made tracks, and nothing is found.
    clip = make("clean_faces_text", 1, _clips(), clean=False)
    d = Discoverer(clip.spec.width, clip.spec.height)
    n = sum(1 for _ in d.tap(iter_frames(clip.marked)))
    found = d.finish(n)
    assert found.positions == ()
    assert d.moving > 2 * d.events > 20, (d.events, d.moving)


def _clips():
    import tempfile
    from pathlib import Path

    return Path(tempfile.gettempdir()) / "sora-unmark-test-clips"


def test_the_four_fifths_area_shrink_is_opencvs_bit_for_bit():
    import cv2

    from orchestrator.pipeline.discover.features import _area_5_4, _shrink

    rng = np.random.default_rng(11)
    for h, w in ((360, 640), (640, 360), (180, 320), (20, 40)):
        plane = rng.integers(0, 256, (h, w), np.uint8)
        plane[: h // 2] = np.clip(plane[: h // 2] // 8 * 8 + 3, 0, 255)  # ties and flat runs too
        want = cv2.resize(plane, (w * 4 // 5, h * 4 // 5), interpolation=cv2.INTER_AREA)
        np.testing.assert_array_equal(_area_5_4(plane), want)
        np.testing.assert_array_equal(_shrink(plane, (w * 4 // 5, h * 4 // 5)), want)

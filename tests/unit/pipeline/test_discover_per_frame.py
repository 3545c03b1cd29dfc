"""Discovery's per-frame work done by cheaper means gives the same values (bench/README.md,
"Cost, round 3"): the 4/5 area shrink from a decoder's padded plane, the frame differences
from OpenCV, and jump events from a uint8 |difference|."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from orchestrator.pipeline.discover import Discoverer
from orchestrator.pipeline.discover.core import _difference
from orchestrator.pipeline.discover.events import step_events
from orchestrator.pipeline.discover.features import _area_5_4, picture_slices


@pytest.mark.parametrize("pad", [0, 64])
def test_the_four_fifths_shrink_of_a_padded_plane_is_opencvs(pad):
    """A decoder's plane is a view with a row step wider than the picture (its line size)."""
    rng = np.random.default_rng(3)
    buffer = rng.integers(0, 256, (360, 640 + pad), np.uint8)
    buffer[:40] = 255
    buffer[40:80] = 0
    plane = buffer[:, :640]
    want = cv2.resize(np.ascontiguousarray(plane), (512, 288), interpolation=cv2.INTER_AREA)
    np.testing.assert_array_equal(_area_5_4(plane), want)


@pytest.mark.parametrize("area", [None, (40, 0, 160, 120)])
def test_the_frame_difference_is_numpys_and_zero_on_the_bars(area):
    rng = np.random.default_rng(4)
    a, b = (rng.integers(0, 256, (120, 200), np.uint8) for _ in range(2))
    at = picture_slices(area, a.shape)
    d, m = _difference(b, a, at)
    want = np.zeros(a.shape, np.int16)
    want[at] = b[at].astype(np.int16) - a[at]
    assert d.dtype == np.int16 and m.dtype == np.uint8
    np.testing.assert_array_equal(d, want)
    np.testing.assert_array_equal(m, np.abs(want))
    if area is not None:
        assert not d[:, :39].any() and not m[:, 161:].any()


def test_jump_events_from_a_uint8_magnitude_are_those_from_int16():
    rng = np.random.default_rng(5)
    base = rng.integers(20, 120, (120, 200), np.uint8)
    g = [base, base.copy(), base.copy(), base.copy()]
    for k in (2, 3):  # a bright patch arrives at frame 2 and stays; noise flickers elsewhere
        g[k][40:60, 60:100] = 240
    g[1][5:9, 5:9] = 200
    area = (0, 0, 200, 120)
    at = picture_slices(area, base.shape)
    (_, before), (step, step_abs), (_, after) = (_difference(y, x, at) for x, y in zip(g, g[1:]))
    wide = [x.astype(np.int16) for x in g]
    got = step_events(before, step, after, 2, area, step_abs)
    want = step_events(np.abs(wide[1] - wide[0]), wide[2] - wide[1], np.abs(wide[3] - wide[2]), 2, area)
    assert [(e.box, e.arrive) for e in got] == [(e.box, e.arrive) for e in want]
    assert any(e.arrive and e.box[0] <= 60 and e.box[2] >= 100 for e in got), got
    for e, w in zip(got, want):
        np.testing.assert_array_equal(e.mask, w.mask)


def test_a_white_patch_that_arrives_and_holds_is_a_jump_event_in_the_discoverer():
    """The per-frame path (differences, events) still sees an arrival on a moving picture."""
    rng = np.random.default_rng(6)
    d = Discoverer(200, 120, chunk=8)
    seen = []
    d._on_event = seen.append  # what the frame-to-frame path hands on
    for i in range(12):
        rgb = rng.integers(20, 120, (120, 200, 3), np.uint8)
        rgb = cv2.GaussianBlur(rgb, (0, 0), 6)  # a picture that changes smoothly, below STEP
        if i >= 6:
            rgb[40:60, 60:100] = 245
        d.add(i, rgb)
    assert any(e.arrive and e.frame == 6 and e.box[0] <= 62 and e.box[2] >= 98 for e in seen), seen


def _blobs_over_the_whole_mask(mask, area, min_pixels=10, max_share=(0.4, 0.3)):
    """The labelling over the whole mask (before "Cost, round 3"): what ``blobs`` must give."""
    joined = cv2.dilate(mask.astype(np.uint8), np.ones((3, 5), np.uint8))
    n, labels, stats, _ = cv2.connectedComponentsWithStats(joined, connectivity=8)
    pw, ph = area[2] - area[0], area[3] - area[1]
    out = []
    for i in range(1, n):
        x, y, w, h, a = stats[i]
        if w >= 5 and h >= 3 and w <= max_share[0] * pw and h <= max_share[1] * ph and a >= min_pixels:
            sub = mask[y : y + h, x : x + w] & (labels[y : y + h, x : x + w] == i)
            if int(sub.sum()) >= min_pixels:
                out.append(((int(x), int(y), int(x + w), int(y + h)), sub))
    return out


@pytest.mark.parametrize("seed", range(6))
def test_blobs_labelled_in_their_bounding_box_are_those_of_the_whole_mask(seed):
    from orchestrator.pipeline.discover.features import blobs

    rng = np.random.default_rng(seed)
    mask = np.zeros((120, 200), bool)
    for _ in range(rng.integers(1, 6)):  # patches of texture-like candidates, some at the edges
        x, y = int(rng.integers(-5, 190)), int(rng.integers(-3, 115))
        w, h = int(rng.integers(3, 40)), int(rng.integers(2, 20))
        patch = mask[max(0, y) : y + h, max(0, x) : x + w]
        patch[...] = rng.random(patch.shape) < 0.6
    got = blobs(mask, (0, 0, 200, 120))
    want = _blobs_over_the_whole_mask(mask, (0, 0, 200, 120))
    assert [b.box for b in got] == [box for box, _ in want]
    for b, (_, sub) in zip(got, want):
        np.testing.assert_array_equal(b.mask, sub)
    assert blobs(np.zeros((10, 10), bool), (0, 0, 10, 10)) == []

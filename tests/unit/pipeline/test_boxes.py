"""Boxes over time: NMS, snapping, gap filling, blip removal, jumps, dilation, regions."""

from __future__ import annotations

import numpy as np
import pytest

from box_support import A, B, det, none

from orchestrator.pipeline import boxes as bx
from orchestrator.pipeline.options import Region


def test_nms_keeps_best_of_overlapping_and_separate_boxes():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60], [0, 0, 9, 10]], np.float64)
    scores = np.array([0.6, 0.9, 0.5, 0.3])
    keep = bx.nms(boxes, scores, 0.45)
    assert keep.tolist() == [1, 2]
    assert bx.nms(np.zeros((0, 4)), np.zeros(0)).size == 0


def test_decode_detections_maps_letterbox_back_to_frame():
    # 1280x704 frame -> scale 0.5, new 640x352, pad_y 144.
    r, px, py = (0.5, 0, 144)  # new size 640x352
    out = np.zeros((5, 8400), np.float32)
    # Box [100,200,300,260] in frame -> letterbox cx=100, cy=144+115=259, w=100, h=30.
    out[:, 0] = [100, 259, 100, 30, 0.8]
    out[:, 1] = [101, 259, 100, 30, 0.7]  # duplicate, suppressed
    out[:, 2] = [400, 300, 50, 20, 0.1]  # below threshold
    d = bx.decode_detections(out, conf=0.25, iou=0.45, scale=r, pad_x=px, pad_y=py, width=1280, height=704)
    assert d.shape == (1, 5)
    np.testing.assert_allclose(d[0, :4], [100, 200, 300, 260], atol=1e-3)


def test_same_boxes():
    assert bx.same_boxes(det(A), det(A, jitter=2))
    assert not bx.same_boxes(det(A), det(B))
    assert not bx.same_boxes(det(A), none())
    assert bx.same_boxes(none(), none())


def test_snapping_removes_jitter():
    rng = np.random.default_rng(0)
    obs = {f: det(A, jitter=rng.uniform(-3, 3)) for f in range(0, 20)}
    tl = bx.build_timeline(20, obs)
    assert len(tl.positions) == 1
    boxes = [tuple(tl.boxes_at(f)[0]) for f in range(20)]
    assert len(set(boxes)) == 1  # every frame gets the same (median) box
    np.testing.assert_allclose(boxes[0], A, atol=1.5)


def test_strided_observations_fill_unobserved_frames():
    obs = {f: det(A) for f in range(0, 41, 8)}
    tl = bx.build_timeline(41, obs)
    assert tl.present[0].all()


def test_fills_missed_frames_and_drops_one_frame_blip():
    obs = {f: det(A) for f in range(30)}
    for f in (10, 11, 12):  # detector missed three frames
        obs[f] = none()
    obs[20] = np.concatenate([det(A), det(B)])  # one-frame false positive at B
    tl = bx.build_timeline(30, obs, max_gap=5)
    a = int(np.argmin(np.abs(tl.positions - A).sum(1)))
    assert tl.present[a].all()
    assert tl.present.sum(0).max() == 1  # the blip at B is gone
    assert len(tl.boxes_at(20)) == 1


def test_long_absence_is_not_filled():
    obs = {f: (det(A) if f < 10 or f >= 40 else none()) for f in range(50)}
    tl = bx.build_timeline(50, obs, max_gap=12)
    assert not tl.present[:, 10:40].any()
    assert tl.present[:, :10].all() and tl.present[:, 40:].all()


def test_jump_with_fade_gets_both_positions():
    obs = {}
    for f in range(60):
        obs[f] = det(A) if f < 28 else (none() if f < 32 else det(B))
    tl = bx.build_timeline(60, obs, max_gap=8)
    assert len(tl.positions) == 2
    for f in range(28, 32):
        assert len(tl.boxes_at(f)) == 2  # both neighbours' boxes over the faded frames
    assert len(tl.boxes_at(10)) == 1 and len(tl.boxes_at(50)) == 1


def test_no_detections():
    tl = bx.build_timeline(10, {f: none() for f in range(10)})
    assert tl.frames_with_boxes() == 0
    assert bx.frame_boxes(tl, 3, 0.1, [], 100, 100).shape == (0, 4)


def test_dilate_grows_and_clips():
    out = bx.dilate(np.array([[10, 10, 110, 60]]), 115, 200, frac=0.1, px=2)
    assert out.tolist() == [[0, 3, 115, 67]]
    assert out.dtype == np.int32


def test_regions_with_time_ranges_replace_or_add():
    regions = [Region(box=(0, 0, 20, 20)), Region(box=(50, 50, 60, 70), start=1.0, end=2.0)]
    obs = {f: det([30, 30, 40, 40]) for f in range(10)}
    tl = bx.build_timeline(10, obs)
    only_regions = bx.frame_boxes(None, 0, 0.5, regions, 100, 100)
    assert only_regions.tolist() == [[0, 0, 20, 20]]
    both = bx.frame_boxes(tl, 0, 1.5, regions, 100, 100, frac=0, px=1)
    assert both.tolist() == [[29, 29, 41, 41], [0, 0, 20, 20], [50, 50, 60, 70]]
    assert bx.frame_boxes(None, 0, 2.0, regions, 100, 100).tolist() == [[0, 0, 20, 20]]


@pytest.mark.parametrize("n", [1, 2])
def test_tiny_videos(n):
    tl = bx.build_timeline(n, {0: det(A)})
    assert tl.present[:, :n].all()


def test_unrefined_interval_gets_both_positions():
    # Samples every 8 frames, refinement stopped at a span of 8: frames 17..23 are unknown.
    obs = {f: (det(A) if f <= 16 else det(B)) for f in range(0, 41, 8)}
    tl = bx.build_timeline(41, obs)
    assert all(len(tl.boxes_at(f)) == 1 for f in list(range(0, 17)) + list(range(24, 41)))
    assert all(len(tl.boxes_at(f)) == 2 for f in range(17, 24))


def test_a_visit_cut_short_by_the_videos_end_is_kept():
    # A until 118, B on the last frame only (the mark jumped there as the video ends); a one-frame
    # blip of B in the middle is still dropped.
    obs = {i: det(A) for i in range(0, 119, 8)}
    obs.update({118: det(A), 119: det(B), 60: np.concatenate([det(A), det(B, 0.9)])})
    tl = bx.build_timeline(120, obs, max_gap=0)
    ib = int(np.argmin(np.abs(tl.positions - B).sum(1)))
    assert tl.present[ib, 119] and not tl.present[ib, 60]

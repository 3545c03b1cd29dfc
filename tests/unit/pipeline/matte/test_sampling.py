"""Crops and clean references kept for the matte (``CropSampler``), as pass 1 reports them."""

from __future__ import annotations

import numpy as np

from orchestrator.pipeline import matte

BOX = np.array([[100.0, 50, 160, 80]])


def _frame(value: int) -> np.ndarray:
    return np.full((180, 320, 3), value, np.uint8)


def test_crops_stay_bounded_and_spread_over_the_video():
    sampler = matte.CropSampler(per_position=8)
    for i in range(40):
        sampler.on_marked(i, _frame(i), BOX)
    assert len(sampler.windows) == 1
    assert len(sampler.crops[0]) < 8 and sampler.frames[0][0] == 0 and sampler.frames[0][-1] >= 32
    assert [int(c[0, 0, 0]) for c in sampler.crops[0]] == sampler.frames[0]  # each crop from its frame


def test_position_crops_pair_each_crop_with_the_nearest_clean_reference():
    params = matte.MatteParams(reference_span=5)
    sampler = matte.CropSampler(per_position=48)
    for i in (0, 10, 18):
        sampler.on_marked(i, _frame(i), BOX)
    sampler.on_clean(20, _frame(200), BOX[0], 21, _frame(21))
    sampler.on_clean(20, _frame(200), BOX[0], 21, _frame(21))  # reported twice: kept once
    sampler.on_clean(20, _frame(200), np.array([0.0, 0, 10, 10]), 21, _frame(21))  # unknown position
    got = sampler.position_crops(0, params)
    assert got.crops.shape[0] == 4 and int(got.crops[3][0, 0, 0]) == 21  # the reference's marked half
    assert sorted(got.references) == [2, 3]  # frame 18 is within 5 frames of the clean frame 20
    assert all(int(r[0, 0, 0]) == 200 for r in got.references.values())
    assert got.origins[3] == got.origins[0]  # the same window in both frames


def test_windows_near_the_edge_shift_inside_the_frame():
    sampler = matte.CropSampler(per_position=8)
    sampler.on_marked(0, _frame(1), np.array([[2.0, 2, 62, 32]]))
    sampler.on_marked(1, _frame(1), np.array([[0.0, 0, 60, 30]]))
    assert all(o == (0, 0) for o in sampler.origins[0])
    assert sampler.crops[0][0].shape == sampler.crops[0][1].shape


def _marked_frame(box) -> np.ndarray:
    """A frame with a white mark filling ``box`` (x0, y0, x1, y1) on grey."""
    f = _frame(60)
    x0, y0, x1, y1 = (int(v) for v in box)
    f[y0:y1, x0:x1] = 255
    return f


def test_a_whole_mark_gets_its_own_window_when_the_first_box_was_a_part_of_it():
    # The place's first box is the icon alone (a jump event before the text is seen), then the
    # whole mark: the whole mark's crops must not be cut to the icon's window (saturated 9101).
    mark = (100, 60, 190, 90)
    icon = np.array([[100.0, 60, 130, 90]])
    sampler = matte.CropSampler(per_position=48)
    for i in range(3):
        sampler.on_marked(i, _marked_frame(mark), icon)
    for i in range(3, 10):
        sampler.on_marked(i, _marked_frame(mark), np.array([mark], np.float64))
    assert len(sampler.windows) == 2 and len(sampler.crops[0]) == 3 and len(sampler.crops[1]) == 7
    win = sampler.windows[1]
    assert win[0] <= mark[0] and win[2] >= mark[2], win
    # every crop of the whole mark's window holds its whole width (90 px of white), grey both sides
    crops = sampler.position_crops(1).crops
    assert all(int((c == 255).all(-1).any(0).sum()) == 90 for c in crops)
    assert all((c[:, 0] == 60).all() and (c[:, -1] == 60).all() for c in crops)
    # and a box that fits a window still joins it
    sampler.on_marked(10, _marked_frame(mark), np.array([[102.0, 61, 188, 89]]))
    assert len(sampler.windows) == 2 and len(sampler.crops[1]) == 8

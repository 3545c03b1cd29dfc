"""The clip-kind registry (export.clips): kinds × seeds, truth that matches the pixels, frozen seeds."""

from __future__ import annotations

import av
import numpy as np
import pytest

from export import clips
from export.clips import FrameScore, covers, frame_score


def _visits(truth) -> list[tuple]:
    """(box of the visit's first frame, slot) per run of frames at one slot."""
    runs, last = [], None
    for p, b in zip(truth.placements, truth.boxes):
        if b is not None and p.slot != last:
            runs.append((b, p.slot))
            last = p.slot
    return runs


def test_seed_sets_are_fixed_and_disjoint():
    assert set(clips.TUNING_SEEDS).isdisjoint(clips.HELDOUT_SEEDS)
    assert clips.HELDOUT_SEEDS == (7001, 7002, 7003)  # frozen: changing them voids every held-out figure
    assert clips.FRESH_SEEDS == (9201, 9202, 9203)
    assert set(clips.FRESH_SEEDS).isdisjoint(set(clips.TUNING_SEEDS) | set(clips.HELDOUT_SEEDS))
    assert set(clips.KINDS) == set(clips.MARKED_KINDS) | set(clips.MARK_FREE_KINDS)
    with pytest.raises(ValueError, match="unknown clip kind"):
        clips.clip_spec("nope", 1)


@pytest.mark.parametrize("kind", clips.KINDS)
def test_every_kind_has_truth_that_matches_its_pixels(kind):
    spec = clips.clip_spec(kind, 7001)
    assert spec == clips.clip_spec(kind, 7001)
    truth = spec.truth()
    assert (truth.width, truth.height) == (spec.width, spec.height)
    marked = [i for i, b in enumerate(truth.boxes) if b is not None]
    if kind in clips.MARK_FREE_KINDS:
        assert not marked and np.array_equal(truth.marked_frame(3), truth.clean_frame(3))
        return
    assert len(marked) == truth.n_frames  # the mark is always somewhere
    i = marked[len(marked) // 2]
    a, w = truth.alpha(i), truth.color(i)
    clean, got = truth.clean_frame(i).astype(np.float32), truth.marked_frame(i).astype(np.float32)
    want = a[..., None] * w + (1 - a[..., None]) * clean
    err = np.abs(want - got)
    if truth.source == truth.picture[2:]:
        assert err.max() <= 1.0  # exact up to rounding
    else:  # scaled after marking: mean(α·B) ≠ mean(α)·mean(B) where both vary inside the filter
        assert err.max() <= 10.0 and (err > 2).mean() < 1e-4
    x1, y1, x2, y2 = truth.boxes[i]
    outside = np.ones(a.shape, bool)
    outside[y1:y2, x1:x2] = False
    assert a[outside].max() == 0 and a[y1:y2, x1:x2].max() > 0.5
    lo, hi = (0.55, 0.55) if kind == "other_shape" else (0.75, 0.84)
    assert lo <= a.max() <= hi + 1e-6


def test_pillarbox_is_a_portrait_picture_between_black_bars_with_a_60x20_mark():
    truth = clips.clip_spec("pillarbox", 1).truth()
    px, py, pw, ph = truth.picture
    assert (truth.width, truth.height, pw, ph) == (1280, 704, 396, 704)
    f = truth.marked_frame(10)
    assert f[:, :px].max() == 0 and f[:, px + pw:].max() == 0
    for b in {b for b in truth.boxes if b}:
        assert px <= b[0] and b[2] <= px + pw  # the mark lives in the picture, never on the bars
    full = [b for p, b in zip(truth.placements, truth.boxes) if p.text]
    x1, y1, x2, y2 = full[0]
    assert 55 <= x2 - x1 <= 65 and 17 <= y2 - y1 <= 23


def test_ten_seconds_revisit_the_three_positions_and_the_text_leaves_first():
    truth = clips.clip_spec("revisits_10s", 2).truth()
    visits = _visits(truth)
    assert len(visits) >= 4 and {s for _, s in visits} == {0, 1, 2}
    by_slot = {}
    for b, s in visits:
        by_slot.setdefault(s, set()).add(b)
    assert all(len(v) == 1 for v in by_slot.values())  # a revisit lands on the same pixels
    # Before each jump the box shrinks to the cloud for 2 frames, then the next position is whole.
    jumps = [i for i in range(1, truth.n_frames) if truth.placements[i].slot != truth.placements[i - 1].slot]
    for j in jumps:
        before, cloud_only, after = truth.boxes[j - 3], truth.boxes[j - 1], truth.boxes[j]
        assert cloud_only[2] - cloud_only[0] < (before[2] - before[0]) / 2
        assert after[2] - after[0] == before[2] - before[0]
        assert truth.placements[j].text and truth.alpha(j).max() == pytest.approx(truth.opacity, abs=1e-3)


def test_other_shape_is_a_ring_jumping_between_three_places():
    truth = clips.clip_spec("other_shape", 3).truth()
    assert truth.mark == "ring" and truth.opacity == 0.55
    assert len({b for b in truth.boxes}) == 3


def test_1080p_is_a_scaled_sora_frame_with_bars():
    truth = clips.clip_spec("1080p", 1).truth()
    f = truth.clean_frame(0)
    assert f.shape == (1080, 1920, 3) and f[:12].max() == 0 and f[-12:].max() == 0 and f[12:-12].std() > 3
    b = next(b for p, b in zip(truth.placements, truth.boxes) if p.text)
    assert 215 <= b[2] - b[0] <= 235  # 149 px at 1280x704, scaled by 1.5


def test_make_writes_marked_and_clean_videos(tmp_path):
    clip = clips.make("clean_faces_text", 5, tmp_path)
    again = clips.make("clean_faces_text", 5, tmp_path)
    assert again.marked == clip.marked and again.truth.boxes == clip.truth.boxes
    with av.open(str(clip.clean)) as c:
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    assert len(frames) == clip.truth.n_frames
    mse = np.mean((frames[7].astype(float) - clip.truth.clean_frame(7)) ** 2)
    assert 10 * np.log10(255 ** 2 / mse) > 30
    assert clip.marked.stat().st_size > 0


def test_frame_score_counts_marks_found_and_boxes_right():
    class Timeline:
        positions = np.ones((1, 4))
        boxes = {0: [(0, 0, 10, 10)], 1: [(5, 0, 15, 10), (50, 50, 60, 60)], 2: [(0, 0, 4, 10)], 3: [(0, 0, 10, 10)]}

        def boxes_at(self, i):
            return np.array(self.boxes.get(i, []), np.float64).reshape(-1, 4)

    truth = [(0, 0, 10, 10), (0, 0, 10, 10), (0, 0, 10, 10), None]
    # frame 1: half covered counts; frame 2: 40 % does not; frame 3: a box on a mark-free frame is wrong
    assert frame_score(truth, Timeline()) == FrameScore(marked=3, found=2, boxes=5, right=2)
    assert covers((5, 0, 15, 10), (0, 0, 10, 10)) and not covers((6, 0, 15, 10), (0, 0, 10, 10))

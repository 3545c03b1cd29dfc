"""The project's mark, its positions and the synthetic clips with ground truth (export.watermark)."""

from __future__ import annotations

import av
import numpy as np
import pytest
from PIL import Image

from export import watermark as wm


def test_compositing_follows_the_matte_formula():
    t = wm.Template(alpha=np.array([[0.0, 0.5], [1.0, 0.25]], np.float32),
                    color=np.full((2, 2, 3), 200.0, np.float32))
    bg = np.full((4, 5, 3), 40, np.uint8)
    out = wm.composite(bg, t, 1, 2, opacity=0.8)
    a = t.alpha * 0.8
    want = np.rint(a * 200 + (1 - a) * 40)
    assert np.array_equal(out[2:4, 1:3, 0], want.astype(np.uint8))
    outside = np.ones((4, 5), bool)
    outside[2:4, 1:3] = False
    assert np.array_equal(out[outside], bg[outside])
    assert np.allclose(wm.alpha_map(5, 4, t, 1, 2, 0.8)[2:4, 1:3], a)


def test_compositing_cuts_marks_that_leave_the_frame():
    t = wm.sora_template(60)
    bg = np.zeros((40, 50, 3), np.uint8)
    out = wm.composite(bg, t, 30, -5, 1.0)  # sticks out right and top
    assert out.shape == bg.shape and out[:, :30].max() == 0 and out[:, 30:].max() > 0
    assert np.array_equal(wm.composite(bg, t, 500, 500, 1.0), bg)
    with pytest.raises(ValueError):
        wm.composite(bg.astype(np.float32), t, 0, 0, 1.0)


def test_template_is_tight_white_and_sized():
    with_user = wm.sora_template(150)
    without = wm.sora_template(150, username=None)
    for t in (with_user, without):
        assert t.width <= 150 and t.width >= 140
        assert 0.0 <= t.alpha.min() and t.alpha.max() <= 1.0 and t.alpha.max() > 0.95
        assert np.all(t.color == 255)
        # tight: every border row/column carries the mark
        assert t.alpha[0].max() > 0 and t.alpha[-1].max() > 0 and t.alpha[:, 0].max() > 0 and t.alpha[:, -1].max() > 0
    assert with_user.height > without.height * 1.2
    # the Sora mark is about 150x55 with its username line
    assert 40 <= with_user.height <= 65


def test_user_png_template(tmp_path):
    rgba = np.zeros((20, 40, 4), np.uint8)
    rgba[5:15, 10:30] = (255, 0, 0, 128)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "mark.png")
    t = wm.template_from_png(tmp_path / "mark.png")
    assert (t.height, t.width) == (10, 20)
    assert np.allclose(t.alpha, 128 / 255) and np.all(t.color[..., 0] == 255) and np.all(t.color[..., 1] == 0)
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "opaque.png")
    with pytest.raises(ValueError, match="transparency"):
        wm.template_from_png(tmp_path / "opaque.png")
    (tmp_path / "junk.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match="cannot read"):
        wm.template_from_png(tmp_path / "junk.png")


@pytest.mark.parametrize("size", [(1280, 704), (704, 1280), (640, 360), (360, 640), (1920, 1080), (320, 320)])
def test_sora_slots_lie_inside_the_frame(size):
    w, h = size
    t = wm.template_for_frame(w, h)
    slots = wm.sora_slots(w, h, t.width, t.height)
    assert len(set(slots)) == 3
    for x, y in slots:
        assert 0 <= x <= w - t.width and 0 <= y <= h - t.height
    (x0, y0), (x1, y1), (x2, y2) = slots
    assert y0 < y1 < y2  # top-left -> middle-right -> bottom-left
    assert x1 > w / 2 > x0 and x2 < w / 2


def test_sora_slots_match_the_measured_boxes_at_native_size():
    t = wm.template_for_frame(1280, 704)
    for (x, y), box in zip(wm.sora_slots(1280, 704, t.width, t.height), wm.LANDSCAPE_BOXES):
        cx, cy = x + t.width / 2, y + t.height / 2
        assert abs(cx - (box[0] + box[2]) / 2) < 10 and abs(cy - (box[1] + box[3]) / 2) < 3


def test_schedule_jumps_every_67_frames_with_fades():
    s = wm.sora_schedule(300, width=1280, height=704, fps=30, tw=150, th=54, opacity=0.7, fade_frames=2, jitter=0)
    slots = [p.slot for p in s]
    assert slots[:67] == [0] * 67 and slots[67:134] == [1] * 67 and slots[134:201] == [2] * 67 and slots[201] == 0
    assert s[0].opacity == pytest.approx(0.7)  # no fade-in at the clip start
    assert s[66].opacity < 0.7 and s[67].opacity < 0.7 and s[70].opacity == pytest.approx(0.7)
    assert all(0 < p.opacity <= 0.7 for p in s)
    assert s[-1].opacity == pytest.approx(0.7)  # no fade-out at the clip end
    with pytest.raises(ValueError):
        wm.sora_schedule(10, width=64, height=64, fps=30, tw=10, th=5, opacity=1.5)


def test_truth_is_deterministic_and_seed_dependent():
    a = wm.ClipTruth(320, 180, 30.0, 10, seed=3)
    b = wm.ClipTruth(320, 180, 30.0, 10, seed=3)
    c = wm.ClipTruth(320, 180, 30.0, 10, seed=4)
    assert np.array_equal(a.clean_frame(7), b.clean_frame(7)) and np.array_equal(a.marked_frame(7), b.marked_frame(7))
    assert not np.array_equal(a.clean_frame(7), c.clean_frame(7))
    assert not np.array_equal(a.clean_frame(0), a.clean_frame(9))  # the camera moves
    box = a.boxes[5]
    diff = np.abs(a.marked_frame(5).astype(int) - a.clean_frame(5).astype(int)).max(axis=2) > 0
    ys, xs = np.nonzero(diff)
    assert box[0] <= xs.min() and xs.max() < box[2] and box[1] <= ys.min() and ys.max() < box[3]
    assert np.array_equal(a.mask(5), a.alpha(5) > 0.01)
    with pytest.raises(IndexError):
        a.clean_frame(10)


@pytest.mark.parametrize("bg", ["texture", "gradient", "stripes", "photo:astronaut"])
def test_backgrounds_render_at_the_requested_size(bg):
    frame = wm.Background(200, 120, seed=1, kind=bg).frame(3)
    assert frame.shape == (120, 200, 3) and frame.dtype == np.uint8 and frame.std() > 3


def test_make_clip_writes_a_decodable_h264_with_audio(tmp_path):
    path = tmp_path / "clip.mp4"
    truth = wm.make_clip(path, width=320, height=180, fps=15, seconds=2.0, seed=2, audio=True)
    assert truth.n_frames == 30 and len(truth.boxes) == 30 and all(b is not None for b in truth.boxes)
    with av.open(str(path)) as container:
        assert container.streams.video[0].codec_context.name == "h264"
        assert container.streams.audio[0].codec_context.name == "aac"
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(frames) == 30 and frames[0].shape == (180, 320, 3)
    for i in (0, 29):  # decoded ≈ ground truth (crf 18)
        mse = np.mean((frames[i].astype(float) - truth.marked_frame(i)) ** 2)
        assert 10 * np.log10(255**2 / mse) > 30
    truth.save(tmp_path / "truth.json")
    again = wm.ClipTruth.load(tmp_path / "truth.json")
    assert again.boxes == truth.boxes and np.array_equal(again.clean_frame(4), truth.clean_frame(4))


def test_make_clip_rejects_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="even"):
        wm.make_clip(tmp_path / "x.mp4", width=321, height=180, seconds=1)
    with pytest.raises(ValueError):
        wm.make_clip(tmp_path / "x.mp4", width=320, height=180, seconds=0)
    with pytest.raises(ValueError, match="unknown background"):
        wm.make_clip(tmp_path / "x.mp4", width=320, height=180, seconds=1, background="nope")


def test_a_four_second_clip_generates_quickly(tmp_path):
    import time

    t0 = time.perf_counter()
    wm.make_clip(tmp_path / "c.mp4", width=640, height=360, fps=30, seconds=4.0, seed=0)
    assert time.perf_counter() - t0 < 20  # a few seconds normally; generous for a loaded CI machine


def test_cli_writes_clip_and_truth(tmp_path):
    out = tmp_path / "sample.mp4"
    assert wm.main(["--out", str(out), "--width", "160", "--height", "90", "--seconds", "0.5", "--no-audio"]) == 0
    truth = wm.ClipTruth.load(tmp_path / "sample.truth.json")
    assert out.stat().st_size > 0 and truth.n_frames == 15
    assert wm.main(["--out", str(tmp_path / "odd.mp4"), "--width", "161"]) == 2

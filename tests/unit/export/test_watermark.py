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


def test_sora_mark_follows_the_measured_facts():
    """Solid white cloud ≈52×50 + "Sora" ≈81×27 = ≈152×50 on a 704-px picture; dark pupils with a
    white highlight; the text can leave while the cloud stays; the pupils move."""
    t = wm.sora_mark(1.0)
    assert 145 <= t.width <= 156 and 46 <= t.height <= 52
    cloud = t.alpha[:, :50]
    assert (cloud > 0.99).mean() > 0.6  # solid, not an outline
    dark = (t.color.max(axis=2) < 60) & (t.alpha > 0.99)
    assert 20 <= dark.sum() <= 120 and dark[:, 50:].sum() == 0  # two small pupils inside the cloud
    ys, xs = np.nonzero(dark)
    assert xs.max() - xs.min() > 10  # two of them, side by side
    pupil_box = t.color[ys.min():ys.max() + 1, xs.min():xs.max() + 1].min(axis=2)
    assert (pupil_box > 200).any()  # star highlights inside the pupils
    text = t.alpha[:, 70:]
    assert text.max() > 0.95 and np.all(t.color[:, 70:][text > 0.05] > 250)  # white wordmark
    cols = np.nonzero(text.max(axis=0) > 0.05)[0]
    assert 75 <= cols.max() - cols.min() + 1 <= 86
    gone = wm.sora_mark(1.0, text=False)
    assert gone.alpha.shape == t.alpha.shape and gone.alpha[:, 60:].max() == 0
    assert np.array_equal(gone.alpha[:, :55], t.alpha[:, :55])
    moved = wm.sora_mark(1.0, eyes=(2.0, 1.0))
    assert np.array_equal(moved.alpha, t.alpha) and not np.array_equal(moved.color, t.color)
    with_user = wm.sora_mark(1.0, username="@someone")
    assert with_user.alpha[:, 70:][with_user.alpha.shape[0] // 2 + 8:].max() > 0.5  # a second line


def test_mark_size_follows_the_picture_not_the_frame():
    assert wm.template_for_frame(704, 1280).width == wm.template_for_frame(1280, 704).width
    small = wm.template_for_frame(396, 704, scale=0.7)
    assert 56 <= small.width <= 64 and 18 <= small.height <= 22  # ≈60×20 as measured
    full = wm.sora_template(150, username=None)
    assert abs(full.width - 150) <= 3


def test_ring_mark_is_another_shape():
    t = wm.ring_mark(30)
    assert t.height == 30 and 50 <= t.width <= 60 and np.all(t.color == 255)
    assert t.alpha[15, 15] == 0 and t.alpha[15, 2] > 0.9  # a ring: hollow centre


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


@pytest.mark.parametrize("size", [(1280, 704), (704, 1280), (640, 360), (360, 640), (1920, 1080), (396, 704)])
def test_sora_slots_lie_inside_the_picture_in_visiting_order(size):
    w, h = size
    t = wm.template_for_frame(w, h)
    slots = wm.sora_slots(w, h, t.width, t.height)
    assert len(set(slots)) == 3
    for x, y in slots:
        assert 0 <= x <= w - t.width and 0 <= y <= h - t.height
    (x0, y0), (x1, y1), (x2, y2) = slots  # right-middle -> left-lower -> top-left
    assert x0 > w / 2 > x1 and x2 < w / 2 and y2 < y0 < y1


def test_portrait_slots_are_the_measured_fractions():
    w, h = 704, 1280
    t = wm.template_for_frame(w, h)
    got = wm.sora_slots(w, h, t.width, t.height)
    for (x, y), (fx, fy) in zip(got, wm.PORTRAIT_FRACTIONS):
        assert abs(x - fx * w) <= 8 and abs(y - fy * h) <= 2
    public = wm.sora_slots(w, h, t.width, t.height, layout="public")
    assert public[2] == (25, int(round((79 + 136) / 2 - t.height / 2)))


def test_sora_slots_match_the_public_landscape_boxes():
    t = wm.template_for_frame(1280, 704)
    boxes = [wm.LANDSCAPE_BOXES[k] for k in (1, 2, 0)]
    for (x, y), box in zip(wm.sora_slots(1280, 704, t.width, t.height), boxes):
        cx, cy = x + t.width / 2, y + t.height / 2
        assert abs(cx - (box[0] + box[2]) / 2) < 10 and abs(cy - (box[1] + box[3]) / 2) < 3


def test_schedule_jumps_every_67_frames_and_the_text_leaves_first():
    s = wm.sora_schedule(300, width=1280, height=704, fps=30, tw=150, th=50, opacity=0.8)
    slots = [p.slot for p in s]
    assert slots[:67] == [0] * 67 and slots[67:134] == [1] * 67 and slots[134:201] == [2] * 67 and slots[201] == 0
    assert all(p.opacity == pytest.approx(0.8) for p in s)  # constant α, no fades
    assert [p.text for p in s[62:68]] == [True, True, True, False, False, True]
    assert s[67].text and s[67].opacity == pytest.approx(0.8)  # full strength at once
    assert s[-1].text  # the clip ends mid-visit: no exit
    assert len({p.eyes for p in s[:67]}) > 10  # the pupils move from frame to frame
    assert (s[0].x, s[0].y) == (s[201].x, s[201].y)  # revisits are exact
    shifted = wm.sora_schedule(100, width=1280, height=704, fps=30, tw=150, th=50, phase=60)
    assert [p.slot for p in shifted[:8]] == [0] * 7 + [1] and not shifted[5].text
    with pytest.raises(ValueError):
        wm.sora_schedule(10, width=64, height=64, fps=30, tw=10, th=5, opacity=1.5)


def test_default_opacity_is_drawn_in_the_measured_range():
    ops = {wm.ClipTruth(320, 180, 30.0, 2, seed=s).opacity for s in range(12)}
    assert len(ops) > 5 and all(0.75 <= o <= 0.84 for o in ops)
    assert wm.ClipTruth(320, 180, 30.0, 2, mark="ring").opacity == 0.55


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


@pytest.mark.parametrize("bg", ["texture", "gradient", "stripes", "photo:astronaut", *wm.SCENE_KINDS])
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


def test_cli_writes_clip_and_truth(tmp_path):
    out = tmp_path / "sample.mp4"
    assert wm.main(["--out", str(out), "--width", "160", "--height", "90", "--seconds", "0.5", "--no-audio"]) == 0
    truth = wm.ClipTruth.load(tmp_path / "sample.truth.json")
    assert out.stat().st_size > 0 and truth.n_frames == 15
    assert wm.main(["--out", str(tmp_path / "odd.mp4"), "--width", "161"]) == 2
    assert wm.main(["--out", str(tmp_path / "k.mp4"), "--kind", "clean", "--seed", "3", "--no-audio"]) == 0
    assert wm.ClipTruth.load(tmp_path / "k.truth.json").mark is None

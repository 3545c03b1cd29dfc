"""Decode/encode without Triton: validation errors, timestamps, audio packets, rotation, odd sizes."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from orchestrator.errors import InputError
from orchestrator.pipeline.decode import iter_frames, letterbox_params, probe
from orchestrator.pipeline.encode import Encoder, pixel_format
from media import audio_packets, make_clip, psnr, read_frames

LIMITS = dict(max_width=4096, max_height=4096, max_duration_s=3600)


def roundtrip(src: Path, dst: Path) -> None:
    info = probe(src, **LIMITS)
    enc = Encoder(dst, info, input_path=src, crf=18, preset="ultrafast")
    for d in iter_frames(src):
        enc.write(d.frame, d.pts)
    enc.close()


def test_roundtrip_keeps_timestamps_audio_rotation(tmp_path):
    src, dst = tmp_path / "in.mp4", tmp_path / "out.mp4"
    make_clip(src, width=160, height=96, frames=24, audio=True, rotation=90, vfr=True)
    roundtrip(src, dst)
    pts_in, img_in = read_frames(src)
    pts_out, img_out = read_frames(dst)
    assert pts_in == pts_out and len(pts_in) == 24
    assert len(set(np.diff(pts_in))) > 1  # really variable frame rate
    assert min(psnr(a, b) for a, b in zip(img_in, img_out)) > 40
    assert audio_packets(src) == audio_packets(dst) and audio_packets(src)
    with av.open(str(dst)) as c:
        frame = next(c.decode(video=0))
        assert frame.rotation == 90
        assert (c.streams.video[0].width, c.streams.video[0].height) == (160, 96)
        assert c.streams.video[0].codec_context.pix_fmt == "yuv420p"


def test_odd_size_keeps_resolution(tmp_path):
    src, dst = tmp_path / "odd.mp4", tmp_path / "out.mp4"
    make_clip(src, width=161, height=95, frames=6)
    roundtrip(src, dst)
    with av.open(str(dst)) as c:
        s = c.streams.video[0]
        assert (s.width, s.height) == (161, 95)
        assert not c.streams.audio
    assert pixel_format(161, 95) == "yuv444p" and pixel_format(160, 96) == "yuv420p"
    assert len(read_frames(dst)[0]) == 6


def test_rejects_non_videos(tmp_path):
    text = tmp_path / "notes.mp4"
    text.write_text("hello, not a video\n" * 10)
    with pytest.raises(InputError, match="not a video"):
        probe(text, **LIMITS)
    png = tmp_path / "still.png"
    with av.open(str(png), "w", format="image2") as c:
        s = c.add_stream("png")
        s.width, s.height, s.pix_fmt = 32, 32, "rgb24"
        for p in s.encode(av.VideoFrame.from_ndarray(np.zeros((32, 32, 3), np.uint8), format="rgb24")):
            c.mux(p)
    with pytest.raises(InputError, match="still image"):
        probe(png, **LIMITS)
    audio = tmp_path / "audio.m4a"
    with av.open(str(audio), "w", format="mp4") as c:
        s = c.add_stream("aac", rate=44100)
        s.layout = "mono"
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="flt", layout="mono")
        frame.sample_rate, frame.pts = 44100, 0
        for p in list(s.encode(frame)) + list(s.encode()):
            c.mux(p)
    with pytest.raises(InputError, match="audio but no video"):
        probe(audio, **LIMITS)
    with pytest.raises(InputError, match="does not exist"):
        probe(tmp_path / "missing.mp4", **LIMITS)


def test_limits(tmp_path):
    src = tmp_path / "in.mp4"
    make_clip(src, width=160, height=96, frames=30)
    with pytest.raises(InputError, match="resolution 160x96 is above"):
        probe(src, max_width=100, max_height=4096, max_duration_s=60)
    with pytest.raises(InputError, match="duration"):
        probe(src, max_width=4096, max_height=4096, max_duration_s=0.5)


def test_letterbox_params_match_ultralytics():
    assert letterbox_params(1280, 704) == (0.5, 640, 352, 0, 144)
    assert letterbox_params(704, 1280) == (0.5, 352, 640, 144, 0)


def test_yuv_canvas_edits_only_the_area():
    import cv2

    from orchestrator.pipeline.inpaint import YuvCanvas, even_box

    rgb = np.zeros((64, 96, 3), np.uint8)
    rgb[..., 0] = np.arange(96)[None, :] * 2
    rgb[..., 1] = np.arange(64)[:, None] * 3
    frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")
    canvas = YuvCanvas(frame)
    assert YuvCanvas.supports(frame)
    area = even_box(11, 7, 41, 33, 96, 64)
    assert area == (10, 6, 42, 34)
    part = canvas.read(*area)
    full = cv2.cvtColor(frame.to_ndarray(), cv2.COLOR_YUV2RGB_I420)
    assert np.array_equal(part, full[6:34, 10:42])
    part[:] = (200, 30, 30)
    canvas.write(area[0], area[1], part)
    out = canvas.to_frame().to_ndarray(format="rgb24")
    assert np.abs(out[10:30, 14:38].astype(int) - (200, 30, 30)).max() < 8
    outside = frame.to_ndarray(format="rgb24")
    assert np.array_equal(out[40:], outside[40:]) and np.array_equal(out[:, 50:], outside[:, 50:])


def test_yuv_canvas_in_place_edits_do_not_disturb_later_frames(tmp_path):
    """YuvCanvas writes into the decoded frame's planes: the decoder's reference frames must stay
    intact (make_writable copies them), so every later frame decodes as without edits."""
    from orchestrator.pipeline.inpaint import YuvCanvas

    src = tmp_path / "in.mp4"
    make_clip(src, width=160, height=96, frames=20)
    clean = [d.frame.to_ndarray(format="rgb24") for d in iter_frames(src)]
    for d in iter_frames(src):
        canvas = YuvCanvas(d.frame)
        canvas.write(0, 0, np.full((32, 48, 3), 255, np.uint8))
        out = canvas.to_frame().to_ndarray(format="rgb24")
        assert out[:30, :46].min() > 240
        assert np.array_equal(out[34:], clean[d.index][34:]), d.index
        assert np.array_equal(out[:, 50:], clean[d.index][:, 50:]), d.index

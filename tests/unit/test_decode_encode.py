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

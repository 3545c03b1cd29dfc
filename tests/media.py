"""Test clips encoded with PyAV: textured moving content, optional AAC audio, rotation, VFR."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np


def background(width: int, height: int, index: int) -> np.ndarray:
    """Smooth moving colour gradients: compress well, and any change under a box is visible."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    t = index * 0.15
    r = 128 + 90 * np.sin(x / 37.0 + t)
    g = 128 + 90 * np.sin(y / 29.0 - t * 0.7)
    b = 128 + 60 * np.sin((x + y) / 53.0 + t * 0.3)
    return np.clip(np.stack([r, g, b], -1), 0, 255).astype(np.uint8)


def add_mark(frame: np.ndarray, box: tuple[int, int, int, int], opacity: float = 0.7) -> np.ndarray:
    """A white semi-transparent rectangle with a darker hole: a crude stand-in for the logo."""
    x1, y1, x2, y2 = box
    out = frame.astype(np.float32)
    alpha = np.zeros(frame.shape[:2], np.float32)
    alpha[y1:y2, x1:x2] = opacity
    cy, cx = (y1 + y2) // 2, (x1 + x2) // 2
    alpha[cy - (y2 - y1) // 6 : cy + (y2 - y1) // 6, cx - (x2 - x1) // 6 : cx + (x2 - x1) // 6] = 0
    out = out * (1 - alpha[..., None]) + 255 * alpha[..., None]
    return out.astype(np.uint8)


def make_clip(
    path: Path, *, width: int = 160, height: int = 96, frames: int = 30, fps: int = 30,
    audio: bool = False, rotation: int | None = None, vfr: bool = False,
    marks: dict[int, tuple[int, int, int, int]] | None = None, pix_fmt: str | None = None,
) -> list[int]:
    """Write an H.264 MP4; returns the video pts written (time base 1/fps*... see stream)."""
    marks = marks or {}
    pix_fmt = pix_fmt or ("yuv420p" if width % 2 == 0 and height % 2 == 0 else "yuv444p")
    out = av.open(str(path), "w")
    video = out.add_stream("libx264", rate=fps)
    video.width, video.height, video.pix_fmt = width, height, pix_fmt
    tb = Fraction(1, fps * 100)  # the muxer changes stream.time_base after the header: keep ours
    video.time_base = tb
    video.codec_context.time_base = tb
    video.options = {"crf": "12", "preset": "ultrafast"}
    if rotation is not None:
        video.set_display_rotation(rotation)
    astream = None
    if audio:
        astream = out.add_stream("aac", rate=44100)
        astream.layout = "mono"
    pts_list = []
    pts = 0
    for i in range(frames):
        img = background(width, height, i)
        if i in marks:
            img = add_mark(img, marks[i])
        frame = av.VideoFrame.from_ndarray(img, format="rgb24")
        frame.pts = pts
        frame.time_base = tb
        pts_list.append(pts)
        for p in video.encode(frame):
            out.mux(p)
        step = 100 if not vfr else (100 if i % 3 else 250)
        pts += step
    for p in video.encode():
        out.mux(p)
    if astream is not None:
        duration = pts / (fps * 100)
        samples = int(duration * 44100)
        t = np.arange(samples) / 44100
        wave = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
        for start in range(0, samples, 1024):
            chunk = wave[start : start + 1024][None, :]
            af = av.AudioFrame.from_ndarray(chunk, format="flt", layout="mono")
            af.sample_rate = 44100
            af.pts = start
            af.time_base = Fraction(1, 44100)
            for p in astream.encode(af):
                out.mux(p)
        for p in astream.encode():
            out.mux(p)
    out.close()
    return pts_list


def read_frames(path: Path) -> tuple[list[int], list[np.ndarray]]:
    with av.open(str(path)) as c:
        pts, imgs = [], []
        for f in c.decode(video=0):
            pts.append(f.pts)
            imgs.append(f.to_ndarray(format="rgb24"))
    return pts, imgs


def audio_packets(path: Path) -> list[bytes]:
    with av.open(str(path)) as c:
        if not c.streams.audio:
            return []
        return [bytes(p) for p in c.demux(c.streams.audio[0]) if p.size]


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)

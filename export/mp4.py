"""Write synthetic frames as an H.264 mp4 (optional AAC tone), the way the clips are delivered."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np

from orchestrator.pipeline.encode import X264_PARAMS  # repeatable x264 (see there)


def _tone(n: int, start: int, rate: int, seed: int) -> np.ndarray:
    """A quiet chord that changes pitch every second: audio a remover must pass through untouched."""
    t = (np.arange(start, start + n) / rate).astype(np.float64)
    base = 220.0 * (1.0 + (seed % 5) / 10)
    pitch = base * (1.0 + 0.25 * (np.floor(t) % 3))
    left = 0.15 * np.sin(2 * np.pi * pitch * t) + 0.05 * np.sin(2 * np.pi * 2.5 * pitch * t)
    right = 0.15 * np.sin(2 * np.pi * pitch * 1.5 * t)
    return np.stack([left, right]).astype(np.float32)


def write_video(path: str | Path, frames, n_frames: int, *, width: int, height: int, fps: float,
                audio: bool, seed: int = 0, crf: int = 18, preset: str = "veryfast") -> None:
    """H.264 yuv420p mp4 of ``frames`` (an iterable of uint8 RGB), optional AAC stereo tone."""
    import av  # PyAV: only needed to write files

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rate = Fraction(fps).limit_denominator(1001)
    with av.open(str(path), mode="w") as container:
        vs = container.add_stream("libx264", rate=rate)
        vs.width, vs.height, vs.pix_fmt = width, height, "yuv420p"
        vs.options = {"crf": str(crf), "preset": preset, **X264_PARAMS}
        astream = None
        if audio:
            sr = 48000
            astream = container.add_stream("aac", rate=sr)
            astream.layout = "stereo"
        for i, img in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts = i
            frame.time_base = 1 / rate
            for packet in vs.encode(frame):
                container.mux(packet)
        for packet in vs.encode():
            container.mux(packet)
        if astream is not None:
            total = int(round(n_frames / float(rate) * sr))
            for start in range(0, total, 1024):
                n = min(1024, total - start)
                af = av.AudioFrame.from_ndarray(_tone(n, start, sr, seed), format="fltp", layout="stereo")
                af.sample_rate = sr
                af.pts = start
                for packet in astream.encode(af):
                    container.mux(packet)
            for packet in astream.encode():
                container.mux(packet)


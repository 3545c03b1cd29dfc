"""Probe and stream-decode the input video with PyAV: one frame at a time, never the whole video.

Validation happens here so bad input fails before any inference: not a media file, no video
stream, a still image, resolution or duration above the limits -> ``InputError``.
"""

from __future__ import annotations

import logging
import struct
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import av
import numpy as np

from orchestrator.errors import InputError

LOGGER = logging.getLogger(__name__)

# Demuxers that open still images; a "video" of one picture is not a video.
_IMAGE_FORMATS = {"image2", "image2pipe", "apng"}


@dataclass(frozen=True)
class VideoInfo:
    width: int
    height: int
    time_base: Fraction
    frames_estimate: int | None  # from the container; the decode count is the truth
    duration_s: float | None
    fps: float | None
    has_audio: bool
    display_matrix: tuple[int, ...] | None  # 9 int32 (AV_PKT_DATA_DISPLAYMATRIX), None if absent
    codec: str
    container_format: str


def _open(path: Path):
    try:
        return av.open(str(path), metadata_errors="ignore")
    except (av.error.InvalidDataError, av.error.EOFError, UnicodeDecodeError) as exc:
        raise InputError("the file is not a video (unrecognised format)", detail=str(exc)) from exc
    except FileNotFoundError as exc:
        raise InputError("the input file does not exist", detail=str(exc)) from exc
    except av.error.FFmpegError as exc:
        raise InputError("the file could not be opened as a video", detail=str(exc)) from exc


def probe(path: Path | str, *, max_width: int, max_height: int, max_duration_s: float) -> VideoInfo:
    """Read the header and the first frame; raise InputError on anything we cannot process."""
    path = Path(path)
    with _open(path) as container:
        fmt = container.format.name or ""
        if not container.streams.video:
            if container.streams.audio:
                raise InputError("the file has audio but no video stream")
            raise InputError("the file has no video stream")
        stream = container.streams.video[0]
        if stream.codec_context is None:  # FFmpeg has no decoder for this codec tag
            raise InputError("the video codec is unknown or not supported (no decoder for it)")
        names = set(fmt.split(","))
        if names & _IMAGE_FORMATS or any(n.endswith("_pipe") for n in names):
            raise InputError(f"the file is a still image ({fmt}), not a video")
        width, height = stream.codec_context.width, stream.codec_context.height
        if width <= 0 or height <= 0:
            raise InputError("the video stream has no picture size")
        if width > max_width or height > max_height:
            raise InputError(
                f"resolution {width}x{height} is above the limit {max_width}x{max_height}"
            )
        time_base = stream.time_base or Fraction(1, 90000)
        duration_s = None
        if stream.duration:
            duration_s = float(stream.duration * time_base)
        elif container.duration:
            duration_s = container.duration / av.time_base
        if duration_s is not None and duration_s > max_duration_s:
            raise InputError(f"duration {duration_s:.0f} s is above the limit {max_duration_s:.0f} s")
        rate = stream.average_rate or stream.guessed_rate
        fps = float(rate) if rate else None
        frames = stream.frames or (round(duration_s * fps) if duration_s and fps else None)
        # Decode the first frame: catches streams that demux but cannot be decoded, and reads the
        # display matrix (rotation), which PyAV exposes per frame.
        matrix = None
        try:
            first = next(container.decode(stream), None)
        except av.error.FFmpegError as exc:
            raise InputError("the video stream cannot be decoded", detail=str(exc)) from exc
        if first is None:
            raise InputError("the video stream has no frames")
        for side in first.side_data:
            if side.type == av.sidedata.sidedata.Type.DISPLAYMATRIX:
                raw = bytes(side)
                if len(raw) == 36:
                    matrix = struct.unpack("<9i", raw)
        if frames == 1 and (duration_s or 0) == 0:
            raise InputError("the file is a still image, not a video")
        return VideoInfo(
            width=width, height=height, time_base=Fraction(time_base), frames_estimate=frames or None,
            duration_s=duration_s, fps=fps, has_audio=bool(container.streams.audio),
            display_matrix=matrix, codec=stream.codec_context.name, container_format=fmt,
        )


@dataclass
class Decoded:
    index: int
    pts: int  # in VideoInfo.time_base; made strictly increasing
    frame: av.VideoFrame


def iter_frames(path: Path | str, *, max_duration_s: float | None = None) -> Iterator[Decoded]:
    """Decode every frame in order with monotonic pts. Stops with InputError on corrupt streams."""
    with _open(Path(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        time_base = stream.time_base or Fraction(1, 90000)
        last_pts: int | None = None
        index = 0
        start_pts: int | None = None
        try:
            for frame in container.decode(stream):
                pts = frame.pts
                if pts is None:
                    pts = 0 if last_pts is None else last_pts + 1
                if last_pts is not None and pts <= last_pts:
                    pts = last_pts + 1  # duplicate/out-of-order stamps: keep order, stay valid
                if start_pts is None:
                    start_pts = pts
                if max_duration_s is not None and float((pts - start_pts) * time_base) > max_duration_s:
                    raise InputError(f"the video is longer than the limit of {max_duration_s:.0f} s")
                last_pts = pts
                yield Decoded(index, pts, frame)
                index += 1
        except av.error.FFmpegError as exc:
            raise InputError("the video stream is corrupt and cannot be decoded", detail=str(exc)) from exc
        # A file cut short (e.g. an MP4 truncated mid-mdat with its index in front) decodes without
        # an error but stops early: fail clearly instead of returning a silently shorter video.
        declared = stream.frames or 0
        if declared and index < declared - max(3, declared // 100):
            raise InputError(f"the video is truncated: only {index} of the {declared} frames it "
                             "declares could be read")


def to_rgb(frame: av.VideoFrame) -> np.ndarray:
    return frame.to_ndarray(format="rgb24")


def letterbox_params(width: int, height: int, size: int = 640) -> tuple[float, int, int, int, int]:
    """Scale and padding of Ultralytics' centred letterbox: (r, new_w, new_h, pad_x, pad_y)."""
    r = min(size / width, size / height)
    new_w, new_h = max(1, round(width * r)), max(1, round(height * r))
    return r, new_w, new_h, (size - new_w) // 2, (size - new_h) // 2


def letterbox(frame: av.VideoFrame, size: int = 640, pad_value: int = 114) -> np.ndarray:
    """RGB uint8 [size,size,3]; swscale scales and converts in one pass (cheaper than RGB first)."""
    _, new_w, new_h, pad_x, pad_y = letterbox_params(frame.width, frame.height, size)
    small = frame.reformat(width=new_w, height=new_h, format="rgb24", interpolation="BILINEAR")
    out = np.full((size, size, 3), pad_value, np.uint8)
    out[pad_y : pad_y + new_h, pad_x : pad_x + new_w] = small.to_ndarray()
    return out

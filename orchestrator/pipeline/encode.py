"""Encode the result with PyAV: H.264 (libx264), the input's timestamps, audio copied as packets.

- Timing: every frame keeps its input pts in the input's time base (variable frame rate kept).
- Audio: the first audio stream's packets are muxed unchanged (no re-encode), interleaved with the
  video by time; a second demuxer reads them lazily so memory stays flat.
- Rotation: the input's display matrix is written as the output's (players rotate the same way).
- Odd sizes: H.264 4:2:0 cannot code an odd width or height (its cropping unit is 2 pixels), and
  libx264 refuses them. We keep the exact resolution and encode those in yuv444p instead (plays in
  ffmpeg/VLC; browsers may not play 4:4:4). Even sizes (all Sora output) use yuv420p.
- ``+faststart`` moves the index to the front so browsers can start playing before the end.
"""

from __future__ import annotations

import logging
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from orchestrator.errors import OutputError
from orchestrator.pipeline.decode import VideoInfo

LOGGER = logging.getLogger(__name__)


def os_reason(exc: BaseException) -> str:
    """The system's reason for a failed write ("No space left on device"), without the path, so
    the user learns why the result could not be written."""
    return getattr(exc, "strerror", None) or type(exc).__name__


def _avx512() -> bool:
    """Whether this CPU has AVX-512 (Linux: /proc/cpuinfo; elsewhere assumed not)."""
    try:
        return " avx512f" in Path("/proc/cpuinfo").read_text()
    except OSError:
        return False


# x264's AVX-512 routines make its output depend on memory it did not write: the same frames
# encoded twice gave different files (bench/README.md, Discovery, "Determinism"). Every AVX-512
# CPU has AVX2, and x264 at AVX2 is as fast here and repeatable.
X264_PARAMS: dict[str, str] = {"x264-params": "asm=AVX2"} if _avx512() else {}


def pixel_format(width: int, height: int) -> str:
    return "yuv420p" if width % 2 == 0 and height % 2 == 0 else "yuv444p"


class Encoder:
    """Write frames in order; ``close()`` flushes; ``abort()`` closes without caring for the file."""

    def __init__(
        self, output_path: Path | str, info: VideoInfo, *, input_path: Path | str | None,
        crf: int = 18, preset: str = "veryfast",
    ) -> None:
        self.info = info
        self.frames = 0
        try:
            self._out = av.open(str(output_path), mode="w", format="mp4",
                                options={"movflags": "+faststart"})
        except (OSError, av.error.FFmpegError) as exc:
            raise OutputError(f"cannot create the output file: {os_reason(exc)}", detail=str(exc)) from exc
        rate = Fraction(info.fps).limit_denominator(1001) if info.fps else Fraction(30, 1)
        self._video = self._out.add_stream("libx264", rate=rate)
        self._video.width = info.width
        self._video.height = info.height
        self._video.pix_fmt = pixel_format(info.width, info.height)
        self._video.time_base = info.time_base
        self._video.codec_context.time_base = info.time_base
        self._video.options = {"crf": str(crf), "preset": preset, **X264_PARAMS}
        if info.display_matrix is not None:
            self._video.set_display_matrix(list(info.display_matrix))
        self._audio_in = None
        self._audio_out = None
        self._audio_packets = None
        self._pending_audio = None
        if input_path is not None and info.has_audio:
            self._audio_in = av.open(str(input_path), metadata_errors="ignore")
            source = self._audio_in.streams.audio[0]
            self._audio_out = self._out.add_stream_from_template(source)
            self._audio_packets = self._audio_in.demux(source)
        self._last_video_time = float("-inf")

    def write(self, frame: av.VideoFrame | np.ndarray, pts: int) -> None:
        """Encode one frame (a decoded VideoFrame passed through, or an RGB uint8 array)."""
        if isinstance(frame, np.ndarray):
            frame = av.VideoFrame.from_ndarray(frame, format="rgb24")
        frame.pts = pts
        frame.time_base = self.info.time_base
        frame.pict_type = av.video.frame.PictureType.NONE  # let x264 choose, not the input's types
        try:
            packets = self._video.encode(frame)
            self._mux(packets)
        except av.error.FFmpegError as exc:
            raise OutputError(f"encoding the output video failed: {os_reason(exc)}", detail=str(exc)) from exc
        self.frames += 1
        self._last_video_time = max(self._last_video_time, float(pts * self.info.time_base))
        self._mux_audio_until(self._last_video_time)

    def _mux(self, packets) -> None:
        for packet in packets:
            self._out.mux(packet)

    def _mux_audio_until(self, t: float | None) -> None:
        """Mux audio packets up to time ``t`` (all remaining when None)."""
        if self._audio_packets is None:
            return
        while True:
            packet = self._pending_audio
            self._pending_audio = None
            if packet is None:
                try:
                    packet = next(self._audio_packets)
                except (StopIteration, av.error.FFmpegError):
                    self._audio_packets = None
                    return
            if packet.dts is None or packet.size == 0:
                continue  # demuxer flush packet
            if t is not None and packet.time_base and float(packet.dts * packet.time_base) > t:
                self._pending_audio = packet
                return
            packet.stream = self._audio_out
            self._out.mux(packet)

    def close(self) -> None:
        try:
            self._mux(self._video.encode(None))
            self._mux_audio_until(None)
            self._out.close()
        except (OSError, av.error.FFmpegError) as exc:
            raise OutputError(f"finishing the output video failed: {os_reason(exc)}", detail=str(exc)) from exc
        finally:
            if self._audio_in is not None:
                self._audio_in.close()

    def abort(self) -> None:
        for container in (self._out, self._audio_in):
            if container is None:
                continue
            try:
                container.close()
            except Exception:  # noqa: BLE001 - the file is discarded anyway
                LOGGER.debug("closing after an error failed", exc_info=True)

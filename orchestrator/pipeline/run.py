"""``process_video``: the whole removal of one video, blocking (the worker runs it in a thread).

Two passes, because boxes over time need the future and the matte needs crops from many frames:

1. decode → detector on a stride + bisection where the boxes change (``detect.scan``, which
   reports marked and clean frames to the matte's ``CropSampler``) → ``detect.timeline_of`` (snap,
   fill, drop) → ``plan.plan_mattes`` (which marks get a matte): ``PassOne``.
2. decode → per frame ``remove.plan_frame`` (matte inversion where a plan fits the frame, crops
   for the inpainter for the rest) → Triton → encode, audio packets copied.

This module only orchestrates: threads, queues, timings, progress, the atomic rename; the task
details' per-mark entries come from ``marks.marks_details``.

Stages run in threads with bounded queues (decode → work → encode), so decoding, Triton and x264
overlap; memory holds a bounded number of frames whatever the video's length. The output is
written to a temp file beside the target and renamed into place only when complete.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np

from orchestrator.errors import InputError, OutputError, TritonUnavailableError
from orchestrator.metrics import FRAMES_PROCESSED, STAGE_SECONDS
from orchestrator.pipeline import boxes as bx
from orchestrator.pipeline import matte
from orchestrator.pipeline.decode import Decoded, VideoInfo, iter_frames, probe
from orchestrator.pipeline.detect import ScanResult, detector_for, scan, scan_params, timeline_of
from orchestrator.pipeline.discover import Discoverer, PictureArea, detector_weights, found_details, fuse
from orchestrator.pipeline.discover.fuse import TRUSTED_WEIGHTS
from orchestrator.pipeline.encode import Encoder, os_reason
from orchestrator.pipeline.inpaint import CropJob, submit_crops
from orchestrator.pipeline.marks import Mark, MarkKey, MarkPlan, MarkReport, marks_details, outcome
from orchestrator.pipeline.options import TaskOptions
from orchestrator.pipeline.plan import leave_unmarked, plan_mattes
from orchestrator.pipeline.progress import Progress, Reporter, checker
from orchestrator.pipeline.remove import FrameEdit, canvas_of, frame_keys, plan_frame
from orchestrator.settings import Settings

LOGGER = logging.getLogger(__name__)

PASS1_SHARE = 35.0  # percent of the progress bar for pass 1 when it runs


_ALLOCATOR_TUNED = False


def _tune_allocator() -> None:
    """Keep glibc from hoarding freed frame buffers (once per process): peak RSS stays flat in the
    video's length (bench/README.md). Frames are multi-MB arrays freed from several threads; glibc
    would raise its mmap threshold and serve them from per-thread arenas that fragment. Same effect
    as MALLOC_MMAP_THRESHOLD_=131072 MALLOC_ARENA_MAX=2 in the environment.
    """
    global _ALLOCATOR_TUNED
    if _ALLOCATOR_TUNED:
        return
    _ALLOCATOR_TUNED = True
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        M_MMAP_THRESHOLD, M_ARENA_MAX = -3, -8
        libc.mallopt(M_MMAP_THRESHOLD, 128 * 1024)
        libc.mallopt(M_ARENA_MAX, 2)
    except (OSError, AttributeError):  # not glibc: nothing to tune
        LOGGER.debug("mallopt unavailable; allocator left as is")


def _threaded(items: Iterable, maxsize: int, name: str, timer: dict) -> Iterator:
    """Run the iterable in a thread, yield its items through a bounded queue (errors re-raised).

    Closing the returned generator (or an error in the consumer) stops the thread at its next item.
    """
    q: queue.Queue = queue.Queue(maxsize)
    stop = threading.Event()
    done = object()

    def produce() -> None:
        try:
            it = iter(items)
            while not stop.is_set():
                t0 = time.perf_counter()
                try:
                    item = next(it)
                except StopIteration:
                    break
                finally:
                    timer[name] = timer.get(name, 0.0) + time.perf_counter() - t0
                while not stop.is_set():
                    try:
                        q.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer
            q.put(exc)
            return
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                try:
                    close()
                except Exception:  # noqa: BLE001
                    pass
        q.put(done)

    thread = threading.Thread(target=produce, name=f"pipeline-{name}", daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while thread.is_alive():
            try:
                q.get_nowait()
            except queue.Empty:
                thread.join(0.05)


@dataclass(frozen=True, eq=False)
class _Job:
    """One call of ``process_video``: what every stage reads."""

    input_path: Path
    output_path: Path
    options: TaskOptions
    settings: Settings
    info: VideoInfo
    client: object  # TritonClient
    sizes: dict[int, str]  # inpainter crop size -> model name
    check: Callable[[], None]
    report: Reporter
    timer: dict[str, float]

    def frames(self) -> Iterator[Decoded]:
        """A decode of the input in its own thread (bounded queue)."""
        return _threaded(iter_frames(self.input_path, max_duration_s=self.settings.max_duration_s),
                         8, "decode", self.timer)


@dataclass(frozen=True, eq=False)
class PassOne:
    """What pass 1 (detect + plan) hands to pass 2."""

    n_frames: int | None  # exact after pass 1; the container's estimate when pass 1 did not run
    timeline: bx.Timeline | None
    marks: list[Mark]
    plans: dict[MarkKey, MarkPlan] = field(default_factory=dict)
    reports: dict[MarkKey, MarkReport] = field(default_factory=dict)
    detector_frames: int | None = None
    progress_start: float = 0.0  # percent of the progress bar where pass 2 starts
    picture: PictureArea | None = None  # the area inside black bars (when discovery ran)
    discovery: dict | None = None  # discovery's summary for the details


@dataclass
class _Counts:
    frames: int = 0
    with_boxes: int = 0
    crops: int = 0
    matte_frames: int = 0


def process_video(
    input_path: Path | str, output_path: Path | str, options: TaskOptions, *, settings: Settings,
    progress: Callable[[Progress], None] | None = None,
    should_cancel: Callable[[], bool] | None = None,
    client=None,
) -> dict:
    """Remove the mark from ``input_path`` into ``output_path`` (see module docstring).

    ``client`` lets a caller share its TritonClient; by default one is made from ``settings``.
    """
    from orchestrator.triton.client import TritonClient

    _tune_allocator()
    started = time.perf_counter()
    input_path, output_path = Path(input_path), Path(output_path)
    report = Reporter(progress, min(0.5, settings.progress_interval_s))
    info = probe(input_path, max_width=settings.max_width, max_height=settings.max_height,
                 max_duration_s=settings.max_duration_s)
    LOGGER.info("input %s: %dx%d, ~%s frames, %s fps, audio=%s", input_path.name, info.width,
                info.height, info.frames_estimate, info.fps, info.has_audio)
    own_client = client is None
    if own_client:
        client = TritonClient.from_settings(settings)
    timer: dict[str, float] = {}
    try:
        sizes = client.inpainter_sizes()
        if not sizes:
            raise TritonUnavailableError("no inpainter model is ready", detail="no READY inpainter*")
        if options.detect and "detector" not in client.ready_models():
            raise TritonUnavailableError("the detector model is not ready")
        job = _Job(input_path, output_path, options, settings, info, client, sizes, checker(should_cancel),
                   report, timer)
        first = _pass_one(job)
        counts = _pass_two(job, first)
    finally:
        if own_client:
            client.close()
    total = time.perf_counter() - started
    timer["total"] = total
    # Metric labels are the documented stages; details keep every timer.
    for stage, key in (("decode", "decode"), ("detect", "detect"), ("matte", "matte"),
                       ("inpaint", "inpaint_wait"), ("encode", "encode"), ("total", "total")):
        if key in timer:
            STAGE_SECONDS.labels(stage).observe(timer[key])
    details = _details(job, first, counts)
    details["timings_s"] = {k: round(v, 3) for k, v in timer.items()}
    details["fps"] = round(details["frames"] / total, 2) if total > 0 else None
    report("done", details["frames"], details["frames"], 100.0, 100.0, force=True)
    LOGGER.info("processed %s: %d frames in %.1f s (%s)", input_path.name, details["frames"], total,
                details["timings_s"])
    return details


def _details(job: _Job, first: PassOne, counts: _Counts) -> dict:
    """The task's details (docs/CONTRACTS.md), less the timings."""
    details: dict = {"width": job.info.width, "height": job.info.height, "inpainter_sizes": sorted(job.sizes)}
    if first.detector_frames is not None:
        details["detector_frames"] = first.detector_frames
    details.update(marks_details(first.marks, first.reports, detect=job.options.detect))
    details.update(frames=counts.frames, frames_with_boxes=counts.with_boxes, crops_inpainted=counts.crops,
                   matte_frames=counts.matte_frames)
    if first.discovery is not None:
        details["discovery"] = first.discovery
    details["outcome"] = outcome(details)
    return details


# ---------------------------------------------------------------------------------------- pass 1


def _pass_one(job: _Job) -> PassOne:
    """Detect the mark's boxes over time and plan each mark's removal (matte or inpaint)."""
    options, settings = job.options, job.settings
    regions = [Mark(MarkKey.region(k), np.asarray(r.box, np.float64), r) for k, r in enumerate(options.regions)]
    use_matte = options.method == "auto"
    if not (options.detect or (use_matte and options.regions)):
        return PassOne(job.info.frames_estimate, None, regions)
    sampler = matte.CropSampler(per_position=settings.matte_crops) if use_matte else None
    weights = detector_weights(job.client) if options.detect else ""
    # The matte takes discovery's crops only where discovery leads (the detector's own crops,
    # centred on its boxes, would mix with them in one position).
    feed = sampler if weights not in TRUSTED_WEIGHTS else None
    discoverer = Discoverer(job.info.width, job.info.height, sampler=feed) if options.detect else None
    result = _scan(job, sampler, discoverer)
    if result.n_frames == 0:
        raise InputError("the video stream has no frames")
    job.check()
    timeline, marks, picture, summary = None, [], None, None
    if options.detect:
        timeline, marks, picture, summary = _find_marks(job, result, discoverer, weights)
    marks += regions
    t0 = time.perf_counter()
    plans, reports = {}, {}
    if use_matte and marks:
        plans, reports = plan_mattes(marks, sampler, job.info.width, job.info.height)
        leave_unmarked(marks, plans, reports, timeline)
    job.timer["matte"] = time.perf_counter() - t0
    return PassOne(result.n_frames, timeline, marks, plans, reports,
                   result.detected_frames if options.detect else None, PASS1_SHARE, picture, summary)


def _find_marks(job: _Job, result: ScanResult, discoverer: Discoverer | None, weights: str):
    """Pass 1's answer: the detector's timeline fused with discovery's (``discover.fuse``: the
    detector's provenance decides which leads), one mark per position with where it came from and
    its visits, the picture area (bars), and discovery's summary for the details."""
    detected = timeline_of(result, job.settings)
    if discoverer is None:
        return detected, [Mark(MarkKey.position(i), box) for i, box in enumerate(detected.positions)], None, None
    discovery = discoverer.finish(result.n_frames)
    job.timer["discover"] = discovery.seconds
    job.timer["discover_cpu"] = discovery.cpu_seconds
    fused = fuse(detected, discovery, weights=weights)
    marks = [Mark(MarkKey.position(i), box, found=found)
             for i, (box, found) in enumerate(zip(fused.timeline.positions, found_details(fused)))]
    summary = {**discovery.summary(), "detector_weights": weights or "unknown", "leader": fused.leader,
               "rejected_detections": [list(b) for b in fused.rejected]}
    return fused.timeline, marks, discovery.picture, summary


def _scan(job: _Job, sampler: matte.CropSampler | None, discoverer: Discoverer | None = None) -> ScanResult:
    options, settings, info = job.options, job.settings, job.info
    detector = detector_for(job.client, info.width, info.height, settings) if options.detect else None
    first_pts: list[int] = []

    def regions_at(pts: int) -> np.ndarray:
        if not first_pts:
            first_pts.append(pts)
        return bx.region_boxes(options.regions, float((pts - first_pts[0]) * info.time_base))

    frames = job.frames()
    tapped = discoverer.tap(frames) if discoverer is not None else frames
    t0 = time.perf_counter()
    try:
        result = scan(tapped, detector, scan_params(settings), listener=sampler,
                      regions_at=regions_at if options.regions else None, should_cancel=job.check,
                      on_frame=lambda i: job.report("detect", i + 1, info.frames_estimate, 0.0, PASS1_SHARE))
    finally:
        frames.close()  # stops the decode thread now, also on errors
    job.timer["detect"] = result.seconds_detect
    job.timer["pass1"] = time.perf_counter() - t0
    return result


# ---------------------------------------------------------------------------------------- pass 2


def _pass_two(job: _Job, first: PassOne) -> _Counts:
    """Decode -> remove -> encode into a temp file beside the output, renamed into place when done."""
    output_path = job.output_path
    tmp = output_path.with_name(f".{output_path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        output_path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create the output directory: {os_reason(exc)}", detail=str(exc)) from exc
    encoder = Encoder(tmp, job.info, input_path=job.input_path, crf=job.settings.crf, preset=job.settings.preset)
    counts = _Counts()
    try:
        _encode_all(job, first, encoder, counts)
    except BaseException:
        encoder.abort()
        _unlink(tmp)
        raise
    if counts.frames == 0:
        _unlink(tmp)
        raise InputError("the video stream has no frames")
    try:
        os.replace(tmp, output_path)
    except OSError as exc:
        _unlink(tmp)
        raise OutputError(f"cannot move the result into place: {os_reason(exc)}", detail=str(exc)) from exc
    return counts


def _encode_all(job: _Job, first: PassOne, encoder: Encoder, counts: _Counts) -> None:
    """Finish each chunk's inpainting (in flight while the next chunks are edited) and encode it."""
    t_inpaint_wait = 0.0
    t_encode = 0.0
    stages = _threaded(_edits(job, first, counts), max(1, job.settings.requests_in_flight), "work", job.timer)
    try:
        for chunk, pending in stages:
            if pending is not None:
                t0 = time.perf_counter()
                pending.finish()
                t_inpaint_wait += time.perf_counter() - t0
            t0 = time.perf_counter()
            for edit in chunk:
                encoder.write(edit.result(), edit.pts)
                counts.frames += 1
            t_encode += time.perf_counter() - t0
            FRAMES_PROCESSED.inc(len(chunk))
            job.report("remove", counts.frames, first.n_frames, first.progress_start, 99.0)
        t0 = time.perf_counter()
        encoder.close()
        t_encode += time.perf_counter() - t0
    except BaseException:
        stages.close()
        raise
    job.timer["inpaint_wait"] = t_inpaint_wait
    job.timer["encode"] = t_encode


def _edits(job: _Job, first: PassOne, counts: _Counts) -> Iterator:
    """Frames -> chunks ready to finish: ([FrameEdit], PendingInpaint | None)."""
    batch = max(1, job.settings.inpaint_batch)
    chunk: list[FrameEdit] = []
    items: list[CropJob] = []
    first_pts: list[int] = []
    t_work = 0.0
    for d in job.frames():
        t0 = time.perf_counter()
        if not first_pts:
            first_pts.append(d.pts)
        edit = _edit(job, first, d, float((d.pts - first_pts[0]) * job.info.time_base), counts)
        if edit.area is not None:
            size = (job.info.width, job.info.height)
            items.extend(CropJob(edit.area.rgb, c, (edit.area.roi[0], edit.area.roi[1]), size) for c in edit.area.crops)
        chunk.append(edit)
        t_work += time.perf_counter() - t0
        if len(items) >= batch or len(chunk) >= batch:
            job.check()
            yield chunk, (submit_crops(job.client, job.sizes, items, batch) if items else None)
            counts.crops += len(items)
            chunk, items = [], []
    if chunk:
        yield chunk, (submit_crops(job.client, job.sizes, items, batch) if items else None)
        counts.crops += len(items)
    job.timer["remove"] = t_work


def _edit(job: _Job, first: PassOne, d: Decoded, t: float, counts: _Counts) -> FrameEdit:
    """One frame's boxes (``boxes.frame_boxes``) planned for removal (``remove.plan_frame``)."""
    width, height, settings = job.info.width, job.info.height, job.settings
    timeline = first.timeline if first.timeline is not None and d.index < first.timeline.n_frames else None
    fboxes = bx.frame_boxes(timeline, d.index, t, job.options.regions, width, height,
                            frac=settings.box_margin_frac, px=settings.box_margin_px)
    bars = first.picture.box if first.picture is not None and first.picture.has_bars else None
    if bars is not None and len(fboxes):
        fboxes = first.picture.clip_boxes(fboxes)  # never inpaint the bars
    if len(fboxes) == 0:
        return FrameEdit(d.pts, d.frame)
    counts.with_boxes += 1
    keys = frame_keys(first.timeline, d.index, t, job.options.regions) if first.plans else []
    canvas, read = canvas_of(d.frame)
    area = plan_frame(read, width, height, fboxes, keys, first.plans, sorted(job.sizes), settings.inpaint_context,
                      picture=bars)
    if area is not None:
        counts.matte_frames += area.matte_marks
    return FrameEdit(d.pts, d.frame, canvas, area)


def _unlink(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError:
        LOGGER.warning("could not remove the temp file %s", path)

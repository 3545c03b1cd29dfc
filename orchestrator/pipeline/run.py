"""``process_video``: the whole removal of one video, blocking (the worker runs it in a thread).

Two passes, because boxes over time need the future and the matte needs crops from many frames:

1. ``pass_one``: decode → detect and discover the mark's boxes over time → plan which marks get a
   matte: ``PassOne``.
2. decode → per frame ``remove.plan_frame`` (matte inversion where a plan fits the frame, crops
   for the inpainter for the rest) → Triton → encode, audio packets copied.

This module only orchestrates: threads, queues, timings, progress, the atomic rename; the task
details' per-mark entries come from ``marks.marks_details``.

Stages run in threads with bounded queues (``job.threaded``: decode → work → encode), so decoding,
Triton and x264 overlap; memory holds a bounded number of frames whatever the video's length. The
output is written to a temp file beside the target and renamed into place only when complete.
"""
from __future__ import annotations

import logging
import os
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from orchestrator.errors import InputError, OutputError, TritonUnavailableError
from orchestrator.metrics import FRAMES_PROCESSED, STAGE_SECONDS
from orchestrator.pipeline import boxes as bx
from orchestrator.pipeline import matte
from orchestrator.pipeline.decode import Decoded, probe
from orchestrator.pipeline.encode import Encoder, os_reason
from orchestrator.pipeline.inpaint import CropJob, submit_crops
from orchestrator.pipeline.job import Job, threaded
from orchestrator.pipeline.marks import marks_details, outcome
from orchestrator.pipeline.options import TaskOptions
from orchestrator.pipeline.pass_one import PassOne, pass_one
from orchestrator.pipeline.progress import Progress, Reporter, checker
from orchestrator.pipeline.propagate import Propagator
from orchestrator.pipeline.remove import FrameEdit, Propagation, canvas_of, frame_keys, plan_frame
from orchestrator.settings import Settings

LOGGER = logging.getLogger(__name__)


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



@dataclass
class _Counts:
    frames: int = 0
    with_boxes: int = 0
    crops: int = 0
    matte_frames: int = 0
    matte_gate: dict = field(default_factory=dict)  # matte.VisitTracker's counts


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
        job = Job(input_path, output_path, options, settings, info, client, sizes, checker(should_cancel),
                   report, timer)
        first = pass_one(job)
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


def _details(job: Job, first: PassOne, counts: _Counts) -> dict:
    """The task's details (docs/CONTRACTS.md), less the timings."""
    details: dict = {"width": job.info.width, "height": job.info.height, "inpainter_sizes": sorted(job.sizes)}
    if first.detector_frames is not None:
        details["detector_frames"] = first.detector_frames
    details.update(marks_details(first.marks, first.reports, detect=job.options.detect))
    details.update(frames=counts.frames, frames_with_boxes=counts.with_boxes, crops_inpainted=counts.crops,
                   matte_frames=counts.matte_frames, matte_gate=counts.matte_gate)
    if first.discovery is not None:
        details["discovery"] = first.discovery
    details["outcome"] = outcome(details)
    return details


# ---------------------------------------------------------------------------------------- pass 2


def _pass_two(job: Job, first: PassOne) -> _Counts:
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


def _encode_all(job: Job, first: PassOne, encoder: Encoder, counts: _Counts) -> None:
    """Finish each chunk's inpainting (in flight while the next chunks are edited) and encode it."""
    t_inpaint_wait = 0.0
    t_encode = 0.0
    stages = threaded(_edits(job, first, counts), max(1, job.settings.requests_in_flight), "work", job.timer)
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


def _edits(job: Job, first: PassOne, counts: _Counts) -> Iterator:
    """Frames -> chunks ready to finish: ([FrameEdit], PendingInpaint | None)."""
    batch = max(1, job.settings.inpaint_batch)
    chunk: list[FrameEdit] = []
    items: list[CropJob] = []
    t_work = 0.0
    tracker = matte.VisitTracker()
    propagator = Propagator() if first.plans else None
    for prepared in _prepared(job, first, counts, propagator):
        t0 = time.perf_counter()
        edit = _edit(job, first, prepared, counts, tracker, propagator)
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
    counts.matte_gate = dict(tracker.counts)
    if propagator is not None:
        counts.matte_gate["propagated"] = dict(propagator.counts, ms=round(propagator.counts["ms"], 1))


@dataclass(frozen=True, eq=False)
class _Prepared:
    """A decoded frame with its boxes, mark keys and editable canvas (None: no boxes)."""

    decoded: Decoded
    boxes: object  # np.ndarray [n, 4]
    keys: list
    canvas: object = None
    read: Callable | None = None


def _prepared(job: Job, first: PassOne, counts: _Counts, propagator: Propagator | None) -> Iterator[_Prepared]:
    """Decoded frames with their boxes, ``propagator.radius`` frames ahead of their removal: each
    frame's looks at its marks are kept as it is decoded, so a frame's removal sees its future too.
    Holds at most radius + 1 decoded frames beyond the decode queue."""
    width, height, settings = job.info.width, job.info.height, job.settings
    bars = first.picture.box if first.picture is not None and first.picture.has_bars else None
    ahead: deque[_Prepared] = deque()
    first_pts: list[int] = []
    for d in job.frames():
        if not first_pts:
            first_pts.append(d.pts)
        t = float((d.pts - first_pts[0]) * job.info.time_base)
        timeline = first.timeline if first.timeline is not None and d.index < first.timeline.n_frames else None
        fboxes = bx.frame_boxes(timeline, d.index, t, job.options.regions, width, height,
                                frac=settings.box_margin_frac, px=settings.box_margin_px)
        if bars is not None and len(fboxes):
            fboxes = first.picture.clip_boxes(fboxes)  # never inpaint the bars
        if len(fboxes) == 0:
            ahead.append(_Prepared(d, fboxes, []))
        else:
            keys = frame_keys(first.timeline, d.index, t, job.options.regions) if first.plans else []
            canvas, read = canvas_of(d.frame)
            ahead.append(_Prepared(d, fboxes, keys, canvas, read))
            if propagator is not None and len(keys) == len(fboxes):
                for key in keys:
                    if key in first.plans:
                        propagator.observe(d.index, key, first.plans[key], read, width, height)
        if propagator is None or len(ahead) > propagator.radius:
            yield ahead.popleft()
    while ahead:
        yield ahead.popleft()


def _edit(job: Job, first: PassOne, p: _Prepared, counts: _Counts,
          tracker: matte.VisitTracker | None = None, propagator: Propagator | None = None) -> FrameEdit:
    """One frame's boxes (``boxes.frame_boxes``) planned for removal (``remove.plan_frame``)."""
    d = p.decoded
    if p.canvas is None:
        return FrameEdit(d.pts, d.frame)
    counts.with_boxes += 1
    width, height = job.info.width, job.info.height
    bars = first.picture.box if first.picture is not None and first.picture.has_bars else None
    propagation = None
    if propagator is not None:
        propagator.forget(d.index - propagator.radius)
        propagation = Propagation(propagator, d.index)
    area = plan_frame(p.read, width, height, p.boxes, p.keys, first.plans, sorted(job.sizes),
                      job.settings.inpaint_context, picture=bars, tracker=tracker, propagation=propagation)
    if area is not None:
        counts.matte_frames += area.matte_marks
    return FrameEdit(d.pts, d.frame, p.canvas, area)


def _unlink(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError:
        LOGGER.warning("could not remove the temp file %s", path)

"""``process_video``: the whole removal of one video, blocking (the worker runs it in a thread).

Two passes, because boxes over time need the future and the matte needs crops from many frames:

1. decode → detector on a stride + bisection where the boxes change (``detect.scan``), sampling
   crops of each mark position for the matte; then ``boxes.build_timeline`` (snap, fill, drop).
2. decode → per frame: matte inversion (``method=auto`` when the estimate is reliable and fits the
   frame) and/or crop inpainting of what is left → encode, audio packets copied.

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
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np

from orchestrator.errors import InputError, OutputError, TaskCancelledError, TritonUnavailableError
from orchestrator.metrics import FRAMES_PROCESSED, STAGE_SECONDS
from orchestrator.pipeline import boxes as bx
from orchestrator.pipeline.decode import VideoInfo, iter_frames, probe
from orchestrator.pipeline.detect import CropSampler, Detector, scan
from orchestrator.pipeline.discover import Discoverer, PictureArea, fuse
from orchestrator.pipeline.encode import Encoder, os_reason
from orchestrator.pipeline.inpaint import Crop, YuvCanvas, even_box, plan_crops, submit_crops
from orchestrator.pipeline.options import TaskOptions

LOGGER = logging.getLogger(__name__)

try:  # written in parallel (issue 5); the pipeline works without it
    from orchestrator.pipeline import matte as matte_mod
except ImportError:  # pragma: no cover
    matte_mod = None

PASS1_SHARE = 35.0  # percent of the progress bar for pass 1 when it runs
# A matte whose strongest alpha stays below this found no overlay: its pixels are left alone.
NO_OVERLAY_ALPHA = 0.15


_ALLOCATOR_TUNED = False


def _tune_allocator() -> None:
    """Keep glibc from hoarding freed frame buffers (once per process).

    Frames are multi-MB arrays freed from several threads. glibc raises its mmap threshold after
    such frees and then serves them from per-thread arenas that fragment: peak RSS grew with the
    video's length (640x360: 398 MB for 10 s, 522 MB for 60 s). A fixed 128 KiB threshold (big
    buffers are mmapped and returned on free) and two arenas keep it flat (360 / 365 MB).
    Same effect as MALLOC_MMAP_THRESHOLD_=131072 MALLOC_ARENA_MAX=2 in the environment.
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
class Progress:
    percent: float
    stage: str
    fps: float | None
    frames_done: int
    frames_total: int | None


class _Reporter:
    """Calls ``progress`` at most every ``interval`` seconds (and always on stage changes)."""

    def __init__(self, callback: Callable[[Progress], None] | None, interval: float = 0.5) -> None:
        self.callback = callback
        self.interval = interval
        self._last = 0.0
        self._stage = ""
        self._stage_start = time.monotonic()

    def __call__(self, stage: str, done: int, total: int | None, lo: float, hi: float, force: bool = False) -> None:
        if self.callback is None:
            return
        now = time.monotonic()
        if stage != self._stage:
            self._stage, self._stage_start, force = stage, now, True
        if not force and now - self._last < self.interval:
            return
        self._last = now
        frac = min(done / total, 1.0) if total else 0.0
        elapsed = now - self._stage_start
        fps = done / elapsed if elapsed > 0 and done else None
        try:
            self.callback(Progress(round(lo + (hi - lo) * frac, 1), stage, fps, done, total))
        except Exception:  # noqa: BLE001 - a broken progress sink must not fail the task
            LOGGER.warning("progress callback failed", exc_info=True)


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


def _checker(should_cancel: Callable[[], bool] | None) -> Callable[[], None]:
    def check() -> None:
        if should_cancel is not None and should_cancel():
            raise TaskCancelledError("the task was cancelled")
    return check


@dataclass
class _MarkPlan:
    """Matte removal for one timeline position (only when the estimate is usable)."""

    estimate: object
    window: tuple[int, int, int, int]  # x0, y0, w, h of the crop the matte lives in
    offset: np.ndarray


# A clean reference (the window without the mark, just before it arrived or after it left) serves
# the crops this close in time: the background has hardly moved (the matte registers the rest).
REFERENCE_SPAN = 12


def _matte_crops(sampler: CropSampler, sid: int) -> tuple[np.ndarray, list, dict[int, np.ndarray]]:
    """Position ``sid``'s crops for the matte: the sampled ones plus the marked halves of its clean
    references; their origins (y0, x0); and crop index -> clean reference (each marked half gets
    its own, a sampled crop the nearest within ``REFERENCE_SPAN`` frames)."""
    refs = sampler.references[sid] if sid < len(sampler.references) else []
    crops = list(sampler.crops[sid]) + [r.marked for r in refs]
    origins = list(sampler.origins[sid]) + [r.origin for r in refs]
    out: dict[int, np.ndarray] = {}
    for k, frame in enumerate(sampler.frames[sid]):
        near = [(abs(frame - r.frame), r.clean) for r in refs if abs(frame - r.frame) <= REFERENCE_SPAN]
        if near:
            out[k] = min(near, key=lambda item: item[0])[1]
    first = len(sampler.crops[sid])
    out.update({first + j: r.clean for j, r in enumerate(refs)})
    return np.stack(crops), origins, out


def _plan_mattes(marks: list[tuple[tuple, np.ndarray, dict]], sampler: CropSampler, width: int,
                 height: int) -> dict[tuple, _MarkPlan]:
    """Estimate the mattes of the marks (detected positions and regions) from the crops of pass 1.

    The detected positions are one mark jumping around: their crops are pooled into one estimate
    (``matte.estimate_groups``, which lets a position that disagrees keep its own). A region gets
    its own estimate (it may be another logo) unless it covers a detected position's window.
    ``marks`` are (key, box, report entry); the entry says which method the mark gets and why.
    """
    plans: dict[tuple, _MarkPlan] = {}
    sids: dict[tuple, int] = {}
    for key, box, entry in marks:
        if matte_mod is None or not sampler.windows:
            entry["reason"] = "matte module unavailable" if matte_mod is None else "no crops"
            continue
        ious = bx.iou_matrix(np.asarray(box, np.float64)[None], np.stack(sampler.windows).astype(np.float64))[0]
        sid = int(np.argmax(ious))
        if ious[sid] <= 0.2 or len(sampler.crops[sid]) < 2:
            entry["reason"] = "too few crops"
            continue
        sids[key] = sid
    pooled = list(dict.fromkeys(sid for key, sid in sids.items() if key[0] == "p"))
    alone = list(dict.fromkeys(sid for key, sid in sids.items() if key[0] != "p" and sid not in pooled))
    by_sid: dict[int, object] = {}
    origins_of: dict[int, list] = {}
    for members in [pooled] + [[sid] for sid in alone]:
        if not members:
            continue
        inputs = {sid: _matte_crops(sampler, sid) for sid in members}
        origins_of.update({sid: inputs[sid][1] for sid in members})
        try:
            parts = matte_mod.estimate_groups([inputs[sid][0] for sid in members],
                                              references=[inputs[sid][2] for sid in members])
        except ValueError as exc:
            for sid in members:
                by_sid[sid] = str(exc)
            continue
        by_sid.update(zip(members, parts))
    for key, box, entry in marks:
        if key not in sids:
            continue
        sid = sids[key]
        part = by_sid.get(sid)
        if not isinstance(part, matte_mod.GroupMatte):
            entry["reason"] = part if isinstance(part, str) else "too few crops"
            continue
        estimate = part.estimate
        entry["matte"] = {**estimate.summary(), "scope": part.scope}
        if not estimate.reliable:
            entry["reason"] = estimate.reason
            continue
        ch, cw = estimate.alpha.shape
        cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        x0, y0 = int(round(cx - cw / 2)), int(round(cy - ch / 2))
        if cw > width or ch > height:
            entry["reason"] = "mark window larger than the frame"
            continue
        x0, y0 = min(max(x0, 0), width - cw), min(max(y0, 0), height - ch)
        # Pooled crop k of this position is crops[k][top:, left:] (origin o_k + trim), and the mark
        # sits at p + offsets[start + k] in it; in a window at (x0, y0) it sits at
        # p + offsets[start + k] + o_k + trim - (y0, x0): the same for every k when the mark holds still.
        origins = np.asarray(origins_of[sid], np.float32) + np.asarray(part.trim, np.float32)  # (y, x)
        offs = np.asarray(estimate.offsets, np.float32)[part.start : part.start + len(origins)]
        if len(offs) == len(origins):
            offset = np.median(offs + origins - np.array([y0, x0], np.float32), 0)
        else:
            offset = np.zeros(2, np.float32)
        plans[key] = _MarkPlan(estimate, (x0, y0, cw, ch), offset)
        entry["method"] = "matte"
    return plans


def process_video(
    input_path: Path | str, output_path: Path | str, options: TaskOptions, *, settings,
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
    check = _checker(should_cancel)
    report = _Reporter(progress, min(0.5, getattr(settings, "progress_interval_s", 0.5)))
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
        details = _run(input_path, output_path, options, settings, info, client, sizes, check, report, timer)
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
    details["timings_s"] = {k: round(v, 3) for k, v in timer.items()}
    details["fps"] = round(details["frames"] / total, 2) if total > 0 else None
    report("done", details["frames"], details["frames"], 100.0, 100.0, force=True)
    LOGGER.info("processed %s: %d frames in %.1f s (%s)", input_path.name, details["frames"], total,
                details["timings_s"])
    return details


def _run(input_path, output_path, options: TaskOptions, settings, info: VideoInfo, client, sizes,
         check, report, timer) -> dict:
    width, height = info.width, info.height
    tb = info.time_base
    use_matte = options.method == "auto" and matte_mod is not None
    timeline: bx.Timeline | None = None
    n_frames = info.frames_estimate
    details: dict = {"width": width, "height": height, "inpainter_sizes": sorted(sizes)}
    pass2_lo = 0.0
    picture: PictureArea | None = None
    plans: dict[tuple, _MarkPlan] = {}
    marks: list[tuple[tuple, np.ndarray, dict]] = []
    region_entries = [{"box": list(r.box), "start": r.start, "end": r.end, "method": "inpaint"}
                      for r in options.regions]
    if options.detect or (use_matte and options.regions):
        # ---------------- pass 1 ----------------
        detector = None
        if options.detect:
            detector = Detector(client, width=width, height=height,
                                conf=min(settings.detect_conf, settings.detect_conf_low),
                                iou=settings.detect_iou, batch=settings.detect_batch)
        sampler = CropSampler(per_position=settings.matte_crops) if use_matte else None
        first_pts: list[int] = []

        def regions_at(pts: int) -> np.ndarray:
            if not first_pts:
                first_pts.append(pts)
            return bx.region_boxes(options.regions, float((pts - first_pts[0]) * tb))

        decoded = _threaded(iter_frames(input_path, max_duration_s=settings.max_duration_s),
                            8, "decode", timer)
        discoverer = Discoverer(width, height, sampler=sampler) if options.detect else None
        frames = discoverer.tap(decoded) if discoverer is not None else decoded
        t0 = time.perf_counter()
        try:
            result = scan(
                frames, detector, stride=settings.detect_stride, in_flight=settings.requests_in_flight,
                refine_span=settings.detect_refine_span, sampler=sampler,
                regions_at=regions_at if options.regions else None, should_cancel=check,
                on_frame=lambda i: report("detect", i + 1, info.frames_estimate, 0.0, PASS1_SHARE),
                change_conf=settings.detect_conf, change_top=True,
            )
        finally:
            decoded.close()  # stops the decode thread now, also on errors
        timer["detect"] = result.seconds_detect
        timer["pass1"] = time.perf_counter() - t0
        n_frames = result.n_frames
        if n_frames == 0:
            raise InputError("the video stream has no frames")
        check()
        if options.detect:
            timeline, picture = _find_marks(result, discoverer, client, settings, details, marks, timer)
        marks += [(("r", k), np.asarray(r.box, np.float64), region_entries[k])
                  for k, r in enumerate(options.regions)]
        t0 = time.perf_counter()
        if use_matte and marks:
            plans = _plan_mattes(marks, sampler, width, height)
            _leave_unmarked(marks, plans, timeline)
        timer["matte"] = time.perf_counter() - t0
        pass2_lo = PASS1_SHARE
    if options.detect:
        details["marks"] = [entry for key, _, entry in marks if key[0] == "p"]
    details["regions"] = region_entries

    # ---------------- pass 2 ----------------
    first_pts: list[int] = []
    counters = {"frames": 0, "with_boxes": 0, "crops": 0, "matte_frames": 0}
    tmp = output_path.with_name(f".{output_path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        output_path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create the output directory: {os_reason(exc)}", detail=str(exc)) from exc
    encoder = Encoder(tmp, info, input_path=input_path, crf=settings.crf, preset=settings.preset)
    sizes_list = sorted(sizes)
    batch = max(1, settings.inpaint_batch)

    def work() -> Iterator:
        """Frames → chunks ready to finish: [(pts, frame or VideoFrame)], PendingInpaint|None."""
        chunk: list = []
        items: list = []
        frames = _threaded(iter_frames(input_path, max_duration_s=settings.max_duration_s),
                           8, "decode", timer)
        t_work = 0.0
        for d in frames:
            t0 = time.perf_counter()
            if not first_pts:
                first_pts.append(d.pts)
            t = float((d.pts - first_pts[0]) * tb)
            fboxes = bx.frame_boxes(
                timeline if timeline is not None and d.index < timeline.n_frames else None,
                d.index, t, options.regions, width, height,
                frac=settings.box_margin_frac, px=settings.box_margin_px)
            if picture is not None and picture.has_bars and len(fboxes):
                fboxes = picture.clip_boxes(fboxes)  # never inpaint the bars
            if len(fboxes) == 0:
                chunk.append((d.pts, d.frame))
            else:
                counters["with_boxes"] += 1
                keys = _box_keys(timeline, d.index, t, options.regions) if plans else []
                if YuvCanvas.supports(d.frame):
                    canvas = YuvCanvas(d.frame)
                    read = canvas.read
                else:  # other pixel formats: edit a full RGB copy
                    canvas = d.frame.to_ndarray(format="rgb24")
                    read = lambda x0, y0, x1, y1, _rgb=canvas: _rgb[y0:y1, x0:x1]  # noqa: E731
                roi, roi_rgb, crops = _remove(read, width, height, fboxes, keys, plans, sizes_list,
                                              settings, counters, picture)
                if roi is not None:
                    items.extend((roi_rgb, c, (roi[0], roi[1]), (width, height)) for c in crops)
                chunk.append((d.pts, (canvas, roi, roi_rgb)))
            t_work += time.perf_counter() - t0
            if len(items) >= batch or len(chunk) >= batch:
                check()
                yield chunk, (submit_crops(client, sizes, items, batch) if items else None)
                counters["crops"] += len(items)
                chunk, items = [], []
        if chunk:
            yield chunk, (submit_crops(client, sizes, items, batch) if items else None)
            counters["crops"] += len(items)
        timer["remove"] = t_work

    t_inpaint_wait = 0.0
    t_encode = 0.0
    stages = _threaded(work(), max(1, settings.requests_in_flight), "work", timer)
    try:
        for chunk, pending in stages:
            if pending is not None:
                t0 = time.perf_counter()
                pending.finish()
                t_inpaint_wait += time.perf_counter() - t0
            t0 = time.perf_counter()
            for pts, frame in chunk:
                if isinstance(frame, tuple):  # edited: write the area back into the frame
                    canvas, roi, roi_rgb = frame
                    if isinstance(canvas, YuvCanvas):
                        if roi is not None:
                            canvas.write(roi[0], roi[1], roi_rgb)
                        frame = canvas.to_frame()
                    else:
                        frame = canvas  # the RGB copy, edited in place through views
                encoder.write(frame, pts)
                counters["frames"] += 1
            t_encode += time.perf_counter() - t0
            FRAMES_PROCESSED.inc(len(chunk))
            report("remove", counters["frames"], n_frames, pass2_lo, 99.0)
        t0 = time.perf_counter()
        encoder.close()
        t_encode += time.perf_counter() - t0
    except BaseException:
        stages.close()
        encoder.abort()
        _unlink(tmp)
        raise
    timer["inpaint_wait"] = t_inpaint_wait
    timer["encode"] = t_encode
    if counters["frames"] == 0:
        _unlink(tmp)
        raise InputError("the video stream has no frames")
    try:
        os.replace(tmp, output_path)
    except OSError as exc:
        _unlink(tmp)
        raise OutputError(f"cannot move the result into place: {os_reason(exc)}", detail=str(exc)) from exc
    details.update(
        frames=counters["frames"], frames_with_boxes=counters["with_boxes"],
        crops_inpainted=counters["crops"], matte_frames=counters["matte_frames"],
    )
    details["outcome"] = outcome(details)
    return details


def outcome(details: dict) -> str:
    """One plain phrase for the task: ``removed``, ``no watermark found`` or ``found, left
    untouched`` (positions whose estimate showed no overlay)."""
    if details.get("frames_with_boxes"):
        return "removed"
    if details.get("marks"):
        return "found, left untouched"
    return "no watermark found"


def _find_marks(result, discoverer: Discoverer | None, client, settings, details: dict, marks: list,
                timer: dict) -> tuple[bx.Timeline, PictureArea | None]:
    """Pass 1's answer: the detector's timeline fused with discovery's; one report entry per
    position (where it came from, its visits); the picture area (bars)."""
    n_frames = result.n_frames
    detected = bx.build_timeline(n_frames, result.observations, max_gap=settings.max_gap_frames,
                                 conf=settings.detect_conf)
    details["detector_frames"] = result.detected_frames
    if discoverer is None:
        fused_timeline, infos, picture = detected, None, None
    else:
        discovery = discoverer.finish(n_frames)
        timer["discover"] = discovery.seconds
        weights = _detector_weights(client)
        fused = fuse(detected, discovery, weights=weights)
        fused_timeline, infos, picture = fused.timeline, fused.positions, discovery.picture
        details["discovery"] = {**discovery.summary(), "detector_weights": weights or "unknown",
                                "leader": fused.leader,
                                "rejected_detections": [list(b) for b in fused.rejected]}
    for pid, box in enumerate(fused_timeline.positions):
        entry = {"box": [round(float(v), 1) for v in box], "method": "inpaint",
                 "frames": int(fused_timeline.present[pid].sum())}
        if infos is not None:
            info = infos[pid]
            entry.update(source=info.source, visits=[list(v) for v in info.visits], mark=info.mark,
                         alpha=None if info.alpha is None else round(info.alpha, 2))
        marks.append((("p", pid), box, entry))
    return fused_timeline, picture


def _detector_weights(client) -> str:
    """The detector's provenance as the model repository records it ("" when it does not)."""
    try:
        return client.model_parameters("detector").get("weights", "")
    except Exception:  # noqa: BLE001 - an older client or server: unknown provenance
        LOGGER.debug("detector parameters unavailable", exc_info=True)
        return ""


def _leave_unmarked(marks: list, plans: dict, timeline: bx.Timeline | None) -> None:
    """Do no harm: a detected position whose matte estimate shows no overlay (alpha ~ 0) is left
    untouched, instead of falling back to inpainting a box of clean picture."""
    for key, _, entry in marks:
        matte = entry.get("matte")
        if key[0] != "p" or not matte or matte.get("alpha_max", 1.0) >= NO_OVERLAY_ALPHA:
            continue
        plans.pop(key, None)
        if timeline is not None:
            timeline.present[key[1]] = False
        entry["method"] = "untouched"
        entry["reason"] = f"no overlay there (matte alpha_max {matte['alpha_max']} < {NO_OVERLAY_ALPHA})"


def _box_keys(timeline, index: int, t: float, regions) -> list[tuple]:
    """The mark key of each box ``frame_boxes`` returns (detected positions first, then regions)."""
    keys: list[tuple] = []
    if timeline is not None and index < timeline.n_frames:
        keys += [("p", int(pid)) for pid in timeline.ids_at(index)]
    keys += [("r", k) for k, r in enumerate(regions) if r.active_at(t)]
    return keys


def _remove(read, width: int, height: int, fboxes: np.ndarray, keys: list[tuple], plans, sizes,
            settings, counters, picture: PictureArea | None = None):
    """Plan the removal of one frame's boxes.

    ``read(x0, y0, x1, y1)`` returns the RGB pixels of an even-aligned area of the frame. Matte
    inversion is applied where it fits; the rest becomes inpainter crops. Returns the area that
    changes (``roi``, even-aligned, or None), its RGB pixels (with the matte already applied) and
    the crops, whose pixels are ``roi_rgb`` at origin ``roi[:2]``.
    """
    restored_parts: list[tuple[int, int, np.ndarray]] = []
    holes: list[tuple[tuple[int, int, int, int], np.ndarray]] = []  # (x0,y0,w,h), bool mask
    handled = np.zeros(len(fboxes), bool)
    if plans and len(keys) == len(fboxes):  # (else a box was clipped away: no matte this frame)
        for j, key in enumerate(keys):
            plan = plans.get(key)
            if plan is None:
                continue
            x0, y0, cw, ch = plan.window
            ex0, ey0, ex1, ey1 = even_box(x0, y0, x0 + cw, y0 + ch, width, height)
            crop = read(ex0, ey0, ex1, ey1)[y0 - ey0 : y0 - ey0 + ch, x0 - ex0 : x0 - ex0 + cw]
            try:
                opacity, residual = matte_mod.fit_opacity(crop, plan.estimate, offset=plan.offset)
            except ValueError:
                continue
            if residual > plan.estimate.max_residual:
                continue  # this frame does not fit the matte (animation, fade): inpaint the box
            restored, hole = matte_mod.remove_with_matte(crop, plan.estimate, opacity, offset=plan.offset)
            restored_parts.append((x0, y0, restored))
            handled[j] = True
            counters["matte_frames"] += 1
            if hole.any():
                holes.append(((x0, y0, cw, ch), hole))
    crops: list[Crop] = []
    box_list = [box for j, box in enumerate(fboxes) if not handled[j]]
    if box_list:
        crops.extend(plan_crops(np.asarray(box_list), width, height, sizes,
                                context=settings.inpaint_context, picture=_bars(picture)))
    for (x0, y0, cw, ch), hole in holes:
        ys, xs = np.nonzero(hole)
        hb = np.array([[x0 + xs.min(), y0 + ys.min(), x0 + xs.max() + 1, y0 + ys.max() + 1]])
        for crop in plan_crops(hb, width, height, sizes, context=settings.inpaint_context,
                               picture=_bars(picture)):
            rx0, ry0, rx1, ry1 = crop.region(width, height)
            full = np.zeros((ry1 - ry0, rx1 - rx0), bool)  # the hole in the crop's coordinates
            ya, xa = max(y0, ry0), max(x0, rx0)
            yb, xb = min(y0 + ch, ry1), min(x0 + cw, rx1)
            full[ya - ry0 : yb - ry0, xa - rx0 : xb - rx0] = hole[ya - y0 : yb - y0, xa - x0 : xb - x0]
            crop.hole = full
            crops.append(crop)
    areas = [c.region(width, height) for c in crops]
    areas += [(x0, y0, x0 + r.shape[1], y0 + r.shape[0]) for x0, y0, r in restored_parts]
    if not areas:
        return None, None, []
    a = np.asarray(areas)
    roi = even_box(int(a[:, 0].min()), int(a[:, 1].min()), int(a[:, 2].max()), int(a[:, 3].max()),
                   width, height)
    roi_rgb = read(*roi)
    for x0, y0, r in restored_parts:
        roi_rgb[y0 - roi[1] : y0 - roi[1] + r.shape[0], x0 - roi[0] : x0 - roi[0] + r.shape[1]] = r
    return roi, roi_rgb, crops


def _bars(picture: PictureArea | None) -> tuple[int, int, int, int] | None:
    return picture.box if picture is not None and picture.has_bars else None


def _unlink(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError:
        LOGGER.warning("could not remove the temp file %s", path)

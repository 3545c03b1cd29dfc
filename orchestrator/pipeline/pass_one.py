"""Pass 1 of ``process_video``: where the mark is over time, and how each mark is removed.

decode → detector on a stride + bisection where the boxes change (``detect.scan``, which reports
marked and clean frames to the matte's ``CropSampler``; discovery taps the same frames) →
``detect.timeline_of`` (snap, fill, drop) fused with discovery's (``discover.fuse``) →
``plan.plan_mattes`` (which marks get a matte): ``PassOne``, what pass 2 reads.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from orchestrator.errors import InputError
from orchestrator.pipeline import boxes as bx
from orchestrator.pipeline import matte
from orchestrator.pipeline.detect import ScanResult, detector_for, scan, scan_params, timeline_of
from orchestrator.pipeline.discover import Discoverer, PictureArea, detector_weights, found_details, fuse
from orchestrator.pipeline.discover.fuse import TRUSTED_WEIGHTS
from orchestrator.pipeline.job import Job
from orchestrator.pipeline.marks import Mark, MarkKey, MarkPlan, MarkReport
from orchestrator.pipeline.plan import leave_unmarked, plan_mattes

PASS1_SHARE = 35.0  # percent of the progress bar for pass 1 when it runs


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


def pass_one(job: Job) -> PassOne:
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
    discoverer = (Discoverer(job.info.width, job.info.height, sampler=feed)
                  if options.detect and settings.discover else None)
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


def _find_marks(job: Job, result: ScanResult, discoverer: Discoverer | None, weights: str):
    """Pass 1's answer: the detector's timeline fused with discovery's (``discover.fuse``: the
    detector's provenance decides which leads), one mark per position with where it came from and
    its visits, the picture area (bars), and discovery's summary for the details."""
    detected = timeline_of(result, job.settings)
    if discoverer is None:
        return detected, [Mark(MarkKey.position(i), box) for i, box in enumerate(detected.positions)], None, None
    discovery = discoverer.finish(result.n_frames)
    job.timer["discover"] = discovery.seconds
    job.timer["discover_cpu"] = discovery.cpu_seconds
    fused = fuse(detected, discovery, weights=weights, observations=result.observations)
    marks = [Mark(MarkKey.position(i), box, found=found)
             for i, (box, found) in enumerate(zip(fused.timeline.positions, found_details(fused)))]
    summary = {**discovery.summary(), "detector_weights": weights or "unknown", "leader": fused.leader,
               "unconfirmed_detections": [list(b) for b in fused.unconfirmed]}
    return fused.timeline, marks, discovery.picture, summary


def _scan(job: Job, sampler: matte.CropSampler | None, discoverer: Discoverer | None = None) -> ScanResult:
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

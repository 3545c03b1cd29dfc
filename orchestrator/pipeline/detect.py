"""Pass 1: find the mark's boxes in every frame while running the detector on few frames.

The Sora mark holds still for ~2 s, then jumps. So the detector sees every ``stride``-th frame
(batched, several requests in flight); where two consecutive samples disagree, the interval is
bisected (all intervals of a window in parallel, one batched request per round) until the frames
where the state changes are adjacent. Frames never seen take the state of their neighbours
(``boxes.build_timeline``). For a 30 fps clip with stride 8, that is ~1/8 of the frames plus
~3 per jump instead of all of them.

Between samples only the letterboxed image (the 640-wide resize without padding) is kept, for at
most ``stride × batch × (in_flight + 1)`` frames: memory is flat in the video's length.
"""

from __future__ import annotations

import logging
import time
from array import array
from collections import deque
from dataclasses import dataclass
from typing import Callable, Iterable, Protocol

import numpy as np

from orchestrator.pipeline import boxes as bx
from orchestrator.pipeline.decode import Decoded
from orchestrator.pipeline.detector import DETECTOR_SIZE, PAD_VALUE, Detector
from orchestrator.pipeline.scan_refs import PartialFrame, RegionReferences
from orchestrator.settings import Settings

LOGGER = logging.getLogger(__name__)

__all__ = ["DETECTOR_SIZE", "PAD_VALUE", "Detector", "MarkListener", "ScanParams", "ScanResult", "detector_for", "scan",
           "scan_params", "timeline_of"]


class MarkListener(Protocol):
    """What pass 1 reports about the frames it decodes (``matte.CropSampler`` keeps crops of them).

    ``on_marked``: a frame whose mark boxes are known (a sample, or a frame between two samples that
    agree). ``on_clean``: at a change point, a frame where the mark is absent from ``box``'s place,
    paired with a nearby frame (``partner``) where it is there; up to ``reference_partners``
    partners per clean frame.
    """

    reference_partners: int

    def on_marked(self, frame_index: int, rgb: np.ndarray, boxes: np.ndarray) -> None: ...

    def on_clean(self, frame_index: int, rgb: np.ndarray, box: np.ndarray, partner_index: int,
                 partner_rgb: np.ndarray) -> None: ...


@dataclass(frozen=True)
class ScanParams:
    """How pass 1 samples the video.

    ``stride``: the detector sees every stride-th frame; intervals whose ends disagree are bisected
    until at most ``refine_span`` frames long (1 = exact change frames; larger spans cost fewer
    detector calls and give the frames left in between both positions). ``in_flight``: batches
    awaiting results. Boxes scoring below ``change_conf`` (a detector run at a low threshold, whose
    weak boxes only count when consistent over time: ``boxes.build_timeline``) neither trigger
    bisection nor are reported. ``change_top``: bisect only where the strongest box moves or
    vanishes (one mark at a time: false positives elsewhere cost no detector calls). Frames between
    samples are kept decoded (not resized) while that fits ``lazy_bytes``.
    """

    stride: int = 8
    in_flight: int = 2
    refine_span: int = 1
    change_conf: float = 0.0
    change_top: bool = False
    lazy_bytes: int = 384 << 20


@dataclass(frozen=True)
class ScanResult:
    n_frames: int
    pts: array  # per frame, in the input's time base
    observations: dict[int, np.ndarray]  # frame -> [n,5] for frames the detector saw
    detected_frames: int
    seconds_detect: float = 0.0


def scan_params(settings: Settings) -> ScanParams:
    """The pipeline's pass-1 sampling from its settings (also what the benchmarks use)."""
    return ScanParams(stride=settings.detect_stride, in_flight=settings.requests_in_flight,
                      refine_span=settings.detect_refine_span, change_conf=settings.detect_conf,
                      change_top=True)


def detector_for(client, width: int, height: int, settings: Settings) -> Detector:
    """The detector at the low threshold: weak boxes count when consistent over time."""
    return Detector(client, width=width, height=height, conf=min(settings.detect_conf, settings.detect_conf_low),
                    iou=settings.detect_iou, batch=settings.detect_batch)


def timeline_of(result: ScanResult, settings: Settings) -> bx.Timeline:
    """The mark's positions and per-frame presence from pass 1's observations."""
    return bx.build_timeline(result.n_frames, result.observations, max_gap=settings.max_gap_frames,
                             conf=settings.detect_conf)


def scan(
    frames: Iterable[Decoded], detector: Detector | None, params: ScanParams = ScanParams(), *,
    listener: MarkListener | None = None, regions_at: Callable[[int], np.ndarray] | None = None,
    on_frame: Callable[[int], None] | None = None, should_cancel: Callable[[], None] | None = None,
) -> ScanResult:
    """Decode everything once; detect on samples + bisection of changed intervals (``ScanParams``).

    ``detector=None`` only records timestamps and reports region frames. ``regions_at(pts)`` gives
    the manual regions active at a frame, which the ``listener`` also hears about (for the matte).
    ``should_cancel`` raises to stop. Bisection only narrows the frames that get both boxes: frames
    between two samples that differ get the union of both (``boxes.build_timeline``), so a change
    it does not refine is still covered.
    """
    return _Scan(detector, params, listener, regions_at, on_frame, should_cancel).run(frames)


class _Scan:
    """The state of one ``scan``: the current window of frames, pending batches, observations."""

    def __init__(self, detector, params: ScanParams, listener, regions_at, on_frame, should_cancel) -> None:
        self.detector, self.params, self.listener = detector, params, listener
        self.regions_at, self.on_frame, self.should_cancel = regions_at, on_frame, should_cancel
        self.stride = max(1, params.stride)
        self.refine_span = max(1, params.refine_span)
        self.crop_stride = max(1, params.stride // 4)  # region crops are cheap; the matte wants many backgrounds
        self.lazy: bool | None = None
        self.pts = array("q")
        self.observations: dict[int, np.ndarray] = {}
        self.window: dict[int, object] = {}  # frame -> resized image or Decoded, since the last processed sample
        self.samples: list[int] = []
        self.full: dict[int, np.ndarray] = {}  # sample -> RGB frame (only with a listener)
        self.pending: deque = deque()
        self.last_sample: int | None = None
        self.busy = 0.0
        self.region_refs = RegionReferences(listener) if listener is not None and regions_at is not None else None

    def run(self, frames: Iterable[Decoded]) -> ScanResult:
        index = -1
        last_item: Decoded | None = None
        for item in frames:
            index = item.index
            self._take(item)
            last_item = item
        n_frames = index + 1
        if self.detector is not None and n_frames:
            if (n_frames - 1) % self.stride != 0:
                self.samples.append(n_frames - 1)  # the last frame is always a sample
                if self.listener is not None and last_item is not None:
                    self.full[n_frames - 1] = last_item.frame.to_ndarray(format="rgb24")
            self._flush(last=True)
        return ScanResult(n_frames, self.pts, self.observations, len(self.observations), self.busy)

    def _take(self, item: Decoded) -> None:
        """One decoded frame: timestamps, region crops, the detector's window and samples."""
        index = item.index
        self.pts.append(item.pts)
        if self.on_frame is not None:
            self.on_frame(index)
        if self.region_refs is not None:
            regs = self.regions_at(item.pts)
            if len(regs) and index % self.crop_stride == 0:
                self.listener.on_marked(index, item.frame.to_ndarray(format="rgb24"), regs)
            self.region_refs.take(index, item.frame, regs)
            if self.detector is None and self.should_cancel is not None and index % (self.stride * 8) == 0:
                self.should_cancel()
        if self.detector is None:
            return
        # Frames between samples are resized only if the bisection asks for them (most are not):
        # their decoded frames are kept instead while that fits ``lazy_bytes``.
        if self.lazy is None:
            frame = getattr(item, "frame", None)
            size = getattr(frame, "width", 0) * getattr(frame, "height", 0) * 3 // 2
            budget = size * self.stride * self.detector.batch * (self.params.in_flight + 1)
            self.lazy = 0 < budget <= self.params.lazy_bytes
        self.window[index] = item if self.lazy and index % self.stride else self._resized(item)
        if index % self.stride == 0:
            self.samples.append(index)
            if self.listener is not None:
                self.full[index] = item.frame.to_ndarray(format="rgb24")
            if len(self.samples) >= self.detector.batch:
                if self.should_cancel is not None:
                    self.should_cancel()
                self._flush()

    def _flush(self, last: bool = False) -> None:
        """Submit the samples gathered; process the oldest batches beyond ``in_flight``."""
        if self.samples:
            sample_ids = list(self.samples)
            images = dict(self.window)
            futures = self.detector.submit([self._image(self.window, i) for i in sample_ids])
            self.pending.append((futures, sample_ids, images))
            self.samples.clear()
            # Keep the last sample's image: the next window's intervals start there.
            keep = sample_ids[-1]
            self.window.clear()
            self.window[keep] = images[keep]
        while self.pending and (last or len(self.pending) > self.params.in_flight):
            self._process(*self.pending.popleft())

    def _process(self, futures: list, sample_ids: list[int], images: dict) -> None:
        """A batch's results: observations, reports to the listener, bisection of changed intervals."""
        t0 = time.perf_counter()
        for idx, dets in zip(sample_ids, self.detector.collect(futures)):
            self.observations[idx] = dets
        if self.listener is not None:
            self._report_marked(sample_ids, images)
        chain = ([self.last_sample] if self.last_sample is not None else []) + sample_ids
        self._bisect(chain, images)
        if self.listener is not None:
            self._report_clean(chain, images)
        for idx in sample_ids[:-1]:
            self.full.pop(idx, None)
        if chain and chain[0] not in sample_ids:
            self.full.pop(chain[0], None)  # the previous window's last sample: done with it now
        self.last_sample = sample_ids[-1]
        self.busy += time.perf_counter() - t0

    def _report_marked(self, sample_ids: list[int], images: dict) -> None:
        """Samples with boxes; where two samples agree the mark held still in between, so the decoded
        frames kept for bisection (lazy mode) are marked frames at the same boxes for free."""
        prev = self.last_sample
        for idx in sample_ids:
            dets = self._strong(self.observations[idx])
            if len(dets):
                if prev is not None and not self._changed(self.observations[prev], self.observations[idx]):
                    for i in range(prev + 1, idx):
                        rgb = self._full_rgb(i, images) if i % self.crop_stride == 0 else None
                        if rgb is not None:
                            self.listener.on_marked(i, rgb, dets)
                if idx in self.full:
                    self.listener.on_marked(idx, self.full[idx], dets)
            prev = idx

    def _bisect(self, chain: list[int], images: dict) -> None:
        """Bisect every interval whose ends disagree, all intervals of the window per round."""
        obs, span = self.observations, self.refine_span
        todo = [(a, b) for a, b in zip(chain[:-1], chain[1:]) if b - a > span and self._changed(obs[a], obs[b])]
        while todo:
            mids = [(a + b) // 2 for a, b in todo]
            found = self.detector.detect([self._image(images, m) for m in mids])
            nxt = []
            for (a, b), m, dets in zip(todo, mids, found):
                obs[m] = dets
                nxt += [(lo, hi) for lo, hi in ((a, m), (m, b)) if hi - lo > span and self._changed(obs[lo], obs[hi])]
            todo = nxt

    def _report_clean(self, chain: list[int], images: dict) -> None:
        """Where the mark arrives at (or leaves) a position between two detections at most
        ``refine_span`` apart, the frame without it there is a clean reference for that position."""
        lo_i, hi_i = chain[0], chain[-1]
        seen = sorted(i for i in self.observations if lo_i <= i <= hi_i)
        for a, b in zip(seen[:-1], seen[1:]):
            if b - a > self.refine_span or not self._changed(self.observations[a], self.observations[b]):
                continue
            for without, with_mark in ((a, b), (b, a)):
                other = self._strong(self.observations[without])
                for det in self._strong(self.observations[with_mark]):
                    if len(other) and bx.iou_matrix(det[None, :4].astype(np.float64),
                                                    other[:, :4].astype(np.float64)).max() > 0.1:
                        continue  # a box there too: not clean
                    self._report_partners(without, with_mark, det, images, lo_i, hi_i)

    def _report_partners(self, without: int, with_mark: int, det: np.ndarray, images: dict, lo_i: int,
                         hi_i: int) -> None:
        """The clean frame with the first few marked frames next to it (one background sample,
        several looks at the mark over it: fades, codec noise)."""
        rgb = self._full_rgb(without, images)
        if rgb is None:
            return  # only the resized image is left (large frames): no reference
        step = 1 if with_mark > without else -1
        for j in range(self.listener.reference_partners):
            partner = with_mark + step * j
            marked = self._full_rgb(partner, images) if lo_i <= partner <= hi_i else None
            if marked is None:
                break
            self.listener.on_clean(without, rgb, det, partner, marked)

    def _resized(self, item: Decoded):
        """The detector's image; for a large frame between samples also full-resolution windows
        around the known mark positions (``scan_refs.PartialFrame``: references at every size)."""
        windows = getattr(self.listener, "windows", None)
        if self.listener is None or not windows or item.index % self.stride == 0:
            return self.detector.resize(item)
        return PartialFrame(self.detector.resize(item), item.frame, list(windows))

    def _image(self, images: dict, i: int):
        img = images[i]
        if isinstance(img, PartialFrame):
            return img.resized
        # (the decoded frame stays: a frame without the mark becomes the matte's clean reference)
        return self.detector.resize(img) if isinstance(img, Decoded) else img

    def _full_rgb(self, i: int, images: dict) -> np.ndarray | None:
        if i in self.full:
            return self.full[i]
        img = images.get(i)
        if isinstance(img, PartialFrame):
            return img.rgb()
        return img.frame.to_ndarray(format="rgb24") if isinstance(img, Decoded) else None

    def _strong(self, dets: np.ndarray) -> np.ndarray:
        dets = np.asarray(dets)
        if self.params.change_conf <= 0 or dets.ndim != 2 or dets.shape[1] < 5:
            return dets
        return dets[dets[:, 4] >= self.params.change_conf]

    def _changed(self, a: np.ndarray, b: np.ndarray) -> bool:
        a, b = self._strong(a), self._strong(b)
        if self.params.change_top:  # only the strongest box: where the one mark is
            a = a[np.argsort(-a[:, 4])[:1]] if a.ndim == 2 and a.shape[1] >= 5 else a
            b = b[np.argsort(-b[:, 4])[:1]] if b.ndim == 2 and b.shape[1] >= 5 else b
        return not bx.same_boxes(a, b)

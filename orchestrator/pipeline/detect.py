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
from dataclasses import dataclass, field
from typing import Callable, Iterable

import numpy as np

from orchestrator.pipeline import boxes as bx
from orchestrator.pipeline.decode import Decoded, letterbox_params

LOGGER = logging.getLogger(__name__)

DETECTOR_SIZE = 640
PAD_VALUE = 114


class Detector:
    """Letterboxed uint8 NHWC batches -> per-image [n,5] boxes (frame pixels) after NMS."""

    def __init__(self, client, *, width: int, height: int, conf: float = 0.25, iou: float = 0.45,
                 model: str = "detector", batch: int = 8) -> None:
        self.client = client
        self.model = model
        self.batch = max(1, batch)
        self.conf, self.iou = conf, iou
        self.width, self.height = width, height
        self.scale, self.new_w, self.new_h, self.pad_x, self.pad_y = letterbox_params(width, height, DETECTOR_SIZE)
        self.images_sent = 0

    def resize(self, decoded: Decoded) -> np.ndarray:
        """The frame scaled into the letterbox (without the padding): [new_h,new_w,3]."""
        small = decoded.frame.reformat(width=self.new_w, height=self.new_h, format="rgb24",
                                       interpolation="BILINEAR")
        return small.to_ndarray()

    def _batch(self, images: list[np.ndarray]) -> np.ndarray:
        out = np.full((len(images), DETECTOR_SIZE, DETECTOR_SIZE, 3), PAD_VALUE, np.uint8)
        for i, img in enumerate(images):
            out[i, self.pad_y : self.pad_y + self.new_h, self.pad_x : self.pad_x + self.new_w] = img
        return out

    def submit(self, images: list[np.ndarray]) -> list:
        """Send ``images`` in batches; returns the futures in order."""
        futures = []
        for start in range(0, len(images), self.batch):
            chunk = images[start : start + self.batch]
            futures.append(self.client.submit(self.model, {"images": self._batch(chunk)}, ["output0"]))
            self.images_sent += len(chunk)
        return futures

    def collect(self, futures: list) -> list[np.ndarray]:
        results = []
        for future in futures:
            outputs = future.result()["output0"]
            for out in outputs:
                results.append(bx.decode_detections(
                    out, conf=self.conf, iou=self.iou, scale=self.scale, pad_x=self.pad_x,
                    pad_y=self.pad_y, width=self.width, height=self.height))
        return results

    def detect(self, images: list[np.ndarray]) -> list[np.ndarray]:
        return self.collect(self.submit(images)) if images else []


# Marked frames paired with each clean reference (the frames next to the arrival/departure; 3 beat 1
# and 6 on the end-to-end clips of bench/quality.py: +1.3 and +2.8 dB summed over four).
REFERENCE_PARTNERS = 3


@dataclass
class CropSampler:
    """Keeps up to ``per_position`` full-resolution crops of each mark position (for the matte).

    Crops of one position have one size (the first detection's box grown by ``margin``), centred
    on each detection; when full, every other crop is dropped and the stride doubles, so the kept
    crops spread over the whole video with bounded memory.
    """

    per_position: int = 48
    margin: float = 0.15
    windows: list[np.ndarray] = field(default_factory=list)  # [4] int box per position
    crops: list[list[np.ndarray]] = field(default_factory=list)
    frames: list[list[int]] = field(default_factory=list)
    origins: list[list[tuple[int, int]]] = field(default_factory=list)  # (y0, x0) of each crop
    # Per position: windows where the mark is absent, right before it arrived or after it left,
    # each with the marked window next to it (the matte's clean references).
    references: list[list["Reference"]] = field(default_factory=list)
    _seen: list[int] = field(default_factory=list)
    _every: list[int] = field(default_factory=list)

    def _match(self, det: np.ndarray) -> int:
        """The position whose window ``det`` overlaps (IoU > 0.3), or -1."""
        if not self.windows:
            return -1
        m = bx.iou_matrix(np.asarray(det[:4], np.float64)[None], np.stack(self.windows).astype(np.float64))[0]
        return int(np.argmax(m)) if m.max() > 0.3 else -1

    def _origin(self, pid: int, det: np.ndarray, width: int, height: int) -> tuple[int, int] | None:
        """(y0, x0) of position ``pid``'s window centred on ``det``, or None if it does not fit.
        Near an edge the window shifts inside the frame; registration absorbs the shift."""
        win = self.windows[pid]
        cw, ch = win[2] - win[0], win[3] - win[1]
        if cw > width or ch > height:
            return None
        x0 = min(max(int(round((det[0] + det[2]) / 2 - cw / 2)), 0), width - cw)
        y0 = min(max(int(round((det[1] + det[3]) / 2 - ch / 2)), 0), height - ch)
        return y0, x0

    def _cut(self, pid: int, rgb: np.ndarray, origin: tuple[int, int]) -> np.ndarray:
        win = self.windows[pid]
        y0, x0 = origin
        return rgb[y0 : y0 + win[3] - win[1], x0 : x0 + win[2] - win[0]].copy()

    def add(self, frame_index: int, rgb: np.ndarray, dets: np.ndarray) -> None:
        height, width = rgb.shape[:2]
        for det in np.asarray(dets)[:, :4]:
            pid = self._match(det)
            if pid < 0:
                w, h = det[2] - det[0], det[3] - det[1]
                mx, my = w * self.margin + 4, h * self.margin + 4
                win = np.array([det[0] - mx, det[1] - my, det[2] + mx, det[3] + my]).round().astype(int)
                self.windows.append(win)
                self.crops.append([])
                self.frames.append([])
                self.origins.append([])
                self.references.append([])
                self._seen.append(0)
                self._every.append(1)
                pid = len(self.windows) - 1
            self._seen[pid] += 1
            if (self._seen[pid] - 1) % self._every[pid]:
                continue
            origin = self._origin(pid, det, width, height)
            if origin is None:
                continue
            self.crops[pid].append(self._cut(pid, rgb, origin))
            self.frames[pid].append(frame_index)
            self.origins[pid].append(origin)
            if len(self.crops[pid]) >= self.per_position:
                self.crops[pid] = self.crops[pid][::2]
                self.frames[pid] = self.frames[pid][::2]
                self.origins[pid] = self.origins[pid][::2]
                self._every[pid] *= 2

    def add_reference(self, frame_index: int, rgb: np.ndarray, det: np.ndarray, partner_index: int,
                      partner_rgb: np.ndarray) -> None:
        """Keep a clean reference of a known position (the one ``det`` matches): its window in a
        frame where the mark is absent there, and the same window in the nearby frame where the
        mark is (``partner``), whose background the reference gives. When more than
        ``per_position`` are kept, every other one is dropped (they stay spread over the video)."""
        pid = self._match(det)
        if pid < 0:
            return
        origin = self._origin(pid, det, rgb.shape[1], rgb.shape[0])
        if origin is None:
            return
        refs = self.references[pid]
        if any(r.frame == frame_index and r.partner == partner_index for r in refs):
            return
        refs.append(Reference(frame_index, self._cut(pid, rgb, origin), partner_index,
                              self._cut(pid, partner_rgb, origin), origin))
        if len(refs) > self.per_position:
            self.references[pid] = refs[::2]


@dataclass(frozen=True)
class Reference:
    """A position's window without the mark (``clean``, frame ``frame``) and with it (``marked``,
    frame ``partner``, a few frames away), cut at ``origin`` (y0, x0) in both frames."""

    frame: int
    clean: np.ndarray
    partner: int
    marked: np.ndarray
    origin: tuple[int, int]


@dataclass
class ScanResult:
    n_frames: int
    pts: array  # per frame, in the input's time base
    observations: dict[int, np.ndarray]  # frame -> [n,5] for frames the detector saw
    detected_frames: int
    sampler: CropSampler | None
    seconds_detect: float = 0.0


def scan(
    frames: Iterable[Decoded], detector: Detector | None, *, stride: int = 8, in_flight: int = 2,
    refine_span: int = 1, sampler: CropSampler | None = None,
    regions_at: Callable[[int], np.ndarray] | None = None,
    on_frame: Callable[[int], None] | None = None, should_cancel: Callable[[], None] | None = None,
    change_conf: float = 0.0, change_top: bool = False, lazy_bytes: int = 384 << 20,
) -> ScanResult:
    """Decode everything once; detect on samples + bisection of changed intervals until they are
    at most ``refine_span`` frames long (1 = exact change frames; larger spans cost fewer detector
    calls and give the frames left in between both positions).

    ``detector=None`` only records timestamps and samples region crops. ``regions_at(pts)`` gives
    the manual regions active at a frame, whose crops the ``sampler`` also keeps (for the matte).
    ``should_cancel`` raises to stop. Boxes scoring below ``change_conf`` (a detector run at a low
    threshold, whose weak boxes only count when consistent over time: ``boxes.build_timeline``)
    neither trigger bisection nor feed the crop sampler. ``change_top``: bisect only where the
    strongest box moves or vanishes (one mark at a time: false positives coming and going elsewhere
    cost no detector calls). Bisection only narrows the frames that get both boxes: frames between
    two samples that differ get the union of both (``boxes.build_timeline``), so a change it does
    not refine is still covered."""

    lazy: bool | None = None

    def image(images: dict, i: int):
        img = images[i]
        # (the decoded frame stays: a frame without the mark becomes the matte's clean reference)
        return detector.resize(img) if isinstance(img, Decoded) else img

    def strong(dets: np.ndarray) -> np.ndarray:
        dets = np.asarray(dets)
        if change_conf <= 0 or dets.ndim != 2 or dets.shape[1] < 5:
            return dets
        return dets[dets[:, 4] >= change_conf]

    def changed(a: np.ndarray, b: np.ndarray) -> bool:
        a, b = strong(a), strong(b)
        if change_top:  # only the strongest box: where the one mark is
            a = a[np.argsort(-a[:, 4])[:1]] if a.ndim == 2 and a.shape[1] >= 5 else a
            b = b[np.argsort(-b[:, 4])[:1]] if b.ndim == 2 and b.shape[1] >= 5 else b
        return not bx.same_boxes(a, b)

    refine_span = max(1, refine_span)
    crop_stride = max(1, stride // 4)  # region crops are cheap; the matte wants many backgrounds
    pts = array("q")
    observations: dict[int, np.ndarray] = {}
    stride = max(1, stride)
    window: dict[int, np.ndarray] = {}  # frame -> resized image, since the last processed sample
    samples: list[int] = []
    full: dict[int, np.ndarray] = {}
    pending: deque = deque()
    state = {"last_sample": None, "busy": 0.0}

    def process(entry) -> None:
        futures, sample_ids, images = entry
        t0 = time.perf_counter()
        results = detector.collect(futures)
        for idx, dets in zip(sample_ids, results):
            observations[idx] = dets
        if sampler is not None:
            # The matte wants many backgrounds under the mark, not only the sampled frames: where
            # two samples agree the mark held still in between, so the decoded frames kept for
            # bisection (lazy mode) give crops at the same boxes for free.
            prev = state["last_sample"]
            for idx in sample_ids:
                dets = strong(observations[idx])
                if len(dets):
                    if prev is not None and not changed(observations[prev], observations[idx]):
                        for i in range(prev + 1, idx):
                            rgb = full_rgb(i, images) if i % crop_stride == 0 else None
                            if rgb is not None:
                                sampler.add(i, rgb, dets)
                    if idx in full:
                        sampler.add(idx, full[idx], dets)
                prev = idx
        # Bisect every interval whose ends disagree, all intervals of the window per round.
        chain = ([state["last_sample"]] if state["last_sample"] is not None else []) + sample_ids
        todo = [(a, b) for a, b in zip(chain[:-1], chain[1:])
                if b - a > refine_span and changed(observations[a], observations[b])]
        while todo:
            mids = [(a + b) // 2 for a, b in todo]
            found = detector.detect([image(images, m) for m in mids])
            nxt = []
            for (a, b), m, dets in zip(todo, mids, found):
                observations[m] = dets
                for lo, hi in ((a, m), (m, b)):
                    if hi - lo > refine_span and changed(observations[lo], observations[hi]):
                        nxt.append((lo, hi))
            todo = nxt
        if sampler is not None:
            _add_references(chain, images)
        for idx in sample_ids[:-1]:
            full.pop(idx, None)
        if chain and chain[0] not in sample_ids:
            full.pop(chain[0], None)  # the previous window's last sample: done with it now
        state["last_sample"] = sample_ids[-1]
        state["busy"] += time.perf_counter() - t0

    def full_rgb(i: int, images: dict) -> np.ndarray | None:
        if i in full:
            return full[i]
        img = images.get(i)
        return img.frame.to_ndarray(format="rgb24") if isinstance(img, Decoded) else None

    def _add_references(chain: list[int], images: dict) -> None:
        """Where the mark arrives at (or leaves) a position between two detections at most
        ``refine_span`` apart, the frame without it there is a clean reference for that position."""
        lo_i, hi_i = chain[0], chain[-1]
        seen = sorted(i for i in observations if lo_i <= i <= hi_i)
        for a, b in zip(seen[:-1], seen[1:]):
            if b - a > refine_span or not changed(observations[a], observations[b]):
                continue
            for without, with_mark in ((a, b), (b, a)):
                other = strong(observations[without])
                for det in strong(observations[with_mark]):
                    if len(other) and bx.iou_matrix(det[None, :4].astype(np.float64),
                                                    other[:, :4].astype(np.float64)).max() > 0.1:
                        continue  # a box there too: not clean
                    rgb = full_rgb(without, images)
                    if rgb is None:
                        continue  # only the resized image is left (large frames): no reference
                    # The reference serves the first few marked frames (one background sample,
                    # several looks at the mark over it: fades, codec noise).
                    step = 1 if with_mark > without else -1
                    for j in range(REFERENCE_PARTNERS):
                        partner = with_mark + step * j
                        marked = full_rgb(partner, images) if lo_i <= partner <= hi_i else None
                        if marked is None:
                            break
                        sampler.add_reference(without, rgb, det, partner, marked)

    def flush(last: bool = False) -> None:
        if samples:
            sample_ids = list(samples)
            images = dict(window)
            futures = detector.submit([image(window, i) for i in sample_ids])
            pending.append((futures, sample_ids, images))
            samples.clear()
            # Keep the last sample's image: the next window's intervals start there.
            keep = sample_ids[-1]
            window.clear()
            window[keep] = images[keep]
        while pending and (last or len(pending) > in_flight):
            process(pending.popleft())

    index = -1
    last_item: Decoded | None = None
    for item in frames:
        index = item.index
        pts.append(item.pts)
        if on_frame is not None:
            on_frame(index)
        if sampler is not None and regions_at is not None and index % crop_stride == 0:
            regs = regions_at(item.pts)
            if len(regs):
                sampler.add(index, item.frame.to_ndarray(format="rgb24"), regs)
            if detector is None and should_cancel is not None and index % (stride * 8) == 0:
                should_cancel()
        if detector is None:
            continue
        # Frames between samples are resized only if the bisection asks for them (most are not):
        # their decoded frames are kept instead while that fits ``lazy_bytes``.
        if lazy is None:
            frame = getattr(item, "frame", None)
            size = getattr(frame, "width", 0) * getattr(frame, "height", 0) * 3 // 2
            lazy = 0 < size * stride * detector.batch * (in_flight + 1) <= lazy_bytes
        window[index] = item if lazy and index % stride else detector.resize(item)
        last_item = item
        if index % stride == 0:
            samples.append(index)
            if sampler is not None:
                full[index] = item.frame.to_ndarray(format="rgb24")
            if len(samples) >= detector.batch:
                if should_cancel is not None:
                    should_cancel()
                flush()
    n_frames = index + 1
    if detector is not None and n_frames:
        if (n_frames - 1) % stride != 0:
            samples.append(n_frames - 1)  # the last frame is always a sample
            if sampler is not None and last_item is not None:
                full[n_frames - 1] = last_item.frame.to_ndarray(format="rgb24")
        flush(last=True)
    return ScanResult(n_frames, pts, observations, len(observations), sampler, state["busy"])

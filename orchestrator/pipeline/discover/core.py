"""``Discoverer``: streams pass 1's frames (small copies) and finds the overlays' places and visits.

Per chunk of ``chunk`` frames: static-edge blobs become tracks (``tracks.Track``); every track
scores every frame; where a track's score steps up or down, the step is fitted as a white
overlay. Tracks with a fitting step are the result: positions (frame pixels) and per-frame
presence, the same ``boxes.Timeline`` the detector path builds. Only the last two chunks' small
frames are kept: memory is flat in the video's length.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from dataclasses import dataclass, replace
from typing import Iterable, Iterator

import cv2
import numpy as np

from orchestrator.pipeline import boxes as bx
from orchestrator.pipeline.discover.events import Event, event_track, holds_still, step_events
from orchestrator.pipeline.discover.features import (ChunkStats, blobs, candidates, gradients, luma, picture_slices,
                                                     small_rgb, work_size)
from orchestrator.pipeline.discover.picture import PictureAccumulator
from orchestrator.pipeline.discover.result import (Discovery, FoundPosition, group, jump_marks, merge,
                                                   one_place_at_a_time, paired, share_extent, steady)
from orchestrator.pipeline.discover.tracks import HIGH, LOW, MAX_STEP_GAP, Track, runs, step_extent
from orchestrator.pipeline.discover.fixed import fixed_places
from orchestrator.pipeline.discover.visits import bounded, jumpers, partnered, verdict

LOGGER = logging.getLogger(__name__)

MAX_MARK_SHARE = (0.4, 0.25)  # of the picture's width and height
MAX_TRACKS = 48
EVENT_FRAMES = 8  # frames that build an event's template
RETIRE = 40  # frames


@dataclass
class _Frame:
    index: int
    rgb: np.ndarray  # small
    decoded: object | None  # the full frame (for the matte's crops), when given
    grey: np.ndarray | None = None  # its luma, uint8 (every track scores it from this)


class Discoverer:
    """Feed it every frame (``tap`` or ``add``), then ``finish``. ``sampler`` (a ``detect.MarkListener``,
    e.g. ``matte.CropSampler``) receives full-resolution crops of the places found, for the matte."""

    def __init__(self, width: int, height: int, *, chunk: int = 20, sampler=None, crop_every: int = 3) -> None:
        self.width, self.height = width, height
        self.size = work_size(width, height)
        self.sx, self.sy = width / self.size[0], height / self.size[1]
        self.chunk = max(4, chunk)
        self.sampler = sampler
        self.crop_every = max(1, crop_every)
        self.picture = PictureAccumulator()
        # New tracks are scored back over the buffer: most of a ~67-frame visit.
        self.buffer: deque[_Frame] = deque(maxlen=4 * self.chunk)
        self.stats = ChunkStats.empty(self.size[1], self.size[0])
        self.means: deque = deque(maxlen=2)
        self.tracks: list[Track] = []
        self.seconds = 0.0  # wall time in discovery (includes waiting for the CPU)
        self.cpu_seconds = 0.0  # this thread's CPU time in discovery
        self.frames = 0
        self._pending: list[tuple[int, int, int, int]] = []  # the previous chunk's new blobs
        self._last: np.ndarray | None = None  # the last frame's luma (uint8)
        self._diffs: deque = deque(maxlen=3)  # (grey − the frame before's, its abs), for jump events
        self._arrivals: list[Event] = []  # arrivals waiting for the frames after them
        self.events = 0  # jump events that held still and fit a white overlay
        self.moving = 0  # jump events dropped unfitted: their pixels did not hold still

    def tap(self, frames: Iterable) -> Iterator:
        """Pass ``detect.Decoded`` items through, looking at each on the way."""
        for item in frames:
            t0, c0 = time.perf_counter(), time.thread_time()
            small = small_rgb(item.frame, self.size)
            self.add(item.index, small, item)
            self.seconds += time.perf_counter() - t0
            self.cpu_seconds += time.thread_time() - c0
            yield item

    def add(self, index: int, small_rgb: np.ndarray, decoded=None) -> None:
        g = luma(small_rgb)
        self.picture.add(g)
        area = self.picture.work_area()
        at = picture_slices(area, g.shape)  # the bars are skipped
        self.stats.add(*gradients(g[at]), at=at)
        self.buffer.append(_Frame(index, small_rgb, decoded, g))
        self.frames = index + 1
        if self._last is not None:
            self._diffs.append(_difference(g, self._last, at))
        self._last = g
        self._jumps(index, area)
        if self.stats.n >= self.chunk:
            self._close_chunk()

    # ------------------------------------------------------------------ jump events
    def _jumps(self, index: int, area: tuple[int, int, int, int] | None) -> None:
        """Look for jumps between the frames index-2 and index-1; start tracks where they fit."""
        if len(self._diffs) == 3 and area is not None:
            (_, before), (step, step_abs), (_, after) = self._diffs
            for event in step_events(before, step, after, index - 1, area, step_abs):
                self._on_event(event)
        ready = [e for e in self._arrivals if index - e.frame >= EVENT_FRAMES]
        self._arrivals = [e for e in self._arrivals if index - e.frame < EVENT_FRAMES]
        for event in ready:
            self._start_from_event(event)

    def _on_event(self, event: Event) -> None:
        box = np.asarray(event.box, np.float64)[None]
        if self.tracks and bx.iou_matrix(box, np.array([t.box for t in self.tracks], np.float64)).max() > 0.6:
            return  # a known place: its track fits the step itself
        if event.arrive:
            self._arrivals.append(event)  # its look and template need the frames after it
        else:
            self._start_from_event(event)

    def _start_from_event(self, event: Event) -> None:
        """A track from the frames where the overlay is (after an arrival, before a departure)
        when the step fits a white overlay; its template keeps the edges of what stepped (not the
        picture's edges around it), and the event's fitted step is its first."""
        frames = [f for f in self.buffer if (event.frame <= f.index < event.frame + EVENT_FRAMES if event.arrive
                                              else event.frame - EVENT_FRAMES <= f.index < event.frame)]
        cut = bool(frames) and (frames[0].index == 0 or frames[-1].index == self.frames - 1 and event.arrive)
        buffered = {f.index: f for f in self.buffer}
        on, off = (event.frame, event.frame - 1) if event.arrive else (event.frame - 1, event.frame)
        if len(frames) < (1 if cut else 4) or on not in buffered or off not in buffered:
            return  # (a visit the video's start or end cuts short shows no more)
        # A cheap look first: a white object moving on is dropped before the step is fitted.
        ends = (frames[0], frames[-1]) if event.arrive else (frames[-1], frames[0])
        if len(frames) > 1 and not holds_still(event, ends[0].grey, ends[1].grey, buffered[off].grey):
            self.moving += 1
            return
        fit = Track(event.box, np.zeros(0), np.zeros(0), 0, event.frame).fit_step(
            buffered[on].rgb, buffered[off].rgb, on, off)
        if fit is None or not fit.fits:
            return
        self.events += 1
        if len(self.tracks) >= MAX_TRACKS:
            self._evict()
        if len(self.tracks) >= MAX_TRACKS:
            return
        track = event_track(event, [f.rgb for f in frames], self.buffer[0].index)
        if track is None:
            return
        _score(track, self.buffer)
        track.steps.append(fit)
        self.tracks.append(track)
        if fit.on in buffered and fit.off in buffered:
            self._grow(track, buffered, fit.on, fit.off)
        self._fit_steps(track)

    # ------------------------------------------------------------------ per chunk
    def _close_chunk(self, last: bool = False) -> None:
        n = self.stats.n
        current = list(self.buffer)[-n:]
        for track in self.tracks:
            _score(track, current)
        mean_g = self.stats.mean()
        area = self.picture.work_area()
        before = self.means[0] if len(self.means) == 2 else None
        found = blobs(candidates(self.stats, before, area), area) if n >= 4 else []
        pending = self._pending
        self._pending = []
        for blob in found:
            self._place(blob, mean_g, current, pending, last)
        for track in self.tracks:
            self._fit_steps(track)
        self._retire()
        if self.sampler is not None:
            self._feed_sampler(current)
        self.means.append(mean_g)
        self.stats = ChunkStats.empty(self.size[1], self.size[0])

    def _place(self, blob, mean_g, current: list[_Frame], pending: list, last: bool = False) -> None:
        """Update the track the blob belongs to, or start one (scored over the whole buffer) when
        the previous chunk had a blob there too (a still phase of the picture makes blobs that
        last one chunk)."""
        box = np.asarray(blob.box, np.float64)[None]
        if self.tracks:
            ious = bx.iou_matrix(box, np.array([t.box for t in self.tracks], np.float64))[0]
            best = int(np.argmax(ious))
            if ious[best] > 0.3:
                track = self.tracks[best]
                if np.mean([track.scores[f.index] >= HIGH for f in current]) > 0.6:
                    track.update(mean_g)
                return
        self._pending.append(blob.box)
        paired = bool(pending) and bx.iou_matrix(box, np.array(pending, np.float64)).max() > 0.3
        if not paired and not last:  # (the video's last chunk has no next one to wait for)
            return
        if len(self.tracks) >= MAX_TRACKS:
            self._evict()
        if len(self.tracks) >= MAX_TRACKS:
            return
        track = Track.from_blob(blob.box, mean_g, blob.mask, 2, (self.size[1], self.size[0]),
                                self.buffer[0].index)
        _score(track, self.buffer)
        self.tracks.append(track)

    def _retire(self) -> None:
        """Unconfirmed tracks gone for ``RETIRE`` frames were texture that held still a moment."""
        end = self.buffer[-1].index + 1
        keep = []
        for t in self.tracks:
            recent = t.scores[max(0, end - RETIRE):end]
            if t.confirmed or end - t.first_frame < RETIRE or max(recent, default=0.0) >= LOW:
                keep.append(t)
        self.tracks = keep

    def _evict(self) -> None:
        """Drop the unconfirmed track seen in the fewest chunks (a still scene makes many); when
        every track is confirmed (a moving white object fits a step here and there), the oldest
        one gone for ``RETIRE`` frames that holds no overlay and jumped with no other place."""
        loose = [t for t in self.tracks if not t.confirmed]
        if loose:
            drop = min(loose, key=lambda t: (t.chunks, t.first_frame))
            self.tracks = [t for t in self.tracks if t is not drop]
            return
        end = self.buffer[-1].index + 1
        for t in sorted(self.tracks, key=lambda t: t.first_frame):
            scores = np.frombuffer(t.scores, np.float32)
            if max(scores[max(0, end - RETIRE):end], default=0.0) >= LOW or verdict(t, scores, set()) is not None:
                continue
            if not partnered(t, self.tracks):
                self.tracks = [k for k in self.tracks if k is not t]
                return

    def _fit_steps(self, track: Track) -> None:
        """Fit every step of the track's score that lies inside the buffer (each once; the first
        fitting pair of frames of a step is enough)."""
        frames = {f.index: f for f in self.buffer}
        idx = sorted(frames)
        s = {i: track.scores[i] if i < len(track.scores) else 0.0 for i in idx}
        fitted = {(max(f.on, f.off), f.arrive) for f in track.steps if f.fits}
        for i in idx:
            if s[i] < HIGH:
                continue
            for j in range(1, MAX_STEP_GAP + 1):
                for other in (i + j, i - j):
                    if other not in s or s[other] > LOW:
                        continue
                    if any(abs(f - max(i, other)) <= MAX_STEP_GAP and a == (i > other) for f, a in fitted):
                        continue  # this step already fits
                    if (i, other) in track.tried:
                        continue
                    between = range(min(i, other) + 1, max(i, other))
                    if any(s[k] >= HIGH for k in between):
                        continue  # not the last full frame before the step
                    d = 1 if other > i else -1
                    on_side = [s.get(i - d * k) for k in (1, 2)]
                    off_side = [s.get(other + d * k) for k in (1, 2)]
                    if None in off_side or None in on_side:
                        continue  # its neighbours are not all here yet (or any more)
                    track.tried.add((i, other))
                    if min(on_side) < HIGH or max(off_side) > LOW:
                        continue  # a flicker, not an overlay holding still on both sides
                    fit = track.fit_step(frames[i].rgb, frames[other].rgb, i, other)
                    if fit is not None:
                        track.steps.append(fit)
                        if fit.fits:
                            fitted.add((max(i, other), i > other))
                            self._grow(track, frames, i, other)
                            self._add_references(track, frames, i, other)

    def _grow(self, track: Track, frames: dict, on: int, off: int) -> None:
        """Extend the track's extent to all that stepped with it; on a departure, from a frame a
        little earlier (the Sora mark's text leaves ~2 frames before its icon)."""
        early = on - 3 if on < off else on
        start = early if early in frames and track.scores[early] >= HIGH else on
        between = tuple(frames[k].rgb for k in range(start + 1, off) if k in frames) if start < on else ()
        # With frames between, only what stepped frame to frame (not drifting clouds) where that finds any.
        found = step_extent(track, frames[start].rgb, frames[off].rgb, between, fallback=True)
        if found is None:
            return
        box, shape = found
        for k, s in enumerate(track.steps):  # the fitted step's shape: the whole overlay's
            if (s.on, s.off) == (on, off):
                track.steps[k] = replace(s, shape=shape)
        old = track.extent or track.box
        track.extent = (min(old[0], box[0]), min(old[1], box[1]), max(old[2], box[2]), max(old[3], box[3]))

    def _full(self, f: _Frame, cache: dict) -> np.ndarray | None:
        if f.decoded is None:
            return None
        if f.index not in cache:
            cache[f.index] = f.decoded.frame.to_ndarray(format="rgb24")
        return cache[f.index]

    def _mark_sized(self, track: Track) -> bool:
        """A mark is small beside the picture (the Sora mark: ~0.22 of a portrait picture's width,
        0.12 of a landscape one's); a face or a body found moving is not."""
        area = self.picture.work_area() or (0, 0, self.size[0], self.size[1])
        x0, y0, x1, y1 = track.extent or track.box
        return x1 - x0 <= MAX_MARK_SHARE[0] * (area[2] - area[0]) and y1 - y0 <= MAX_MARK_SHARE[1] * (area[3] - area[1])

    def full_box(self, box) -> np.ndarray:
        x0, y0, x1, y1 = box
        return np.array([x0 * self.sx, y0 * self.sy, x1 * self.sx, y1 * self.sy], np.float64)

    def _feed_sampler(self, current: list[_Frame]) -> None:
        """Full-resolution crops of every place where its overlay is (the matte's samples)."""
        cache: dict = {}
        for track in self.tracks:
            if track.chunks < 2 and not track.confirmed:
                continue
            det = self.full_box(track.extent or track.box)[None]
            for f in current:
                if f.index % self.crop_every == 0 and track.scores[f.index] >= HIGH:
                    rgb = self._full(f, cache)
                    if rgb is not None:
                        self.sampler.on_marked(f.index, rgb, det)

    def _add_references(self, track: Track, frames: dict, on: int, off: int) -> None:
        """The frame without the overlay next to a step is a clean reference for the matte."""
        if self.sampler is None:
            return
        cache: dict = {}
        det = self.full_box(track.extent or track.box)
        clean = self._full(frames[off], cache)
        step = 1 if on > off else -1
        for k in range(3):
            partner = frames.get(on + step * k)
            marked = self._full(partner, cache) if partner is not None else None
            if clean is None or marked is None:
                break
            self.sampler.on_marked(partner.index, marked, det[None])
            self.sampler.on_clean(off, clean, det, partner.index, marked)

    # ------------------------------------------------------------------ result
    def finish(self, n_frames: int | None = None) -> Discovery:
        t0, c0 = time.perf_counter(), time.thread_time()
        self._flush()
        n = self.frames if n_frames is None else n_frames
        kept = self._places(n)
        share_extent(kept, self.size)
        positions = []
        boxes = np.zeros((len(kept), 4))
        present = np.zeros((len(kept), n), bool)
        marks = jump_marks(kept, group([(t.extent or t.box, t.alpha()) for t, _ in kept]))
        one_place_at_a_time(kept, marks)
        for k, ((track, on), mark) in enumerate(zip(kept, marks)):
            boxes[k] = self.full_box(track.extent or track.box)
            present[k] = on
            positions.append(FoundPosition(tuple(float(v) for v in boxes[k]), tuple(runs(on)), track.alpha(),
                                           sum(s.fits for s in track.steps), mark))
        self.seconds += time.perf_counter() - t0
        self.cpu_seconds += time.thread_time() - c0
        timeline = bx.Timeline(boxes, present, [int(p.sum()) for p in present])
        result = Discovery(self.picture.area(self.width, self.height), tuple(positions), timeline,
                           n, self.seconds, len(self.tracks), self.cpu_seconds)
        LOGGER.info("discovery: %d positions of %d marks from %d candidates, picture %s, %.2f ms/frame",
                    len(positions), result.marks, len(self.tracks), result.picture.box,
                    1000 * self.seconds / max(n, 1))
        return result

    def _flush(self) -> None:
        """The video ended: an arrival at its last frame, arrivals still waiting, the last chunk."""
        area = self.picture.work_area()
        if len(self._diffs) == 3 and area is not None:
            (_, before), (step, _) = self._diffs[1], self._diffs[2]
            for event in step_events(before, step, np.zeros_like(step), self.frames - 1, area):
                self._on_event(event)
        for event in self._arrivals:  # arrivals near the end: the frames there are enough
            self._start_from_event(event)
        self._arrivals = []
        if self.stats.n:
            self._close_chunk(last=True)

    def _places(self, n: int) -> list[tuple[Track, np.ndarray]]:
        """The places that hold an overlay, with their presence over the ``n`` frames."""
        kept, all_scores = [], {}
        jumped = jumpers(self.tracks)
        for track in self.tracks:
            scores = np.zeros(n, np.float32)
            m = min(n, len(track.scores))
            scores[:m] = np.frombuffer(track.scores, np.float32, m)
            all_scores[id(track)] = scores
            # An overlay is exactly still: its edges match the template all visit long (a face
            # or a body that holds nearly still drifts and deforms).
            on = verdict(track, scores, jumped)
            if on is not None:
                kept.append((track, on))
        # An icon's track is confirmed by its steps; its text's track (found apart) joins it.
        area = self.picture.work_area() or (0, 0, self.size[0], self.size[1])
        limit = (MAX_MARK_SHARE[0] * (area[2] - area[0]), MAX_MARK_SHARE[1] * (area[3] - area[1]))
        merged = merge(kept, limit)
        confirmed = [(t, on, bounded(t, on, jumped)) for t, on in merged if t.confirmed]
        # A place holds still over its visits; one that jumped may show it on its visits cut at
        # its steps (a short run of texture before its arrival), any other on its whole presence.
        steady_ones = [(t, cut) for t, on, cut in confirmed if self._mark_sized(t) and (
            steady(on) or id(t) in jumped and steady(cut, short_edges=True))]
        places = paired(steady_ones, steady_ones, self.tracks)  # both places of a jump hold an overlay
        loose = [(t, on) for t, on in merged if not t.confirmed and self._mark_sized(t)]
        return places + fixed_places(loose, all_scores, self.buffer)


def _difference(g: np.ndarray, last: np.ndarray, at: tuple[slice, slice]) -> tuple[np.ndarray, np.ndarray]:
    """(g − last, |g − last|) over the picture ``at`` (zero on the bars): int16 and uint8 from
    uint8 luma (OpenCV: one pass each, ~4x cheaper than numpy's casting subtract and abs)."""
    if g.dtype != np.uint8:
        d = np.zeros(g.shape, g.dtype)
        np.subtract(g[at], last[at], out=d[at])
        return d, np.abs(d)
    if g[at].shape == g.shape:
        return cv2.subtract(g, last, dtype=cv2.CV_16S), cv2.absdiff(g, last)
    d, a = np.zeros(g.shape, np.int16), np.zeros(g.shape, np.uint8)
    d[at] = cv2.subtract(g[at], last[at], dtype=cv2.CV_16S)
    a[at] = cv2.absdiff(g[at], last[at])
    return d, a


def _score(track: Track, frames: Iterable[_Frame]) -> None:
    """Score the track on these frames (all at once: ``Track.score_many``)."""
    frames = list(frames)
    for f, value in zip(frames, track.score_many([f.grey for f in frames]).tolist()):
        track.set_score(f.index, value)

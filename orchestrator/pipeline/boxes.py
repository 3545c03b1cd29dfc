"""Boxes over time: NMS, positions the video really uses, gap filling, blip removal, dilation, regions.

The Sora mark holds still for ~2 s and then jumps between a few fixed positions, with missed
detections around the jumps (it fades). So detections are clustered into *positions* (each
detection is snapped to its position's median box: no jitter), each position gets a per-frame
presence track, and the tracks are cleaned:

- frames the detector never saw (the detection stride) take the union of their observed
  neighbours (the same state when they agree; the detector bisects intervals where they disagree
  down to a few frames, which then get both positions);
- runs of presence shorter than ``min_run`` frames are dropped (one-frame false positives);
- absences of at most ``max_gap`` frames between two presences of the same position are filled;
- frames without any box between two marked frames (a jump with a fade), and at most ``max_gap``
  frames at the start/end next to a marked frame, get the boxes of both neighbours: a faint mark
  left behind is the worst defect, an extra inpainted box costs little.

Only boxes are stored per frame (a few bytes), never frames.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box in ``a`` [N,4] with every box in ``b`` [M,4] (x1,y1,x2,y2)."""
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-9), 0.0)


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float = 0.45, max_det: int = 50) -> np.ndarray:
    """Greedy NMS; the IoU matrix is computed once (vectorised). Returns kept indices by score."""
    if len(boxes) == 0:
        return np.zeros(0, np.int64)
    order = np.argsort(-np.asarray(scores), kind="stable")[:1000]
    ious = iou_matrix(boxes[order], boxes[order])
    suppressed = np.zeros(len(order), bool)
    keep = []
    for i in range(len(order)):
        if suppressed[i]:
            continue
        keep.append(order[i])
        if len(keep) >= max_det:
            break
        suppressed |= ious[i] > iou_threshold
    return np.asarray(keep, np.int64)


def decode_detections(
    output: np.ndarray, *, conf: float, iou: float, scale: float, pad_x: float, pad_y: float,
    width: int, height: int,
) -> np.ndarray:
    """One image's detector output [5, 8400] (cx,cy,w,h,score in letterbox pixels) -> [n,5]
    (x1,y1,x2,y2,score) in frame pixels after threshold and NMS."""
    pred = np.asarray(output, np.float32)
    scores = pred[4]
    sel = np.flatnonzero(scores >= conf)
    if sel.size == 0:
        return np.zeros((0, 5), np.float32)
    cx, cy, w, h = pred[0, sel], pred[1, sel], pred[2, sel], pred[3, sel]
    boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], 1)
    boxes[:, [0, 2]] = (boxes[:, [0, 2]] - pad_x) / scale
    boxes[:, [1, 3]] = (boxes[:, [1, 3]] - pad_y) / scale
    boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, width)
    boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, height)
    valid = (boxes[:, 2] - boxes[:, 0] >= 1) & (boxes[:, 3] - boxes[:, 1] >= 1)
    boxes, s = boxes[valid], scores[sel][valid]
    keep = nms(boxes, s, iou)
    return np.concatenate([boxes[keep], s[keep, None]], 1).astype(np.float32)


def same_boxes(a: np.ndarray, b: np.ndarray, iou: float = 0.5) -> bool:
    """True when both frames show the same boxes (one-to-one, IoU >= ``iou``)."""
    if len(a) != len(b):
        return False
    if len(a) == 0:
        return True
    m = iou_matrix(np.asarray(a)[:, :4], np.asarray(b)[:, :4])
    return bool((m.max(1) >= iou).all() and (m.max(0) >= iou).all())


def centre_window(box, width: int, height: int, frame_width: int, frame_height: int) -> tuple[int, int] | None:
    """(x0, y0) of a ``width`` x ``height`` window centred on ``box`` (x1, y1, x2, y2) and shifted
    inside the frame, or None when it is larger than the frame (the matte's crops and plans)."""
    if width > frame_width or height > frame_height:
        return None
    x0 = min(max(int(round((box[0] + box[2]) / 2 - width / 2)), 0), frame_width - width)
    y0 = min(max(int(round((box[1] + box[3]) / 2 - height / 2)), 0), frame_height - height)
    return x0, y0


def dilate(boxes: np.ndarray, width: int, height: int, *, frac: float = 0.1, px: float = 4.0) -> np.ndarray:
    """Grow boxes by ``frac`` of their size plus ``px`` on every side, clipped to the frame; the
    result is integer pixel coordinates (x2/y2 exclusive)."""
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    mx = (b[:, 2] - b[:, 0]) * frac + px
    my = (b[:, 3] - b[:, 1]) * frac + px
    out = np.stack([b[:, 0] - mx, b[:, 1] - my, b[:, 2] + mx, b[:, 3] + my], 1)
    out = np.stack([np.floor(out[:, 0]), np.floor(out[:, 1]), np.ceil(out[:, 2]), np.ceil(out[:, 3])], 1)
    out[:, [0, 2]] = out[:, [0, 2]].clip(0, width)
    out[:, [1, 3]] = out[:, [1, 3]].clip(0, height)
    return out.astype(np.int32)


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) of every run of True."""
    if mask.size == 0:
        return []
    padded = np.concatenate([[False], mask, [False]])
    edges = np.flatnonzero(np.diff(padded.astype(np.int8)))
    return list(zip(edges[0::2].tolist(), edges[1::2].tolist()))


@dataclass
class Timeline:
    """Per-frame sets of position ids; ``positions[k]`` is position k's box (x1,y1,x2,y2)."""

    positions: np.ndarray  # [K,4] float
    present: np.ndarray  # [K, n_frames] bool
    detections_per_position: list[int] = field(default_factory=list)

    @property
    def n_frames(self) -> int:
        return self.present.shape[1]

    def ids_at(self, frame: int) -> np.ndarray:
        return np.flatnonzero(self.present[:, frame])

    def boxes_at(self, frame: int) -> np.ndarray:
        return self.positions[self.present[:, frame]]

    def frames_with_boxes(self) -> int:
        return int(self.present.any(0).sum()) if self.present.size else 0


def cluster_positions(observations: dict[int, np.ndarray], iou: float = 0.5) -> tuple[np.ndarray, dict[int, np.ndarray]]:
    """Group detections that overlap (IoU >= ``iou`` with a position's running mean) into positions.

    Returns the median box per position and, per observed frame, the position id of each box.
    """
    means: list[np.ndarray] = []
    counts: list[int] = []
    members: list[list[np.ndarray]] = []
    labels: dict[int, np.ndarray] = {}
    for frame in sorted(observations):
        dets = np.asarray(observations[frame], np.float64)
        dets = dets.reshape(-1, dets.shape[-1]) if dets.size else np.zeros((0, 4))
        ids = np.full(len(dets), -1, np.int64)
        for j, det in enumerate(dets[:, :4]):
            if means:
                m = iou_matrix(det[None], np.stack(means))[0]
                m[[k for k in set(ids.tolist()) if k >= 0]] = -1  # one box per position per frame
                best = int(np.argmax(m))
                if m[best] >= iou:
                    ids[j] = best
                    counts[best] += 1
                    means[best] += (det - means[best]) / counts[best]
                    members[best].append(det)
                    continue
            ids[j] = len(means)
            means.append(det.copy())
            counts.append(1)
            members.append([det])
        labels[frame] = ids
    positions = np.array([np.median(np.stack(m), 0) for m in members]).reshape(-1, 4)
    return positions, labels


@dataclass
class Segment:
    """One stretch of observed presence of one position (observations at most ``join`` apart)."""

    pid: int
    frames: list[int]
    scores: list[float]

    @property
    def evidence(self) -> float:
        return float(sum(self.scores))


def position_segments(observations: dict[int, np.ndarray], labels: dict[int, np.ndarray], k: int,
                      n_frames: int, join: int) -> list[Segment]:
    """Per position, runs of observed frames where it was detected; a run continues while the next
    detection is at most ``join`` frames later. Detections without a score count 1.0."""
    per_pid: list[list[tuple[int, float]]] = [[] for _ in range(k)]
    for f in sorted(observations):
        if not 0 <= f < n_frames:
            continue
        dets = np.asarray(observations[f], np.float64)
        dets = dets.reshape(-1, dets.shape[-1]) if dets.size else np.zeros((0, 4))
        for j, pid in enumerate(labels[f]):
            per_pid[pid].append((f, float(dets[j, 4]) if dets.shape[1] > 4 else 1.0))
    segments: list[Segment] = []
    for pid, hits in enumerate(per_pid):
        for f, score in hits:
            last = segments[-1] if segments and segments[-1].pid == pid else None
            if last is not None and f - last.frames[-1] <= join:
                last.frames.append(f)
                last.scores.append(score)
            else:
                segments.append(Segment(pid, [f], [score]))
    return segments


def filter_by_evidence(segments: list[Segment], k: int, *, conf: float, min_evidence: float,
                       rel_evidence: float, dominance: float = 2.0, bridge: int = 24,
                       ) -> tuple[list[Segment], list[bool], list[tuple[int, int, list[int]]]]:
    """Keep the segments that time says are the mark; returns (kept, confirmed flag per kept,
    ``jump_bridges``: frames between two confirmed segments that get both positions).

    A mark holds still at a few positions for seconds: its segment gathers evidence (the sum of
    its per-frame scores) even when each score is weak. A segment is *confirmed* when its evidence
    is at least ``min_evidence`` and its position's evidence (all its segments: the mark returns
    to the same places) at least ``rel_evidence`` of the best position's, and no confirmed
    segment of another position spanning most of it scores ``dominance`` times higher on average
    (the usual false positive: a weaker box beside the real mark). Other segments are
    false-positive candidates: their detections on frames a confirmed segment of another position
    spans are dropped (one mark at a time; jumps are where confirmed segments end), and the rest
    is kept only when one score reaches ``conf`` (an isolated weak box is noise; a strong one on
    frames no confirmed mark covers is kept: a missed mark is the worst defect).
    """
    pos_ev = np.zeros(k)
    for seg in segments:
        pos_ev[seg.pid] += seg.evidence
    best = pos_ev.max() if k else 0.0
    confirmed = [seg.evidence >= min_evidence and pos_ev[seg.pid] >= rel_evidence * best for seg in segments]
    # One mark at a time: a confirmed segment mostly spanned by a confirmed segment of another
    # position that scores ``dominance`` times higher on average is a false positive beside it.
    means = [float(np.mean(seg.scores)) for seg in segments]
    dominated = []
    for i, seg in enumerate(segments):
        a, b = seg.frames[0], seg.frames[-1]
        for j, other in enumerate(segments):
            if j == i or other.pid == seg.pid or not confirmed[j] or means[j] < dominance * means[i]:
                continue
            overlap = min(b, other.frames[-1]) - max(a, other.frames[0])
            if overlap >= 0.5 * (b - a):
                dominated.append(i)
                break
    for i in dominated:
        confirmed[i] = False
    spans = [(seg.pid, seg.frames[0], seg.frames[-1]) for seg, ok in zip(segments, confirmed) if ok]
    bridges = jump_bridges(spans, bridge)
    spans += [(pid, a, b) for a, b, pids in bridges for pid in pids]
    kept: list[Segment] = []
    flags: list[bool] = []
    for seg, ok in zip(segments, confirmed):
        if ok:
            kept.append(seg)
            flags.append(True)
            continue
        pairs = [(f, s) for f, s in zip(seg.frames, seg.scores)
                 if not any(pid != seg.pid and a <= f <= b for pid, a, b in spans)]
        if pairs and max(s for _, s in pairs) >= conf:
            kept.append(Segment(seg.pid, [f for f, _ in pairs], [s for _, s in pairs]))
            flags.append(False)
    return kept, flags, bridges


def jump_bridges(spans: list[tuple[int, int, int]], bridge: int) -> list[tuple[int, int, list[int]]]:
    """Where one confirmed segment ends and another position's starts at most ``bridge`` frames
    later (a jump, often with a fade the detector misses), the frames in between get both
    positions: (first, last, [pids])."""
    out = []
    for pid, _start, b in spans:
        later = [(a2, pid2) for pid2, a2, _ in spans if pid2 != pid and b < a2 <= b + bridge]
        if not later:
            continue
        start, nxt = min(later)
        if start - b > 1:
            out.append((b + 1, start - 1, [pid, nxt]))
    return out


def build_timeline(
    n_frames: int, observations: dict[int, np.ndarray], *, max_gap: int = 12, min_run: int = 2,
    cluster_iou: float = 0.5, conf: float = 0.0, min_evidence: float = 1.2,
    rel_evidence: float = 0.25, join: int = 24,
) -> Timeline:
    """Turn sparse detections (frame -> [n,4 or 5]) into clean per-frame position tracks.

    With scores (5 columns), detections first go through ``filter_by_evidence``: boxes scoring
    below ``conf`` are kept when they are consistent over time at one place, and isolated or
    contradicted boxes are dropped. Without scores every detection is evidence 1.0.
    """
    positions, labels = cluster_positions(observations, cluster_iou)
    k = len(positions)
    present = np.zeros((k, n_frames), bool)
    if k == 0 or n_frames == 0:
        return Timeline(positions, present, [0] * k)
    known_frames = np.array(sorted(f for f in observations if 0 <= f < n_frames), np.int64)
    segments = position_segments(observations, labels, k, n_frames, join)
    kept, _, bridges = filter_by_evidence(segments, k, conf=conf, min_evidence=min_evidence,
                                          rel_evidence=rel_evidence, bridge=2 * max_gap)
    used = sorted({seg.pid for seg in kept})  # positions left without evidence are removed
    remap = {pid: i for i, pid in enumerate(used)}
    positions = positions[used].reshape(-1, 4)
    k = len(positions)
    present = np.zeros((k, n_frames), bool)
    if k == 0:
        return Timeline(positions, present, [])
    counts = [0] * k
    for seg in kept:
        present[remap[seg.pid], seg.frames] = True
        counts[remap[seg.pid]] += len(seg.frames)
    for a, b, pids in bridges:
        present[[remap[p] for p in pids], a : b + 1] = True
    _fill_and_clean(present, known_frames, n_frames, min_run=min_run, max_gap=max_gap)
    return Timeline(positions, present, counts)


def _fill_and_clean(present: np.ndarray, known_frames: np.ndarray, n_frames: int, *, min_run: int,
                    max_gap: int) -> None:
    """Complete the presence [k, n_frames] in place: unobserved frames, short runs, short gaps."""
    k = present.shape[0]
    # 1. Unobserved frames take the union of their two observed neighbours: the same state when
    #    they agree; both positions where the detector was not asked to refine a change.
    for pid in range(k):
        states = present[pid, known_frames]
        either = states[:-1] | states[1:]
        for a, b in zip(known_frames[:-1][either], known_frames[1:][either]):
            present[pid, a + 1:b] = True
        # Before the first and after the last observation: extend the edge state.
        if states.size and states[0]:
            present[pid, : known_frames[0]] = True
        if states.size and states[-1]:
            present[pid, known_frames[-1]:] = True
    # 2. Drop short runs (false positives), unless the whole video is that short; a run at the
    #    video's first or last frame may be a visit the video cuts short (a jump on its last frame).
    if n_frames > min_run:
        for pid in range(k):
            for a, b in _runs(present[pid]):
                if b - a < min_run and 0 < a and b < n_frames:
                    present[pid, a:b] = False
    # 3. Fill short absences of the same position.
    for pid in range(k):
        for a, b in _runs(~present[pid]):
            if a > 0 and b < n_frames and b - a <= max_gap:
                present[pid, a:b] = True
    # 4. Frames with no box at all, next to marked frames: union of both neighbours.
    any_box = present.any(0)
    for a, b in _runs(~any_box):
        if b - a > max_gap:
            continue
        if a > 0:
            present[present[:, a - 1], a:b] = True
        if b < n_frames:
            present[present[:, b], a:b] = True


def region_boxes(regions: Sequence, t: float) -> np.ndarray:
    """Boxes of the task's regions active at time ``t`` (seconds from the video start)."""
    boxes = [r.box for r in regions if r.active_at(t)]
    return np.asarray(boxes, np.float64).reshape(-1, 4)


def frame_boxes(
    timeline: Timeline | None, frame: int, t: float, regions: Sequence, width: int, height: int,
    *, frac: float = 0.1, px: float = 4.0,
) -> np.ndarray:
    """Final integer boxes for one frame: dilated detected positions + regions (undilated: the
    user drew them), clipped to the frame; empty boxes removed."""
    parts = []
    if timeline is not None and timeline.positions.size:
        detected = timeline.boxes_at(frame)
        if len(detected):
            parts.append(dilate(detected, width, height, frac=frac, px=px))
    reg = region_boxes(regions, t)
    if len(reg):
        r = np.stack([np.floor(reg[:, 0]), np.floor(reg[:, 1]), np.ceil(reg[:, 2]), np.ceil(reg[:, 3])], 1)
        r[:, [0, 2]] = r[:, [0, 2]].clip(0, width)
        r[:, [1, 3]] = r[:, [1, 3]].clip(0, height)
        parts.append(r.astype(np.int32))
    if not parts:
        return np.zeros((0, 4), np.int32)
    out = np.concatenate(parts)
    return out[(out[:, 2] > out[:, 0]) & (out[:, 3] > out[:, 1])]

"""Where one mark's visit hands over to the next: the frame a jump happens, once, for both places.

Discovery ends a visit where the wordmark leaves, ~2 frames before the cloud does (DESIGN: the
text leaves first; the new place shows at full strength on the next frame), so those cloud-only
frames were in no visit; and a visit's start scored back over texture, or the detector's timeline
giving both places to the frames between two samples, let the next place start before the old one
ended (one mark in two places). At each handover from place A to place B of one mark the frames
are split at one frame ``h``: A until ``h``, B from it. ``h`` is B's first detector sighting after
the detector's last sighting of A when the detector saw both (bisection brackets the change to one
frame; frames in between where it saw nothing are A's cloud, and the new place shows at full
strength at once); without the detector, a gap of at most ``MAX_GAP`` frames goes to A (the cloud
is still there) and an overlap is left as it is. A detector place the
confirmed mark jumps to (or from) is confirmed by that jump (``jumped_to``); a visit the
detector contradicts (it saw the mark elsewhere all along) is dropped (``drop_contradicted``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from orchestrator.pipeline import boxes as bx

MAX_GAP = 3  # frames between A's end and B's start that are A's lingering cloud
NEAR = 24  # frames around a handover searched for the detector's sightings
SIGHT_IOU = 0.3  # the detector's strongest box is at a place when it overlaps its box this much (or lies inside it)
SAME_SIZE = 0.4  # places without a discovery mark id are one mark when their sizes agree this well
JUMP_SIZE = 0.5  # ...and looser where one's visit starts on the frame the other's ends (a discovery
# extent can take texture along: 90×50 for a 77×26 mark)


@dataclass(frozen=True)
class Place:
    """One timeline position as the handover sees it."""

    box: np.ndarray  # (x1, y1, x2, y2)
    mark: int | None  # discovery's mark id (places of one mark share it), None for detector-only


def one_mark(a: Place, b: Place, tolerance: float = SAME_SIZE) -> bool:
    """Two places of one mark: discovery says so, or (without its word) they are of one size."""
    if a.mark is not None and b.mark is not None:
        return a.mark == b.mark
    wa, ha = a.box[2] - a.box[0], a.box[3] - a.box[1]
    wb, hb = b.box[2] - b.box[0], b.box[3] - b.box[1]
    return abs(wa - wb) <= tolerance * max(wa, wb) and abs(ha - hb) <= tolerance * max(ha, hb)


def sightings(observations: dict[int, np.ndarray] | None, boxes: np.ndarray) -> dict[int, int]:
    """Frame -> the place the detector's strongest box was at (only frames where it was at one)."""
    return {f: k for f, k, _ in _sighted(observations, boxes)}


def _sighted(observations: dict[int, np.ndarray] | None, boxes: np.ndarray):
    """(frame, place, the detector's strongest box there) for each frame where that box is at a place."""
    if not observations or not len(boxes):
        return
    for f, dets in observations.items():
        dets = np.asarray(dets, np.float64)
        if dets.ndim != 2 or not len(dets):
            continue
        top = dets[int(np.argmax(dets[:, 4]))] if dets.shape[1] > 4 else dets[0]
        k = _at(top[:4], boxes)
        if k >= 0:
            yield f, k, top[:4]


def _at(box: np.ndarray, boxes: np.ndarray) -> int:
    """The place a detector box is at: IoU >= ``SIGHT_IOU``, or mostly inside a place's (larger) box."""
    ious = bx.iou_matrix(box[None], boxes)[0]
    x0, y0 = np.maximum(box[0], boxes[:, 0]), np.maximum(box[1], boxes[:, 1])
    x1, y1 = np.minimum(box[2], boxes[:, 2]), np.minimum(box[3], boxes[:, 3])
    inside = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None) / max((box[2] - box[0]) * (box[3] - box[1]), 1e-9)
    score = np.where(inside >= 0.7, np.maximum(ious, SIGHT_IOU), ious)
    k = int(np.argmax(score))
    return k if score[k] >= SIGHT_IOU else -1


def to_end(end: int, n: int) -> bool:
    """Whether a visit ending (exclusive) at ``end`` runs to the end of an ``n``-frame video: no
    departure from it was seen, so where the mark went after it (if anywhere) is unknown."""
    return end >= n


def handover_frame(a_end: int, b_start: int, a: int, b: int, seen: dict[int, int],
                   sighted_only: bool = False) -> int | None:
    """The frame B takes over from A (module doc), or None to leave both as they are
    (``sighted_only``: unless the detector saw the mark at A and then at B)."""
    lo, hi = min(a_end, b_start) - NEAR, max(a_end, b_start) + NEAR
    frames = sorted(f for f in seen if lo <= f <= hi)
    first_b = next((f for f in frames if seen[f] == b and any(seen[g] == a for g in frames if g < f)), None)
    if first_b is not None:
        return first_b
    if not sighted_only and 0 < b_start - a_end <= MAX_GAP:
        return b_start
    return None


def settle(present: np.ndarray, places: list[Place], observations: dict[int, np.ndarray] | None) -> int:
    """Split every handover between two places of one mark at one frame (in place); returns the
    number of frame-place flags changed."""
    boxes = np.asarray([p.box for p in places], np.float64).reshape(-1, 4)
    seen = sightings(observations, boxes)
    n = present.shape[1]
    changed = drop_contradicted(present, places, seen)
    for a, pa in enumerate(places):
        for b, pb in enumerate(places):
            if a == b or bx.iou_matrix(boxes[a][None], boxes[b][None])[0, 0] > 0.1:
                continue
            same = one_mark(pa, pb)
            for a_start, a_end in bx._runs(present[a]):
                # B's visit that starts during A's (or just after it) and goes on past its end; one
                # starting just after another ended is a jump even where discovery's mark ids differ
                # (it tells a box clipped at the frame's edge from the others by size).
                # Both running to the video's end: a jump in its last frames, which discovery's
                # steps do not see; taken only where the detector saw A, then B, and A no more.
                nxt = [(s, e) for s, e in bx._runs(present[b])
                       if a_start < s <= a_end + MAX_GAP and (e > a_end or to_end(e, n) and to_end(a_end, n))]
                at_end = bool(nxt) and to_end(nxt[0][1], n) and to_end(a_end, n)
                if not nxt or (at_end and not same):
                    continue
                # Two overlays seen at once by discovery are one mark moving only when the detector
                # saw it leave one place for the other.
                h = handover_frame(a_end, nxt[0][0], a, b, seen,
                                   sighted_only=at_end or (not same and nxt[0][0] <= a_end))
                if h is None or (at_end and any(f >= h and k == a for f, k in seen.items())):
                    continue
                h = min(max(h, a_start + 1), nxt[0][1] - 1)  # each keeps a frame of its visit
                nxt = [s for s, _ in nxt]
                present[a, min(a_end, h) : max(a_end, h)] = h > a_end
                present[b, min(nxt[0], h) : max(nxt[0], h)] = h < nxt[0]
                changed += abs(h - a_end) + abs(h - nxt[0])
    return changed


def jumped_to(present: np.ndarray, places: list[Place], confirmed: list[bool],
              observations: dict[int, np.ndarray] | None = None) -> list[int]:
    """Unconfirmed places with a visit that starts within a frame of where a confirmed place of one
    mark's ends, or ends where one starts (not at the video's ends): the confirmed mark jumped there
    or came from there, which confirms the place (a video's first or last visit, too short for
    discovery's track or the matte's crops). Sizes are compared as the detector saw both places
    where it did (``observations``): a discovery extent that took texture along is no measure of
    the mark (pillarbox 9101: 85×45 against the detector's 63×21 at the first frame's place)."""
    n = present.shape[1]
    places = _as_detected(places, observations)
    runs = [bx._runs(r) for r in present]
    edges = [(a, e, s) for a, ok in enumerate(confirmed) if ok for s, e in runs[a]]
    out = []
    for b, ok in enumerate(confirmed):
        if ok:
            continue
        for s, e in runs[b]:
            if any(one_mark(places[a], places[b], JUMP_SIZE) and (_follows(ea, s, n) or _follows(e, sa, n))
                   for a, ea, sa in edges):
                out.append(b)
                break
    return out


def _as_detected(places: list[Place], observations: dict[int, np.ndarray] | None) -> list[Place]:
    """The places with the median size of the detector's strongest boxes sighted at each (at the
    place's centre); a place the detector never saw keeps its own box."""
    boxes = np.asarray([p.box for p in places], np.float64).reshape(-1, 4)
    sizes: dict[int, list[np.ndarray]] = {}
    for _, k, top in _sighted(observations, boxes):
        sizes.setdefault(k, []).append(top[2:4] - top[:2])
    out = []
    for k, p in enumerate(places):
        if k not in sizes:
            out.append(p)
            continue
        half = np.median(np.asarray(sizes[k]), axis=0) / 2
        centre = (p.box[:2] + p.box[2:4]) / 2
        out.append(Place(np.concatenate([centre - half, centre + half]), p.mark))
    return out


def _follows(end: int, start: int, n: int) -> bool:
    """A visit starting at ``start`` follows, within a frame, one ending at ``end`` inside the video
    (neither at its first frame nor running to its end)."""
    return 0 < start and not to_end(end, n) and abs(start - end) <= 1


def drop_contradicted(present: np.ndarray, places: list[Place], seen: dict[int, int]) -> int:
    """Drop a place's run during which the detector saw the mark at least twice, always at other
    places of one mark whose visits cover those frames, never at this one (one mark is at one
    place at a time); returns the frames dropped."""
    dropped = 0
    for b, pb in enumerate(places):
        for s, e in bx._runs(present[b]):
            sights = [(f, seen[f]) for f in range(s, e) if f in seen]
            if len(sights) >= 2 and all(k != b and present[k, f] and one_mark(places[k], pb) for f, k in sights):
                present[b, s:e] = False
                dropped += e - s
    return dropped

"""Fuse discovery with the detector into the one timeline pass 2 removes.

Which one leads depends on where the detector's weights come from (the model repository says,
``export.repository``'s ``weights`` parameter): real weights find the mark and discovery adds
what they miss (another generator's mark) and fills frames they missed; the offline demo
detector (trained here on a drawing of the mark) finds false positions on real footage, so there
discovery leads: a detector position discovery does not confirm stays in the timeline as
*unconfirmed*, and planning alters its pixels only when the matte fits an overlay there
(``plan.leave_unmarked``); on a clip discovery misses (a mark over a saturated colour) the demo
detector still finds it, and on a false position the matte's alpha ~ 0 leaves it untouched.
At a place both found, the detector adds the visits discovery missed there. Each jump of one mark
is then split at one frame (``handover.settle``: the cloud-only exit frames, overlaps).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

import numpy as np

from orchestrator.pipeline import boxes as bx
from orchestrator.pipeline.discover.handover import Place, jumped_to, settle
from orchestrator.pipeline.discover.result import Discovery

LOGGER = logging.getLogger(__name__)

TRUSTED_WEIGHTS = ("real", "")  # "" = the repository does not say (a hand-made one): trust it


@dataclass(frozen=True)
class FusedPosition:
    """Where one timeline position came from and whether it is a confirmed mark."""

    source: str  # "detector" | "discovery" | "both" | "jump" (a detector place the confirmed mark jumped to/from)
    confirmed: bool
    visits: tuple[tuple[int, int], ...]
    alpha: float | None = None
    mark: int | None = None


@dataclass(frozen=True)
class Fused:
    timeline: bx.Timeline
    positions: tuple[FusedPosition, ...]
    unconfirmed: tuple[tuple[float, float, float, float], ...]  # demo-detector positions discovery did not confirm
    leader: str  # "detector" | "discovery"


def _match(box: np.ndarray, others: np.ndarray) -> int:
    """Index of the position in ``others`` that overlaps ``box`` (IoU > 0.2, or one holds most of
    the other), else -1."""
    if not len(others):
        return -1
    ious = bx.iou_matrix(box[None], others)[0]
    x0 = np.maximum(box[0], others[:, 0])
    y0 = np.maximum(box[1], others[:, 1])
    x1 = np.minimum(box[2], others[:, 2])
    y1 = np.minimum(box[3], others[:, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area = np.minimum((box[2] - box[0]) * (box[3] - box[1]), (others[:, 2] - others[:, 0]) * (others[:, 3] - others[:, 1]))
    hold = inter / np.maximum(area, 1e-9)
    best = int(np.argmax(np.maximum(ious, hold * 0.5)))
    return best if ious[best] > 0.2 or hold[best] > 0.6 else -1


JOIN_SPAN = 1.5  # a joined box is at most this share larger than the area the two cover...
JOIN_GROWTH = 6.0  # ...and than discovery's (else the two disagree about the place)


def _joined_box(found, detected) -> np.ndarray:
    """Discovery's box widened to the detector's at one place: discovery's extent can hold the
    wordmark alone (a box clipped at the frame's edge) or a part of the mark (the cloud alone, a
    little taller than the detector's box of cloud and text: held-out pillarbox 8003's first
    visit), and the cloud is what stays last."""
    f, d = np.asarray(found, np.float64), np.asarray(detected, np.float64)[:4]
    u = np.array([min(f[0], d[0]), min(f[1], d[1]), max(f[2], d[2]), max(f[3], d[3])])
    i = np.array([max(f[0], d[0]), max(f[1], d[1]), min(f[2], d[2]), min(f[3], d[3])])
    area = lambda b: max(b[2] - b[0], 0.0) * max(b[3] - b[1], 0.0)  # noqa: E731
    covered = area(f) + area(d) - area(i)
    return u if area(u) <= min(JOIN_SPAN * covered, JOIN_GROWTH * area(f)) else f


def _with_detected(found: np.ndarray, detected: np.ndarray) -> np.ndarray:
    """Discovery's presence at a place it confirmed, with the detector's there: its visits
    discovery missed (a video's first or last visit: an arrival or departure never seen), and the
    ends it places to the frame (bisection down to one frame; it still sees the mark while only
    the cloud is left, which discovery's steps end before)."""
    return found | detected


def _settle(positions: np.ndarray, present: np.ndarray, info: list[FusedPosition],
            observations: dict[int, np.ndarray] | None) -> list[FusedPosition]:
    """One frame per jump (``handover.settle``, in place on ``present``), and a detector place the
    confirmed mark jumped to confirmed by that jump; the positions' visits follow."""
    places = [Place(b, p.mark) for b, p in zip(positions, info)]
    changed = settle(present, places, observations)
    jumped = jumped_to(present, places, [p.confirmed for p in info], observations)
    if jumped:
        LOGGER.info("detector positions the confirmed mark jumped to: %s", [positions[k].round(1).tolist() for k in jumped])
    if not changed and not jumped:
        return info
    return [replace(p, visits=tuple(bx._runs(r)), confirmed=p.confirmed or k in jumped,
                    source="jump" if k in jumped else p.source)
            for k, (p, r) in enumerate(zip(info, present))]


MIN_MARK_COVERAGE = 0.5  # a watermark stays on the video: share of frames its places must cover


def _passing(found, present: np.ndarray, used: set[int], n: int) -> set[int]:
    """Discovery's places of a mark the detector never saw whose visits together cover less than
    ``MIN_MARK_COVERAGE`` of the video: an overlay that shows up for a moment and is gone for the
    rest (a face's features stepping, held-out clean_faces_text 8003: 26 of 90 frames) is not a
    watermark, and altering it would be harm. A mark seen by the detector at any place stays."""
    by_mark: dict[int, list[int]] = {}
    for j, pos in enumerate(found):
        by_mark.setdefault(pos.mark, []).append(j)
    out: set[int] = set()
    for places in by_mark.values():
        if used.intersection(places) or not n:
            continue
        if present[places].any(0).sum() < MIN_MARK_COVERAGE * n:
            out.update(places)
    return out


def fuse(detected: bx.Timeline | None, discovery: Discovery | None, *, weights: str,
         observations: dict[int, np.ndarray] | None = None) -> Fused:
    """One timeline from both (see module docstring); ``weights`` is the detector's provenance;
    ``observations`` (the detector's boxes on the frames it saw) place each jump
    (``handover.settle``)."""
    n = discovery.timeline.n_frames if discovery is not None else (detected.n_frames if detected else 0)
    det_boxes = detected.positions if detected is not None else np.zeros((0, 4))
    det_present = detected.present if detected is not None else np.zeros((0, n), bool)
    found = discovery.positions if discovery is not None else ()
    disc = discovery.timeline if discovery is not None else bx.Timeline(np.zeros((0, 4)), np.zeros((0, n), bool))
    lead_detector = weights in TRUSTED_WEIGHTS or discovery is None
    boxes: list[np.ndarray] = []
    rows: list[np.ndarray] = []
    info: list[FusedPosition] = []
    used = set()
    for k, box in enumerate(det_boxes):
        j = _match(np.asarray(box, np.float64), disc.positions)
        row = det_present[k, :n] if det_present.shape[1] >= n else np.pad(det_present[k], (0, n - det_present.shape[1]))
        if j >= 0 and j in used and not lead_detector:
            continue  # a second detector box at a place discovery leads: its box was joined already
        if j >= 0:
            used.add(j)
            merged = row | disc.present[j] if lead_detector else _with_detected(disc.present[j], row)
            boxes.append(np.asarray(box, np.float64) if lead_detector else _joined_box(disc.positions[j], box))
            rows.append(merged)
            info.append(FusedPosition("both", True, tuple(bx._runs(merged)), found[j].alpha, found[j].mark))
        elif lead_detector:
            boxes.append(np.asarray(box, np.float64))
            rows.append(row)
            info.append(FusedPosition("detector", True, tuple(bx._runs(row))))
        else:
            boxes.append(np.asarray(box, np.float64))
            rows.append(row)
            info.append(FusedPosition("detector", False, tuple(bx._runs(row))))
    passing = _passing(found, disc.present, used, n)
    if passing:
        LOGGER.info("discovered places of a mark on under %.0f%% of the frames, not a watermark: %s",
                    100 * MIN_MARK_COVERAGE, [found[j].summary() for j in sorted(passing)])
    for j, pos in enumerate(found):
        if j in used or j in passing:
            continue
        boxes.append(np.asarray(disc.positions[j], np.float64))
        rows.append(disc.present[j])
        info.append(FusedPosition("discovery", True, pos.visits, pos.alpha, pos.mark))
    positions = np.asarray(boxes, np.float64).reshape(-1, 4)
    present = np.asarray(rows, bool).reshape(-1, n).copy()
    info = _settle(positions, present, info, observations)
    unconfirmed = [tuple(round(float(v), 1) for v in b) for b, p in zip(positions, info) if not p.confirmed]
    timeline = bx.Timeline(positions, present, [int(r.sum()) for r in present])
    if unconfirmed:
        LOGGER.info("detector positions not confirmed by discovery (demo weights), kept for the matte to judge: %s",
                    unconfirmed)
    return Fused(timeline, tuple(info), tuple(unconfirmed), "detector" if lead_detector else "discovery")


def found_details(fused: Fused) -> list[dict]:
    """Per timeline position, how pass 1 found it (the details' ``marks`` entries carry it)."""
    out = []
    for row, info in zip(fused.timeline.present, fused.positions):
        out.append({"source": info.source, "visits": [list(v) for v in info.visits], "frames": int(row.sum()),
                    "mark": info.mark, "confirmed": info.confirmed, "alpha": None if info.alpha is None else round(info.alpha, 2)})
    return out


def detector_weights(client) -> str:
    """The detector's provenance as the model repository records it ("" when it does not).

    A failed call raises (``TritonUnavailableError``: the task is retried): read as "" it would
    trust the demo detector, so the answer would depend on whether Triton answered in time."""
    read = getattr(client, "model_parameters", None)
    if read is None:  # a client without the call (a stand-in): unknown provenance
        return ""
    return read("detector").get("weights", "")

"""Planning: which marks get the matte, from the crops pass 1 sampled (``matte.CropSampler``).

The detected positions are one mark jumping around, and so are a user's regions around its
visits: every sampled window of about one size is pooled into one estimate
(``matte.estimate_groups``, which lets a window that disagrees - another logo - keep its own).
One region's visit alone gave a flat sky's matte 2-3 independent frames and left a ghost.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from orchestrator.pipeline import boxes as bx
from orchestrator.pipeline import matte
from orchestrator.pipeline.discover.handover import Place, jumped_to
from orchestrator.pipeline.marks import Mark, MarkKey, MarkPlan, MarkReport

# A matte whose strongest alpha stays below this found no overlay: its pixels are left alone.
NO_OVERLAY_ALPHA = 0.15


@dataclass(frozen=True, eq=False)
class PositionMatte:
    """A sampled position's share of an estimate (``part``), or why it has none (``error``)."""

    part: matte.GroupMatte | None
    origins: list[tuple[int, int]]
    error: str | None = None


def plan_mattes(marks: list[Mark], sampler: matte.CropSampler, width: int,
                height: int) -> tuple[dict[MarkKey, MarkPlan], dict[MarkKey, MarkReport]]:
    """The matte plan of every mark that can use one, and a report for every mark."""
    positions, reports = _sampled_positions(marks, sampler)
    mattes: dict[int, PositionMatte] = {}
    for members in _pools(list(dict.fromkeys(positions.values())), sampler):
        mattes.update(_estimate(sampler, members))
    plans: dict[MarkKey, MarkPlan] = {}
    for mark in marks:
        if mark.key not in positions:
            continue
        plan, reports[mark.key] = _plan_mark(mark, mattes[positions[mark.key]], width, height)
        if plan is not None:
            plans[mark.key] = plan
    return plans, reports


# Windows whose width and height agree within this share hold the same mark (they pool).
POOL_SIZE_TOLERANCE = 0.15
# Registration search of a pool, as a share of the window's smaller side.
POOL_MAX_SHIFT = 0.45


def _pools(members: list[int], sampler: matte.CropSampler) -> list[list[int]]:
    """Sampled positions grouped by window size, largest first (pooling trims to the smallest)."""
    def size(p: int) -> tuple[int, int]:
        win = sampler.windows[p]
        return int(win[2] - win[0]), int(win[3] - win[1])

    pools: list[list[int]] = []
    for p in sorted(members, key=lambda p: -size(p)[0] * size(p)[1]):
        w, h = size(p)
        for pool in pools:
            w0, h0 = size(pool[0])
            if abs(w - w0) <= POOL_SIZE_TOLERANCE * w0 and abs(h - h0) <= POOL_SIZE_TOLERANCE * h0:
                pool.append(p)
                break
        else:
            pools.append([p])
    return pools


def _sampled_positions(marks: list[Mark], sampler: matte.CropSampler) -> tuple[dict[MarkKey, int],
                                                                                dict[MarkKey, MarkReport]]:
    """Each mark's sampled position (the window it overlaps most), or a report saying why none."""
    positions: dict[MarkKey, int] = {}
    reports: dict[MarkKey, MarkReport] = {}
    for mark in marks:
        if not sampler.windows:
            reports[mark.key] = MarkReport(reason="no crops")
            continue
        windows = np.stack(sampler.windows).astype(np.float64)
        box = np.asarray(mark.box, np.float64)
        ious = bx.iou_matrix(box[None], windows)[0]
        position = _best_window(box, windows, ious, np.array([len(c) for c in sampler.crops]))
        if ious[position] <= 0.2 or len(sampler.crops[position]) < 2:
            reports[mark.key] = MarkReport(reason="too few crops")
            continue
        positions[mark.key] = position
    return positions, reports


def _best_window(box: np.ndarray, windows: np.ndarray, ious: np.ndarray, crops: np.ndarray) -> int:
    """The sampled position for a mark's ``box``: of the windows that hold the box's central half
    (a box shrunk by a quarter on every side), the one with the most crops; else the best IoU.
    Why: one place has several windows (a part of the mark first, the whole, discovery's loose
    extent, the detector's tight box). By IoU alone a window cut for a part won (saturated 9101
    end to end: the text's window, the cloud left); a loose box's own window has few crops and
    a poor matte (pillarbox 9101), and the tight window holds the mark's centre with most crops."""
    w, h = box[2] - box[0], box[3] - box[1]
    core = box + np.array([w, h, -w, -h]) / 4
    holds = (windows[:, 0] <= core[0]) & (windows[:, 1] <= core[1]) & (windows[:, 2] >= core[2]) & (
        windows[:, 3] >= core[3]) & (crops >= 2) & (ious > 0.2)
    return int(np.argmax(np.where(holds, crops, -1))) if holds.any() else int(np.argmax(ious))


def _estimate(sampler: matte.CropSampler, members: list[int]) -> dict[int, PositionMatte]:
    """One pooled estimate for the sampled positions ``members``."""
    inputs = {p: sampler.position_crops(p) for p in members}
    try:
        # A window clamped at the frame's edge holds its mark off-centre by up to the margin
        # (13 px in a 50-px-high window at 640x360): more than the default search (a quarter side).
        parts = matte.estimate_groups([inputs[p].crops for p in members],
                                      references=[inputs[p].references for p in members],
                                      max_shift=POOL_MAX_SHIFT * min(inputs[members[0]].crops.shape[1:3]))
    except ValueError as exc:
        return {p: PositionMatte(None, inputs[p].origins, str(exc)) for p in members}
    return {p: PositionMatte(part, inputs[p].origins) for p, part in zip(members, parts)}


def _plan_mark(mark: Mark, sampled: PositionMatte, width: int, height: int) -> tuple[MarkPlan | None, MarkReport]:
    if sampled.part is None:
        return None, MarkReport(reason=sampled.error or "too few crops")
    estimate = sampled.part.estimate
    summary = {**estimate.summary(), "scope": sampled.part.scope}
    if not estimate.reliable:
        return None, MarkReport(reason=estimate.reason, matte=summary)
    ch, cw = estimate.alpha.shape
    origin = _sampled_window(sampled, cw, ch, width, height) or bx.centre_window(mark.box, cw, ch, width, height)
    if origin is None:
        return None, MarkReport(reason="mark window larger than the frame", matte=summary)
    x0, y0 = origin
    plan = MarkPlan(estimate, (x0, y0, cw, ch), _mark_offset(sampled, x0, y0))
    return plan, MarkReport(method="matte", matte=summary)


def _sampled_window(sampled: PositionMatte, cw: int, ch: int, width: int, height: int) -> tuple[int, int] | None:
    """(x0, y0) of the window where the position's crops were cut (the median of their origins,
    pooled trim included), inside the frame; None without crops or when it does not fit. Why not
    centred on the mark's box: a loose box (discovery's extent with texture taken along, 124x79
    for a 90x33 mark on username 9103) put the window's centre 22 px below the mark, and the top
    of the cloud and of "Sora" fell outside the window that was removed."""
    if not sampled.origins or cw > width or ch > height:
        return None
    y0, x0 = np.median(np.asarray(sampled.origins, np.float32), 0) + np.asarray(sampled.part.trim, np.float32)
    return min(max(int(round(x0)), 0), width - cw), min(max(int(round(y0)), 0), height - ch)


def _mark_offset(sampled: PositionMatte, x0: int, y0: int) -> np.ndarray:
    """Where the mark sits in the window at (x0, y0), relative to the matte.

    Pooled crop k of the position is crops[k][top:, left:] (origin o_k + trim), and the mark sits
    at p + offsets[start + k] in it; in the window it sits at p + offsets[start + k] + o_k + trim -
    (y0, x0): the same for every k when the mark holds still (the median is taken).
    """
    part = sampled.part
    origins = np.asarray(sampled.origins, np.float32) + np.asarray(part.trim, np.float32)  # (y, x)
    offs = np.asarray(part.estimate.offsets, np.float32)[part.start : part.start + len(origins)]
    if len(offs) != len(origins):
        return np.zeros(2, np.float32)
    return np.median(offs + origins - np.array([y0, x0], np.float32), 0)


UNCONFIRMED_MIN_ALPHA = 0.3  # an unconfirmed detector guess needs a clear overlay...
UNCONFIRMED_MIN_WHITE = 200.0  # ...of the Sora mark's white body (a fit over clean texture took its colours)


def _white_overlay(summary: dict | None) -> bool:
    """The matte shows what the demo detector was trained to find: a clearly opaque white overlay."""
    if not summary:
        return False
    color = summary.get("color")
    white = color is None or min(color) >= UNCONFIRMED_MIN_WHITE
    return white and summary.get("alpha_max", 0.0) >= UNCONFIRMED_MIN_ALPHA


def _jump_partners(marks: list[Mark], plans: dict[MarkKey, MarkPlan], reports: dict[MarkKey, MarkReport],
                   timeline: bx.Timeline | None) -> set[int]:
    """Unconfirmed detector positions the mark jumps to or from, at a position that is kept (its
    matte fits a white overlay): the jump confirms them (a visit too short for the matte's crops)."""
    positions = [m for m in marks if m.key.kind == "position"]
    if timeline is None or not positions:
        return set()
    kept = [(m.found or {}).get("confirmed", True) or (m.key in plans and _white_overlay(reports.get(m.key, MarkReport()).matte))
            for m in positions]
    places = [Place(np.asarray(m.box, np.float64), None) for m in positions]
    rows = timeline.present[[m.key.index for m in positions]]
    return {positions[k].key.index for k in jumped_to(rows, places, kept)}


def leave_unmarked(marks: list[Mark], plans: dict[MarkKey, MarkPlan], reports: dict[MarkKey, MarkReport],
                   timeline: bx.Timeline | None) -> None:
    """Do no harm: a detected position whose matte estimate shows no overlay (alpha ~ 0) is left
    untouched, instead of falling back to inpainting a box of clean picture. A position discovery
    confirmed (its steps fit a semi-transparent overlay), or one the confirmed mark jumped to or
    from on the frame (``discover.handover.jumped_to``), is evidence of its own: it keeps the
    inpainting fallback when its matte fails. A demo-detector position discovery did not confirm
    has only the matte as evidence: without a usable plan of a white overlay it is left untouched."""
    partners = _jump_partners(marks, plans, reports, timeline)
    for mark in marks:
        if mark.key.kind != "position":
            continue
        found = mark.found or {}
        report = reports.get(mark.key, MarkReport())
        alpha_max = (report.matte or {}).get("alpha_max", 1.0)
        jumped = found.get("source") == "jump" or mark.key.index in partners
        if jumped and report.matte and alpha_max < NO_OVERLAY_ALPHA:
            plans.pop(mark.key, None)  # the jump says the mark is there: a matte of nothing failed
            report = MarkReport(method="inpaint", matte=report.matte,
                                reason=f"the matte found no overlay (alpha_max {alpha_max})")
        if jumped and not found.get("confirmed", True):
            report = replace(report, confirmed_by="jump")
        reports[mark.key] = report
        if jumped or found.get("source") in ("discovery", "both"):
            continue
        if not found.get("confirmed", True) and not (mark.key in plans and _white_overlay(report.matte)):
            reason = f"an unconfirmed detection and no white overlay fitted there ({report.reason or 'no matte'})"
        elif report.matte and alpha_max < NO_OVERLAY_ALPHA:
            reason = f"no overlay there (matte alpha_max {alpha_max} < {NO_OVERLAY_ALPHA})"
        else:
            continue
        plans.pop(mark.key, None)
        if timeline is not None:
            timeline.present[mark.key.index] = False
        reports[mark.key] = MarkReport(method="untouched", matte=report.matte, reason=reason)

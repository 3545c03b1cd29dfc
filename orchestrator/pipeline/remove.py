"""Removal on one frame (pass 2): matte inversion where a mark's plan fits the frame, inpainter
crops for the rest (whole boxes, and the holes the inversion leaves), and the area that changes.

``read(x0, y0, x1, y1)`` returns the RGB pixels of an even-aligned area of the frame (a
``YuvCanvas`` reads only that area; other pixel formats use a full RGB copy).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import av
import cv2
import numpy as np

from orchestrator.pipeline import matte
from orchestrator.pipeline.boxes import Timeline
from orchestrator.pipeline.inpaint import Crop, YuvCanvas, even_box, plan_crops
from orchestrator.pipeline.marks import MarkKey, MarkPlan
from orchestrator.pipeline.matte.image import dilate_mask
from orchestrator.pipeline.matte.linefill import choose_line_fill
from orchestrator.pipeline.propagate import Propagator
from orchestrator.pipeline.propagate_fit import support_of

Read = Callable[[int, int, int, int], np.ndarray]


@dataclass(frozen=True, eq=False)
class Restored:
    """A mark's window (x0, y0) after matte inversion, and the hole left for the inpainter."""

    x0: int
    y0: int
    rgb: np.ndarray  # uint8 [h, w, 3]
    hole: np.ndarray  # bool [h, w]
    inverted: bool = True  # False: filled without the matte (a frame the gate rejected)


@dataclass(frozen=True, eq=False)
class EditArea:
    """What changes in one frame: the even-aligned area ``roi`` (x0, y0, x1, y1), its RGB pixels
    with the matte already applied, and the inpainter crops (pixels of ``rgb`` at ``roi[:2]``)."""

    roi: tuple[int, int, int, int]
    rgb: np.ndarray
    crops: list[Crop]
    matte_marks: int  # marks removed by the matte in this frame


@dataclass(frozen=True, eq=False)
class FrameEdit:
    """One frame of pass 2 on its way to the encoder: untouched (``canvas`` None) or edited."""

    pts: int
    source: object  # the decoded av.VideoFrame
    canvas: YuvCanvas | np.ndarray | None = None
    area: EditArea | None = None

    def result(self):
        """The frame to encode, once the inpainter's results are pasted into ``area.rgb``."""
        if self.canvas is None:
            return self.source
        if isinstance(self.canvas, YuvCanvas):
            if self.area is not None:
                self.canvas.write(self.area.roi[0], self.area.roi[1], self.area.rgb)
            return self.canvas.to_frame()
        return self.canvas  # the RGB copy, edited in place through views


def canvas_of(frame: av.VideoFrame) -> tuple[YuvCanvas | np.ndarray, Read]:
    """An editable view of the frame and its ``read``: the YUV planes, or a full RGB copy for
    other pixel formats."""
    if YuvCanvas.supports(frame):
        canvas = YuvCanvas(frame)
        return canvas, canvas.read
    rgb = frame.to_ndarray(format="rgb24")
    return rgb, lambda x0, y0, x1, y1: rgb[y0:y1, x0:x1]


def frame_keys(timeline: Timeline | None, index: int, t: float, regions: Sequence) -> list[MarkKey]:
    """The mark key of each box ``boxes.frame_boxes`` returns (detected positions first, then regions)."""
    keys: list[MarkKey] = []
    if timeline is not None and index < timeline.n_frames:
        keys += [MarkKey.position(position) for position in timeline.ids_at(index)]
    keys += [MarkKey.region(k) for k, r in enumerate(regions) if r.active_at(t)]
    return keys


def invert_marks(read: Read, width: int, height: int, keys: list[MarkKey],
                 plans: dict[MarkKey, MarkPlan], tracker: matte.VisitTracker | None = None,
                 propagation: Propagation | None = None, boxes: np.ndarray | None = None) -> dict[int, Restored | None]:
    """Box index -> the matte's result, for the boxes whose plan fits this frame (the others, and
    frames with a fade or animation the matte does not explain, go to the inpainter); None where
    the tracker finds no mark in the frame (``VisitTracker.absent``: left untouched). With a
    ``tracker`` (one per pass 2) each visit is registered and every frame gated for ghosts; with
    ``propagation`` the result is fused with the neighbouring frames' looks (``propagate``), and a
    frame the gate rejects gets its box (``boxes[j]``) filled where the neighbours saw the background."""
    out: dict[int, Restored | None] = {}
    if tracker is not None:
        tracker.start_frame([k for k in keys if k in plans])
    for j, key in enumerate(keys):
        plan = plans.get(key)
        if plan is None:
            continue
        x0, y0, cw, ch = plan.window
        ex0, ey0, ex1, ey1 = even_box(x0, y0, x0 + cw, y0 + ch, width, height)
        crop = read(ex0, ey0, ex1, ey1)[y0 - ey0 : y0 - ey0 + ch, x0 - ex0 : x0 - ex0 + cw]
        if tracker is not None:
            if tracker.absent(key, crop, plan.estimate, plan.offset):
                out[j] = None
                continue
            try:
                result = tracker.remove(key, crop, plan.estimate, plan.offset)
            except ValueError:
                continue
            offset = tracker.offsets.get(key, plan.offset)
            if result is not None:
                out[j] = _propagated(Restored(x0, y0, *result), propagation, key, plan, offset, crop)
                continue
            rejected = _rechecked(tracker, propagation, key, plan, offset, crop)
            if rejected is not None:
                out[j] = rejected
            elif propagation is not None and boxes is not None and propagation.propagator.params.fill_rejected:
                filled = _filled(propagation, key, plan, offset, crop, boxes[j])
                if filled is not None:
                    out[j] = filled
            elif boxes is not None:
                filled = rejected_fill(plan, offset, crop, boxes[j])
                if filled is not None:
                    out[j] = filled
            continue
        try:
            opacity, residual = matte.fit_opacity(crop, plan.estimate, offset=plan.offset)
        except ValueError:
            continue
        if residual > plan.estimate.max_residual:
            continue
        restored, hole = matte.remove_with_matte(crop, plan.estimate, opacity, offset=plan.offset)
        out[j] = _propagated(Restored(x0, y0, restored, hole), propagation, key, plan, plan.offset, crop)
    return out


@dataclass(frozen=True, eq=False)
class Propagation:
    """Pass 2's temporal propagation for one frame: the propagator and the frame's index."""

    propagator: Propagator
    index: int


def _propagated(restored: Restored, propagation: Propagation | None, key: MarkKey, plan: MarkPlan, offset,
                crop: np.ndarray) -> Restored:
    if propagation is None:
        return restored
    fused = propagation.propagator.fuse(propagation.index, key, plan, offset, crop, restored.rgb, restored.hole)
    if fused is None:
        return restored
    return Restored(restored.x0, restored.y0, fused.rgb, fused.hole)


def _rechecked(tracker: matte.VisitTracker, propagation: Propagation | None, key: MarkKey, plan: MarkPlan,
               offset, crop: np.ndarray) -> Restored | None:
    """A frame the gate rejected, inverted and propagated, when the propagated result passes the
    gate (``VisitTracker.passes``: one frame's inversion on texture keeps a ghost its neighbours'
    looks average away); None: inpaint its box."""
    candidate = tracker.rejected(key)
    if propagation is None or candidate is None:
        return None
    x0, y0 = plan.window[:2]
    fused = propagation.propagator.fuse(propagation.index, key, plan, offset, crop, *candidate)
    if fused is not None and tracker.passes(key, crop, plan.estimate, fused.rgb, fused.hole):
        return Restored(x0, y0, fused.rgb, fused.hole)
    propagation.propagator.reject(propagation.index, key)
    return None


def _filled(propagation: Propagation, key: MarkKey, plan: MarkPlan, offset, crop: np.ndarray,
            box) -> Restored | None:
    """A rejected frame's box from the neighbours' looks (``Propagator.fill``); the rest of the box
    and the mark stays a hole for the inpainter. None (inpaint the whole box) when the box reaches
    outside the matte window or no look fills any of it."""
    region = _box_in_window(plan, box)
    if region is None:
        return None
    x0, y0 = plan.window[:2]
    region |= dilate_mask(support_of(plan, offset), 2)
    fused = propagation.propagator.fill(propagation.index, key, plan, offset, crop, region)
    return None if fused is None else Restored(x0, y0, fused.rgb, fused.hole)


def _box_in_window(plan: MarkPlan, box) -> np.ndarray | None:
    """The box as a mask of the plan's matte window, or None when it reaches outside the window."""
    x0, y0, cw, ch = plan.window
    bx0, by0, bx1, by1 = (int(round(float(v))) for v in box[:4])
    if bx0 < x0 or by0 < y0 or bx1 > x0 + cw or by1 > y0 + ch:
        return None
    region = np.zeros((ch, cw), bool)
    region[by0 - y0 : by1 - y0, bx0 - x0 : bx1 - x0] = True
    return region


# A rejected frame's hole: the matte's pixels above REJECTED_ALPHA grown by REJECTED_DILATE px
# (the estimate's support is already grown by 2 px and covers ~90 % of a box), when
# ``support_hole``; the growth covers a registration error the gate may have rejected. Off by
# default: it cost 1080p walls more than it gained elsewhere (bench/README.md, "Flat backgrounds").
REJECTED_ALPHA = 0.05
REJECTED_DILATE = 2
REJECTED_SUPPORT_HOLE = False


def rejected_fill(plan: MarkPlan, offset, crop: np.ndarray, box, *,
                  support_hole: bool = REJECTED_SUPPORT_HOLE) -> Restored | None:
    """A frame the matte gate rejects: its box filled along rows and columns where that is
    clearly closer than a smooth fill (``linefill.choose_line_fill``: a stripe under the mark),
    else (``support_hole``) the mark's pixels grown by ``REJECTED_DILATE`` px as the inpainter's
    hole (the pixels between the letters are background: a box hole throws them away). None
    (inpaint the box) otherwise, and when the box reaches outside the matte window."""
    region = _box_in_window(plan, box)
    if region is None:
        return None
    x0, y0, cw, ch = plan.window
    lines = choose_line_fill(crop, region)
    if lines is not None:
        return Restored(x0, y0, np.clip(np.rint(lines), 0, 255).astype(np.uint8), np.zeros((ch, cw), bool), False)
    if not support_hole:
        return None
    mark = matte.shift_map(plan.estimate.alpha, offset) > REJECTED_ALPHA
    hole = _enclosed(dilate_mask(mark, REJECTED_DILATE) & support_of(plan, offset))
    return Restored(x0, y0, np.array(crop), hole, False)


def _enclosed(hole: np.ndarray) -> np.ndarray:
    """``hole`` with every island of known pixels it encloses added (the pupils: dark, inside the
    body, their white coverage ~0; left known they bled into the fill as a dark blob, 1080p 1)."""
    n, labels = cv2.connectedComponents((~hole).astype(np.uint8), connectivity=4)
    edge = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    return hole | ~np.isin(labels, edge[edge > 0]) & ~hole if n > 1 else hole


def hole_crops(restored: Restored, width: int, height: int, sizes: list[int], context: float,
               picture: tuple[int, int, int, int] | None = None) -> list[Crop]:
    """Inpainter crops for the hole the inversion left, the hole mapped into each crop."""
    hole = restored.hole
    if not hole.any():
        return []
    x0, y0 = restored.x0, restored.y0
    ch, cw = hole.shape
    ys, xs = np.nonzero(hole)
    hb = np.array([[x0 + xs.min(), y0 + ys.min(), x0 + xs.max() + 1, y0 + ys.max() + 1]])
    crops = plan_crops(hb, width, height, sizes, context=context, picture=picture)
    for crop in crops:
        rx0, ry0, rx1, ry1 = crop.region(width, height)
        full = np.zeros((ry1 - ry0, rx1 - rx0), bool)  # the hole in the crop's coordinates
        ya, xa = max(y0, ry0), max(x0, rx0)
        yb, xb = min(y0 + ch, ry1), min(x0 + cw, rx1)
        full[ya - ry0 : yb - ry0, xa - rx0 : xb - rx0] = hole[ya - y0 : yb - y0, xa - x0 : xb - x0]
        crop.hole = full
    return crops


def plan_frame(read: Read, width: int, height: int, boxes: np.ndarray, keys: list[MarkKey],
               plans: dict[MarkKey, MarkPlan], sizes: list[int], context: float, *,
               picture: tuple[int, int, int, int] | None = None,
               tracker: matte.VisitTracker | None = None,
               propagation: Propagation | None = None) -> EditArea | None:
    """Plan the removal of one frame's boxes (``boxes.frame_boxes``; ``keys`` their marks);
    None when nothing changes. ``picture``: the area inside black bars, which crops never take
    colour from (``inpaint.Crop.picture``); ``propagation``: fuse with the neighbouring frames."""
    inverted: dict[int, Restored | None] = {}
    if plans and len(keys) == len(boxes):  # (else a box was clipped away: no matte this frame)
        inverted = invert_marks(read, width, height, keys, plans, tracker, propagation, boxes)
    restored = {j: r for j, r in inverted.items() if r is not None}  # (None: no mark there, untouched)
    crops: list[Crop] = []
    left = [box for j, box in enumerate(boxes) if j not in inverted]
    if left:
        crops.extend(plan_crops(np.asarray(left), width, height, sizes, context=context, picture=picture))
    for r in restored.values():
        crops.extend(hole_crops(r, width, height, sizes, context, picture))
    areas = [c.region(width, height) for c in crops]
    areas += [(r.x0, r.y0, r.x0 + r.rgb.shape[1], r.y0 + r.rgb.shape[0]) for r in restored.values()]
    if not areas:
        return None
    a = np.asarray(areas)
    roi = even_box(int(a[:, 0].min()), int(a[:, 1].min()), int(a[:, 2].max()), int(a[:, 3].max()), width, height)
    rgb = read(*roi)
    for r in restored.values():
        rgb[r.y0 - roi[1] : r.y0 - roi[1] + r.rgb.shape[0], r.x0 - roi[0] : r.x0 - roi[0] + r.rgb.shape[1]] = r.rgb
    return EditArea(roi, rgb, crops, sum(r.inverted for r in restored.values()))

"""Sampling crops for the matte: what pass 1 reports (marked frames, clean frames next to them) is
kept as full-resolution crops of each mark position, with bounded memory.

``CropSampler`` is the listener ``detect.scan`` reports to (``detect.MarkListener``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from orchestrator.pipeline.boxes import centre_window, iou_matrix
from orchestrator.pipeline.matte.params import PARAMS, MatteParams


@dataclass(frozen=True)
class Reference:
    """A position's window without the mark (``clean``, frame ``frame``) and with it (``marked``,
    frame ``partner``, a few frames away), cut at ``origin`` (y0, x0) in both frames."""

    frame: int
    clean: np.ndarray
    partner: int
    marked: np.ndarray
    origin: tuple[int, int]


@dataclass(frozen=True)
class PositionCrops:
    """One position's crops for the matte (the sampled ones, then the marked halves of its clean
    references), their origins (y0, x0), and crop index -> clean reference."""

    crops: np.ndarray  # uint8 [N, h, w, 3]
    origins: list[tuple[int, int]]
    references: dict[int, np.ndarray]


@dataclass
class CropSampler:
    """Keeps up to ``per_position`` full-resolution crops of each mark position (for the matte).

    Crops of one position have one size (the first detection's box grown by ``margin``), centred
    on each detection; when full, every other crop is dropped and the stride doubles, so the kept
    crops spread over the whole video with bounded memory.
    """

    per_position: int = 48
    margin: float = PARAMS.crop_margin
    reference_partners: int = PARAMS.reference_partners  # marked frames wanted per clean one
    windows: list[np.ndarray] = field(default_factory=list)  # [4] int box per position
    crops: list[list[np.ndarray]] = field(default_factory=list)
    frames: list[list[int]] = field(default_factory=list)
    origins: list[list[tuple[int, int]]] = field(default_factory=list)  # (y0, x0) of each crop
    # Per position: windows where the mark is absent, right before it arrived or after it left,
    # each with the marked window next to it (the matte's clean references).
    references: list[list[Reference]] = field(default_factory=list)
    _seen: list[int] = field(default_factory=list)
    _every: list[int] = field(default_factory=list)

    def _match(self, det: np.ndarray) -> int:
        """The position whose window ``det`` overlaps (IoU > 0.3) and fits in, or -1. Why the fit:
        a place's first box is often a part of the mark (a jump event's icon before its text is
        seen, the detector's text alone), and a later whole-mark box matched that part's window
        by IoU: its crops were cut to the part and the rest of the mark stayed (saturated 9101
        end to end, 18 dB; bench/README.md, "Saturated end to end"). It gets a window of its own."""
        if not self.windows:
            return -1
        wins = np.stack(self.windows).astype(np.float64)
        m = iou_matrix(np.asarray(det[:4], np.float64)[None], wins)[0]
        fits = (wins[:, 2] - wins[:, 0] >= det[2] - det[0] + 4) & (wins[:, 3] - wins[:, 1] >= det[3] - det[1] + 4)
        m = np.where(fits, m, 0.0)
        return int(np.argmax(m)) if m.max() > 0.3 else -1

    def _new_position(self, det: np.ndarray) -> int:
        w, h = det[2] - det[0], det[3] - det[1]
        mx, my = w * self.margin + 4, h * self.margin + 4
        self.windows.append(np.array([det[0] - mx, det[1] - my, det[2] + mx, det[3] + my]).round().astype(int))
        for per_position in (self.crops, self.frames, self.origins, self.references):
            per_position.append([])
        self._seen.append(0)
        self._every.append(1)
        return len(self.windows) - 1

    def _origin(self, position: int, det: np.ndarray, width: int, height: int) -> tuple[int, int] | None:
        """(y0, x0) of the position's window centred on ``det``, or None if it does not fit.
        Near an edge the window shifts inside the frame; registration absorbs the shift."""
        win = self.windows[position]
        origin = centre_window(det, win[2] - win[0], win[3] - win[1], width, height)
        return None if origin is None else (origin[1], origin[0])

    def _cut(self, position: int, rgb: np.ndarray, origin: tuple[int, int]) -> np.ndarray:
        win = self.windows[position]
        y0, x0 = origin
        return rgb[y0 : y0 + win[3] - win[1], x0 : x0 + win[2] - win[0]].copy()

    def on_marked(self, frame_index: int, rgb: np.ndarray, boxes: np.ndarray) -> None:
        """A frame whose mark boxes are known: keep a crop of each box's position."""
        height, width = rgb.shape[:2]
        for det in np.asarray(boxes)[:, :4]:
            position = self._match(det)
            if position < 0:
                position = self._new_position(det)
            self._seen[position] += 1
            if (self._seen[position] - 1) % self._every[position]:
                continue
            origin = self._origin(position, det, width, height)
            if origin is None:
                continue
            self.crops[position].append(self._cut(position, rgb, origin))
            self.frames[position].append(frame_index)
            self.origins[position].append(origin)
            if len(self.crops[position]) >= self.per_position:
                self.crops[position] = self.crops[position][::2]
                self.frames[position] = self.frames[position][::2]
                self.origins[position] = self.origins[position][::2]
                self._every[position] *= 2

    def on_clean(self, frame_index: int, rgb: np.ndarray, box: np.ndarray, partner_index: int,
                 partner_rgb: np.ndarray) -> None:
        """A clean reference of a known position (the one ``box`` matches): its window in a frame
        where the mark is absent there, and the same window in the nearby frame where the mark is
        (``partner``), whose background the reference gives. When more than ``per_position`` are
        kept, every other one is dropped (they stay spread over the video)."""
        position = self._match(box)
        if position < 0:
            return
        origin = self._origin(position, box, rgb.shape[1], rgb.shape[0])
        if origin is None:
            return
        refs = self.references[position]
        if any(r.frame == frame_index and r.partner == partner_index for r in refs):
            return
        refs.append(Reference(frame_index, self._cut(position, rgb, origin), partner_index,
                              self._cut(position, partner_rgb, origin), origin))
        if len(refs) > self.per_position:
            self.references[position] = refs[::2]

    def position_crops(self, position: int, params: MatteParams = PARAMS) -> PositionCrops:
        """The position's crops for the matte; each marked half of a reference gets its own clean
        half, a sampled crop the nearest reference within ``params.reference_span`` frames."""
        refs = self.references[position] if position < len(self.references) else []
        crops = list(self.crops[position]) + [r.marked for r in refs]
        origins = list(self.origins[position]) + [r.origin for r in refs]
        out: dict[int, np.ndarray] = {}
        for k, frame in enumerate(self.frames[position]):
            near = [(abs(frame - r.frame), r.clean) for r in refs if abs(frame - r.frame) <= params.reference_span]
            if near:
                out[k] = min(near, key=lambda item: item[0])[1]
        first = len(self.crops[position])
        out.update({first + j: r.clean for j, r in enumerate(refs)})
        return PositionCrops(np.stack(crops), origins, out)

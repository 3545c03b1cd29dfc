"""Sampling crops for the matte: what pass 1 reports (marked frames, clean frames next to them) is
kept as full-resolution crops of each mark position, with bounded memory.

``CropSampler`` is the listener ``detect.scan`` reports to (``detect.MarkListener``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from orchestrator.pipeline.boxes import centre_window
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


# One mark's boxes at a place differ this much in area at most (the icon or the text alone
# against the whole mark: ~2x); a box beyond that is another thing than the place's mark.
MAX_PART_RATIO = 3.0


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
    boxes: list[np.ndarray] = field(default_factory=list)  # [4] the box each window was grown from
    crops: list[list[np.ndarray]] = field(default_factory=list)
    frames: list[list[int]] = field(default_factory=list)
    origins: list[list[tuple[int, int]]] = field(default_factory=list)  # (y0, x0) of each crop
    # Per position: windows where the mark is absent, right before it arrived or after it left,
    # each with the marked window next to it (the matte's clean references).
    references: list[list[Reference]] = field(default_factory=list)
    _seen: list[int] = field(default_factory=list)
    _every: list[int] = field(default_factory=list)

    def _match(self, det: np.ndarray) -> int:
        """The position whose box and ``det`` overlap by over half of the smaller one, or -1.
        Why not IoU: one mark's boxes differ in extent (the icon alone before its text, the text
        alone, the whole mark), and IoU between a part and the whole falls under any fixed bar:
        the part started a position of its own, its window cut to the part."""
        if not self.boxes:
            return -1
        b = np.stack(self.boxes).astype(np.float64)
        d = np.asarray(det[:4], np.float64)
        iw = np.clip(np.minimum(b[:, 2], d[2]) - np.maximum(b[:, 0], d[0]), 0, None)
        ih = np.clip(np.minimum(b[:, 3], d[3]) - np.maximum(b[:, 1], d[1]), 0, None)
        areas, area = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]), (d[2] - d[0]) * (d[3] - d[1])
        held = iw * ih / np.maximum(np.minimum(areas, area), 1e-9)
        # (a box far larger than the place's, a loose extent with texture taken along, is not
        # this place's mark: it gets its own window, as a new place does)
        held[np.maximum(areas, area) > MAX_PART_RATIO * np.minimum(areas, area)] = 0.0
        return int(np.argmax(held)) if held.max() > 0.5 else -1

    def _new_position(self, det: np.ndarray) -> int:
        w, h = det[2] - det[0], det[3] - det[1]
        mx, my = w * self.margin + 4, h * self.margin + 4
        self.windows.append(np.array([det[0] - mx, det[1] - my, det[2] + mx, det[3] + my]).round().astype(int))
        self.boxes.append(np.asarray(det[:4], np.float64))
        for per_position in (self.crops, self.frames, self.origins, self.references):
            per_position.append([])
        self._seen.append(0)
        self._every.append(1)
        return len(self.windows) - 1

    def _size(self, det: np.ndarray) -> tuple[float, float]:
        """The window (w, h) a box needs: the box grown by ``margin`` (+4 px) on every side."""
        w, h = det[2] - det[0], det[3] - det[1]
        return w * (1 + 2 * self.margin) + 8, h * (1 + 2 * self.margin) + 8

    def _covers(self, position: int, det: np.ndarray) -> bool:
        """Whether the position's window holds ``det`` with 2 px to spare (a box a little larger
        than the first, as boxes of one mark vary, does not drop the crops kept so far)."""
        win = self.windows[position]
        return win[2] - win[0] >= det[2] - det[0] + 4 and win[3] - win[1] >= det[3] - det[1] + 4

    def _grow(self, position: int, det: np.ndarray) -> None:
        """A larger box at a known position: its window grows to hold it, and the crops cut with
        the smaller one are dropped. Why: the first box of a place is often part of the mark (a
        jump event's icon before its text, the detector's text alone), and crops cut to it left
        the rest of the mark outside the matte (saturated 9101 end to end: the window held the
        cloud, "Sora" stayed; bench/README.md, "Saturated end to end")."""
        win = self.windows[position]
        w, h = self._size(det)
        w, h = max(w, win[2] - win[0]), max(h, win[3] - win[1])
        cx, cy = (det[0] + det[2]) / 2, (det[1] + det[3]) / 2
        self.windows[position] = np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]).round().astype(int)
        self.boxes[position] = np.asarray(det[:4], np.float64)
        for per_position in (self.crops, self.frames, self.origins, self.references):
            per_position[position] = []
        self._seen[position] = 0
        self._every[position] = 1

    def _origin(self, position: int, det: np.ndarray, width: int, height: int) -> tuple[int, int] | None:
        """(y0, x0) of the position's window centred on ``det``, or None if it does not fit.
        Near an edge the window shifts inside the frame; registration absorbs the shift. A box
        that is a part of the position's (the text alone) is centred as the whole mark is."""
        win, whole = self.windows[position], self.boxes[position]
        if _part_of(np.asarray(det[:4], np.float64), whole):
            det = whole
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
            elif not self._covers(position, det):
                self._grow(position, det)
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


def _part_of(det: np.ndarray, whole: np.ndarray) -> bool:
    """Whether ``det`` lies within ``whole`` (all but 10 % of it) and is clearly smaller."""
    iw = max(0.0, min(det[2], whole[2]) - max(det[0], whole[0]))
    ih = max(0.0, min(det[3], whole[3]) - max(det[1], whole[1]))
    area = (det[2] - det[0]) * (det[3] - det[1])
    return iw * ih >= 0.9 * area and area < 0.8 * (whole[2] - whole[0]) * (whole[3] - whole[1])

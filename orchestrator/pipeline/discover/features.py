"""Per-frame and per-chunk image statistics on small frames: gradients, static edges, blobs.

A static overlay keeps its edges at one place while the picture under and around it moves, so
over a chunk of frames its mean gradient stays as strong as its frames' gradients (coherence near
1), where moving texture averages out (coherence near 1/L). Where the whole picture is still,
coherence says nothing, but a static edge that was not there two chunks ago (a mark arriving) does.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

# The longer side of the small frames discovery works on (a 60x20 mark in a 397-px-wide pillarboxed
# picture of a 1280-wide frame stays ~24x8 px).
WORK_SIDE = 512
COHERENCE = 0.75  # mean gradient energy over frame gradient energy: static edge above this
EDGE = 10.0  # mean central-difference gradient (grey levels) of an edge worth looking at
MOVING = 12.0  # temporal variance of the gradient around a pixel: the picture moves there
CHANGED = 0.5  # a static edge differs from the one two chunks ago by this share: it arrived
GLOBAL_MOVING = 2.0  # ...or on average over the picture (a slow pan over a flat sky)
ARRIVED_SHARE = 0.1  # ... but only where few static edges changed (else the picture moved)
NEIGHBOURHOOD = 12  # half-size of the window in which the picture must move


def work_size(width: int, height: int, side: int = WORK_SIDE) -> tuple[int, int]:
    """Even (w, h) of the small frames, aspect kept, never upscaled."""
    scale = min(1.0, side / max(width, height))
    return max(2, int(round(width * scale / 2)) * 2), max(2, int(round(height * scale / 2)) * 2)


def small_rgb(frame, size: tuple[int, int]) -> np.ndarray:
    """A decoded frame scaled to ``size`` (w, h), RGB uint8. yuv420p planes are resized by
    OpenCV straight from the decoder's buffers (PyAV's reformat to a small RGB costs ~10x more)."""
    w, h = size
    if frame.format.name != "yuv420p" or frame.width % 2 or frame.height % 2 or w % 2 or h % 2:
        return frame.reformat(width=w, height=h, format="rgb24", interpolation="BILINEAR").to_ndarray()
    fw, fh = frame.width, frame.height
    planes = [np.frombuffer(p, np.uint8, count=p.line_size * rows).reshape(rows, p.line_size)[:, :cols]
              for p, rows, cols in zip(frame.planes, (fh, fh // 2, fh // 2), (fw, fw // 2, fw // 2))]
    y, u, v = (_shrink(p, size) for p, size in zip(planes, ((w, h), (w // 2, h // 2), (w // 2, h // 2))))
    i420 = np.concatenate([y.ravel(), u.ravel(), v.ravel()]).reshape(h * 3 // 2, w)
    return cv2.cvtColor(i420, cv2.COLOR_YUV2RGB_I420)


def _shrink(plane: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Halve by area while at least twice too large (OpenCV's fast integer path), then by area
    again: a bilinear last step (4-6x cheaper) moves marks' boxes and loses frames, even on the
    chroma planes alone (bench/README.md, "Cost, round 2")."""
    while plane.shape[1] >= 2 * size[0] and plane.shape[0] >= 2 * size[1]:
        plane = cv2.resize(plane, (plane.shape[1] // 2, plane.shape[0] // 2), interpolation=cv2.INTER_AREA)
    if (plane.shape[1], plane.shape[0]) == size:
        return np.ascontiguousarray(plane)
    if plane.shape[1] == size[0] * 5 // 4 and plane.shape[0] == size[1] * 5 // 4 and not (size[0] % 4 or size[1] % 4):
        return _area_5_4(plane)
    return cv2.resize(plane, size, interpolation=cv2.INTER_AREA)


# OpenCV's area weights for a 5 → 4 step, in fifths: output j of each group of 5 inputs is
# (a·x[j] + b·x[j+1]) / 5 (OpenCV's 1/1.25 × (1, .25), (.75, .5), (.5, .75), (.25, 1)).
_AB54 = ((4, 1), (3, 2), (2, 3), (1, 4))


def _area_5_4(plane: np.ndarray) -> np.ndarray:
    """``cv2.resize(INTER_AREA)`` by exactly 4/5 on both axes (640×360 → 512×288: the 640-wide
    frames' step) as OpenCV weighted sums over strided rows: the rows' step exactly in uint16
    (4a + b), the columns' (after a transpose) divided by 25 and rounded. The same bytes as
    OpenCV's generic non-integer area path (the exact value is a multiple of 1/25, never a tie)
    at ~40 % of its cost (bench/README.md, "Cost, round 3")."""
    h, w = plane.shape
    # (each sum is written straight into its strided rows of the next stage's input: OpenCV
    # takes a view with a row step as its destination)
    rows = np.empty((h // 5, 4, w), np.uint16)
    src = plane.reshape(h // 5, 5, w)
    for j, (a, b) in enumerate(_AB54):
        cv2.addWeighted(src[:, j], a, src[:, j + 1], b, 0, dst=rows[:, j], dtype=cv2.CV_16U)
    cols = cv2.transpose(rows.reshape(h * 4 // 5, w)).reshape(w // 5, 5, h * 4 // 5)
    out = np.empty((w // 5, 4, h * 4 // 5), np.uint8)
    for j, (a, b) in enumerate(_AB54):
        cv2.addWeighted(cols[:, j], a / 25, cols[:, j + 1], b / 25, 0, dst=out[:, j], dtype=cv2.CV_8U)
    return cv2.transpose(out.reshape(w * 4 // 5, h * 4 // 5))


def luma(rgb: np.ndarray) -> np.ndarray:
    """Luma, uint8 (OpenCV: ~20x faster than a numpy mean over the channels)."""
    return cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)


def grey(rgb: np.ndarray) -> np.ndarray:
    """Luma as float32."""
    return luma(rgb).astype(np.float32)


def picture_slices(area: tuple[int, int, int, int] | None, shape: tuple[int, int], pad: int = 1
                   ) -> tuple[slice, slice]:
    """(rows, cols) of the picture ``area`` grown by ``pad`` (a central difference's reach), in a
    frame of ``shape`` (h, w): the per-frame work skips the bars."""
    if area is None:
        return slice(0, shape[0]), slice(0, shape[1])
    x0, y0, x1, y1 = area
    return slice(max(0, y0 - pad), min(shape[0], y1 + pad)), slice(max(0, x0 - pad), min(shape[1], x1 + pad))


def gradients(g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Central differences (zero on the border): float32, or int16 from uint8 luma (the same
    values at half the memory traffic: a frame's gradients are discovery's largest per-frame cost)."""
    kind = np.int16 if g.dtype == np.uint8 else g.dtype
    gx = np.zeros(g.shape, kind)
    gy = np.zeros(g.shape, kind)
    np.subtract(g[:, 2:], g[:, :-2], out=gx[:, 1:-1], dtype=kind)
    np.subtract(g[2:], g[:-2], out=gy[1:-1], dtype=kind)
    return gx, gy


@dataclass
class ChunkStats:
    """Sums of gradients over the frames of one chunk."""

    sgx: np.ndarray
    sgy: np.ndarray
    se: np.ndarray
    n: int = 0

    @classmethod
    def empty(cls, h: int, w: int) -> "ChunkStats":
        z = lambda: np.zeros((h, w), np.float32)  # noqa: E731
        return cls(z(), z(), z())

    def add(self, gx: np.ndarray, gy: np.ndarray, at: tuple[slice, slice] | None = None) -> None:
        """Add one frame's gradients; ``at``: the part of the frame they cover (the picture: the
        bars, always flat and dark, are never summed)."""
        at = at or (slice(None), slice(None))
        self.sgx[at] += gx
        self.sgy[at] += gy
        energy = np.multiply(gx, gx, dtype=np.float32)
        energy += np.multiply(gy, gy, dtype=np.float32)
        self.se[at] += energy
        self.n += 1

    def mean(self) -> tuple[np.ndarray, np.ndarray]:
        return self.sgx / max(self.n, 1), self.sgy / max(self.n, 1)


@dataclass(frozen=True)
class Blob:
    """A compact group of static-edge pixels in one chunk: box (x0, y0, x1, y1) in small-frame
    pixels and the candidate-pixel mask over it."""

    box: tuple[int, int, int, int]
    mask: np.ndarray


def candidates(stats: ChunkStats, before: tuple[np.ndarray, np.ndarray] | None,
               area: tuple[int, int, int, int] | None, margin: int = 3) -> np.ndarray:
    """Bool map of static-edge pixels that are overlay-like: the picture moves around them, or
    they were not there two chunks ago. Pixels within ``margin`` of the picture's border (bars'
    edges) never count."""
    mgx, mgy = stats.mean()
    m2 = mgx * mgx + mgy * mgy
    e = stats.se / max(stats.n, 1)
    static = (m2 > EDGE * EDGE) & (m2 > COHERENCE * e)
    if not static.any():
        return static
    k = 2 * NEIGHBOURHOOD + 1
    variance = np.maximum(e - m2, 0)
    # Static edges on a flat patch (sky, wall) have no moving texture beside them: the camera
    # moving elsewhere in the picture is the evidence there.
    moving = (cv2.blur(variance, (k, k)) > MOVING) | (float(variance.mean()) > GLOBAL_MOVING)
    out = static & moving
    if before is not None:
        dx, dy = mgx - before[0], mgy - before[1]
        arrived = static & (dx * dx + dy * dy > CHANGED * m2)
        # Something arrived at a few places, not the whole picture shifting (a pan's slow phase).
        if arrived.sum() < ARRIVED_SHARE * static.sum():
            out |= arrived
    if area is not None:
        x0, y0, x1, y1 = area
        inside = np.zeros_like(out)
        inside[y0 + margin : y1 - margin, x0 + margin : x1 - margin] = True
        out &= inside
    return out


def blobs(mask: np.ndarray, area: tuple[int, int, int, int], *, min_pixels: int = 10,
          max_share: tuple[float, float] = (0.4, 0.3)) -> list[Blob]:
    """Connected groups of candidate pixels (letters and an icon beside them join), sized like a
    mark: at least ``min_pixels`` edge pixels, at most ``max_share`` of the picture (w, h)."""
    rows = np.flatnonzero(mask.any(1))
    if rows.size == 0:
        return []
    cols = np.flatnonzero(mask.any(0))
    # Only the candidates' bounding box grown by the dilation's reach (1 row, 2 columns) is
    # labelled: the same components as over the whole mask, at a fraction of its cost.
    oy, ox = max(0, int(rows[0]) - 1), max(0, int(cols[0]) - 2)
    mask = mask[oy : int(rows[-1]) + 2, ox : int(cols[-1]) + 3]
    joined = cv2.dilate(mask.astype(np.uint8), np.ones((3, 5), np.uint8))
    n, labels, stats, _ = cv2.connectedComponentsWithStats(joined, connectivity=8)
    pw, ph = max(area[2] - area[0], 1), max(area[3] - area[1], 1)
    ws, hs = stats[:, cv2.CC_STAT_WIDTH], stats[:, cv2.CC_STAT_HEIGHT]
    # (sized like a mark, and dilated from at least min_pixels: a still texture makes ~100 tiny ones)
    sized = (ws >= 5) & (hs >= 3) & (ws <= max_share[0] * pw) & (hs <= max_share[1] * ph)
    sized &= stats[:, cv2.CC_STAT_AREA] >= min_pixels
    out = []
    for i in np.flatnonzero(sized[1:]) + 1:
        x, y, w, h, _ = stats[i]
        sub = mask[y : y + h, x : x + w] & (labels[y : y + h, x : x + w] == i)
        if int(sub.sum()) < min_pixels:
            continue
        out.append(Blob((int(x) + ox, int(y) + oy, int(x + w) + ox, int(y + h) + oy), sub))
    return out

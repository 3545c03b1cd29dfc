"""Registration: where the mark sits in each crop, and moving maps between crop and matte coordinates.

``register`` returns per-crop offsets ``(dy, dx)``: the mark in crop ``i`` sits at ``p + offsets[i]``
where ``p`` is its position in the reference (the matte's) coordinates. The estimate keeps the matte
in reference coordinates; the inversion moves the matte to the crop (never resampling the frame).
"""

from __future__ import annotations

import numpy as np

def _edges(gray: np.ndarray) -> np.ndarray:
    """Gradient magnitude of [N, h, w]: the mark's edges stay put while the background moves."""
    gy = np.zeros_like(gray)
    gx = np.zeros_like(gray)
    gy[:, 1:-1] = gray[:, 2:] - gray[:, :-2]
    gx[:, :, 1:-1] = gray[:, :, 2:] - gray[:, :, :-2]
    return np.sqrt(gx * gx + gy * gy)


def _shift_stack(x: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Sample ``out[i](p) = x[i](p + offsets[i])`` (bilinear, edges clamped); x [N, h, w, ...]."""
    n, h, w = x.shape[:3]
    dy = offsets[:, 0].astype(np.float64)
    dx = offsets[:, 1].astype(np.float64)
    fy = np.arange(h)[None, :] + dy[:, None]  # [N, h]
    fx = np.arange(w)[None, :] + dx[:, None]  # [N, w]
    y0 = np.floor(fy).astype(np.int64)
    x0 = np.floor(fx).astype(np.int64)
    wy = (fy - y0).astype(np.float32)
    wx = (fx - x0).astype(np.float32)
    y0c, y1c = np.clip(y0, 0, h - 1), np.clip(y0 + 1, 0, h - 1)
    x0c, x1c = np.clip(x0, 0, w - 1), np.clip(x0 + 1, 0, w - 1)
    idx = np.arange(n)[:, None, None]
    extra = (1,) * (x.ndim - 3)

    def gather(yi: np.ndarray, xi: np.ndarray) -> np.ndarray:
        return x[idx, yi[:, :, None], xi[:, None, :]]

    wy_ = wy.reshape(n, h, 1, *extra)
    wx_ = wx.reshape(n, 1, w, *extra)
    top = gather(y0c, x0c) * (1 - wx_) + gather(y0c, x1c) * wx_
    bottom = gather(y1c, x0c) * (1 - wx_) + gather(y1c, x1c) * wx_
    return (top * (1 - wy_) + bottom * wy_).astype(np.float32)


def snap(offsets: np.ndarray, tolerance: float = 0.2) -> np.ndarray:
    """Round offsets that are within ``tolerance`` of whole pixels.

    Why: a mark drawn at a fixed place in the video moves by whole pixels between crops cut at
    integer boxes; resampling by a spurious 0.1 px would only blur the crops.
    """
    rounded = np.round(offsets)
    return np.where(np.abs(offsets - rounded) <= tolerance, rounded, offsets).astype(np.float32)


def register(crops: np.ndarray, *, max_shift: float | None = None, iterations: int = 3) -> np.ndarray:
    """Sub-pixel offsets [N, 2] (dy, dx) of the mark in each crop relative to the common reference.

    Phase correlation of each crop's edge map against the median edge map of the (aligned) crops:
    the mark's edges are the only structure common to all crops. The median offset is (about)
    zero, so the reference is the typical box. ``max_shift`` (default a quarter of the smaller
    side) bounds the search. Crops should include a margin around the mark larger than the jitter.
    """
    crops = np.asarray(crops)
    if crops.ndim != 4 or crops.shape[-1] != 3:
        raise ValueError(f"crops must be [N, h, w, 3], got {crops.shape}")
    n, h, w, _ = crops.shape
    if n == 0:
        return np.zeros((0, 2), np.float32)
    limit = max_shift if max_shift is not None else min(h, w) / 4.0
    edges = _edges(crops.astype(np.float32).mean(axis=-1))
    window = (np.hanning(h)[:, None] * np.hanning(w)[None, :]).astype(np.float32)
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.rfftfreq(w)[None, :]
    # Phase correlation with a soft low-pass: pure whitening lets pixel noise dominate.
    lowpass = np.exp(-((fy**2 + fx**2) / (2 * 0.15**2))).astype(np.float32)
    f_edges = np.fft.rfft2((edges - edges.mean(axis=(1, 2), keepdims=True)) * window)
    ys = np.fft.fftfreq(h, 1.0 / h)  # signed shifts per index
    xs = np.fft.fftfreq(w, 1.0 / w)
    allowed = (np.abs(ys)[:, None] <= limit) & (np.abs(xs)[None, :] <= limit)
    offsets = np.zeros((n, 2), np.float64)
    for _ in range(max(1, iterations)):
        aligned = _shift_stack(edges, offsets) if np.any(offsets) else edges
        template = np.median(aligned, axis=0)
        f_t = np.fft.rfft2((template - template.mean()) * window)
        cross = f_edges * np.conj(f_t)
        cross = cross / (np.abs(cross) + 1e-6) * lowpass
        corr = np.fft.irfft2(cross, s=(h, w))
        corr = np.where(allowed[None], corr, -np.inf)
        flat = corr.reshape(n, -1).argmax(axis=1)
        py, px = np.unravel_index(flat, (h, w))
        new = np.empty((n, 2), np.float64)
        idx = np.arange(n)
        for axis, (p, size) in enumerate(((py, h), (px, w))):
            if axis == 0:
                c0 = corr[idx, p, px]
                cm = corr[idx, (p - 1) % size, px]
                cp = corr[idx, (p + 1) % size, px]
            else:
                c0 = corr[idx, py, p]
                cm = corr[idx, py, (p - 1) % size]
                cp = corr[idx, py, (p + 1) % size]
            cm = np.where(np.isfinite(cm), cm, c0)
            cp = np.where(np.isfinite(cp), cp, c0)
            denom = cm - 2 * c0 + cp
            frac = np.where(np.abs(denom) > 1e-12, 0.5 * (cm - cp) / np.where(denom == 0, 1, denom), 0.0)
            signed = np.where(p > size // 2, p - size, p)
            new[:, axis] = signed + np.clip(frac, -0.5, 0.5)
        new -= np.round(np.median(new, axis=0))
        if np.allclose(new, offsets, atol=0.05):
            offsets = new
            break
        offsets = new
    return offsets.astype(np.float32)


def align(crops: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Crops resampled into reference coordinates (float32 [N, h, w, 3]); see ``register``."""
    crops = np.asarray(crops, dtype=np.float32)
    offsets = snap(np.asarray(offsets, dtype=np.float32))
    if not np.any(offsets):
        return crops
    return _shift_stack(crops, offsets)


def shift_map(image: np.ndarray, offset: tuple[float, float] | np.ndarray | None) -> np.ndarray:
    """Move a reference-coordinate map (e.g. the matte, [h, w]) into a crop with ``offset``."""
    if offset is None:
        return image
    off = snap(np.asarray(offset, dtype=np.float32).reshape(1, 2))
    if not np.any(off):
        return image
    return _shift_stack(image[None], -off)[0]



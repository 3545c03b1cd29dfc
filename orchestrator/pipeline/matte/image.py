"""Small numpy image operations on crops (dilation, push-pull fill, box means, luma/chroma)."""

from __future__ import annotations

import numpy as np

# BT.601 full-range RGB -> Y, Cb, Cr (centred). Any fixed linear split into luma and chroma works:
# it only has to separate what the codec keeps at full resolution from what it subsamples.
YCC = np.array([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]], np.float32)
YCC_INV = np.linalg.inv(YCC).astype(np.float32)
# Chroma in 4:2:0 video is averaged over 2x2 and interpolated back: it sees a blurred matte.
CHROMA_KERNEL = np.array([1, 4, 6, 4, 1], np.float32) / 16.0


def dilate_mask(mask: np.ndarray, radius: int) -> np.ndarray:
    """Binary dilation with a (2r+1)^2 square over the last two axes (separable, numpy only)."""
    out = mask.astype(bool)
    for _ in range(max(0, radius)):
        grown = out.copy()
        grown[..., 1:, :] |= out[..., :-1, :]
        grown[..., :-1, :] |= out[..., 1:, :]
        out = grown.copy()
        out[..., :, 1:] |= grown[..., :, :-1]
        out[..., :, :-1] |= grown[..., :, 1:]
    return out


def pad_edge(x: np.ndarray, r: int) -> np.ndarray:
    """Replicate the last two axes' edges by ``r`` (np.pad costs more than the work on small crops)."""
    x = np.concatenate([x[..., :1, :]] * r + [x] + [x[..., -1:, :]] * r, axis=-2)
    return np.concatenate([x[..., :, :1]] * r + [x] + [x[..., :, -1:]] * r, axis=-1)


def _upsample2(x: np.ndarray, h: int, w: int) -> np.ndarray:
    """Bilinear x2 upsampling over the last two axes of [M, hc, wc], cropped to [M, h, w]."""
    m, hc, wc = x.shape
    rows = np.empty((m, 2 * hc, wc), np.float32)
    prev = np.concatenate([x[:, :1], x[:, :-1]], axis=1)
    nxt = np.concatenate([x[:, 1:], x[:, -1:]], axis=1)
    rows[:, 0::2] = 0.75 * x + 0.25 * prev
    rows[:, 1::2] = 0.75 * x + 0.25 * nxt
    rows = rows[:, :h]
    out = np.empty((m, rows.shape[1], 2 * wc), np.float32)
    prev = np.concatenate([rows[:, :, :1], rows[:, :, :-1]], axis=2)
    nxt = np.concatenate([rows[:, :, 1:], rows[:, :, -1:]], axis=2)
    out[:, :, 0::2] = 0.75 * rows + 0.25 * prev
    out[:, :, 1::2] = 0.75 * rows + 0.25 * nxt
    return out[:, :, :w]


def fill(planes: np.ndarray, known: np.ndarray) -> np.ndarray:
    """Push-pull fill (Gortler et al. 1996) of [M, h, w] float32 planes where the shared mask
    ``known`` [h, w] is False: O(pixels), vectorised over frames, reaches holes of any size."""
    m, h, w = planes.shape
    wt = known.astype(np.float32)
    levels: list[tuple[np.ndarray, np.ndarray]] = []
    cur_x = np.where(known, planes, 0.0).astype(np.float32)
    cur_w = wt
    while min(cur_x.shape[1], cur_x.shape[2]) > 1:
        levels.append((cur_x, cur_w))
        ph, pw = cur_x.shape[1] % 2, cur_x.shape[2] % 2
        if ph:
            cur_x = np.concatenate([cur_x, cur_x[:, -1:]], axis=1)
            cur_w = np.concatenate([cur_w, np.zeros_like(cur_w[-1:])], axis=0)
        if pw:
            cur_x = np.concatenate([cur_x, cur_x[:, :, -1:]], axis=2)
            cur_w = np.concatenate([cur_w, np.zeros_like(cur_w[:, -1:])], axis=1)
        xw = cur_x * cur_w
        sum_xw = xw[:, 0::2, 0::2] + xw[:, 1::2, 0::2] + xw[:, 0::2, 1::2] + xw[:, 1::2, 1::2]
        sum_w = cur_w[0::2, 0::2] + cur_w[1::2, 0::2] + cur_w[0::2, 1::2] + cur_w[1::2, 1::2]
        cur_x = sum_xw / np.maximum(sum_w, 1e-6)
        cur_w = np.minimum(sum_w, 1.0)
    for fine_x, fine_w in reversed(levels):
        up = _upsample2(cur_x, fine_x.shape[1], fine_x.shape[2])
        cur_x = fine_w * fine_x + (1.0 - fine_w) * up
    return np.where(known, planes, cur_x).astype(np.float32)


def fill_frames(x: np.ndarray, known: np.ndarray) -> np.ndarray:
    """``fill`` of [N, C, h, w] frames."""
    n, c, h, w = x.shape
    return fill(x.reshape(n * c, h, w), known).reshape(n, c, h, w)


def fill_rgb(x: np.ndarray, known: np.ndarray) -> np.ndarray:
    """``fill`` of one [h, w, 3] image."""
    return fill(np.ascontiguousarray(x.transpose(2, 0, 1)), known).transpose(1, 2, 0)


def to_planes(x: np.ndarray) -> np.ndarray:
    """uint8/float [N, h, w, 3] -> float32 [N, 3, h, w] (channel planes are contiguous)."""
    return np.ascontiguousarray(np.asarray(x, dtype=np.float32).transpose(0, 3, 1, 2))


def box_mean(x: np.ndarray, r: int) -> np.ndarray:
    """Mean over a (2r+1)^2 window of the last two axes (edges replicated), via integral images."""
    k = 2 * r + 1
    c = pad_edge(x, r).cumsum(-2).cumsum(-1)
    c = np.concatenate([np.zeros_like(c[..., :1, :]), c], axis=-2)
    c = np.concatenate([np.zeros_like(c[..., :, :1]), c], axis=-1)
    return (c[..., k:, k:] - c[..., :-k, k:] - c[..., k:, :-k] + c[..., :-k, :-k]) / float(k * k)


def hf_energy(img: np.ndarray) -> np.ndarray:
    """Per-pixel high-pass energy of [h, w, 3]: (pixel - its 3x3 mean)^2, averaged over channels."""
    planes = np.ascontiguousarray(img.transpose(2, 0, 1))
    hf = planes - box_mean(planes, 1)
    return (hf * hf).mean(0)


def blur(a: np.ndarray, kernel: np.ndarray = CHROMA_KERNEL) -> np.ndarray:
    """Separable blur of [h, w] with edges replicated."""
    r = len(kernel) // 2
    h, w = a.shape
    p = pad_edge(a, r)
    rows = sum(k * p[j : j + h, :] for j, k in enumerate(kernel))
    return sum(k * rows[:, j : j + w] for j, k in enumerate(kernel)).astype(np.float32)

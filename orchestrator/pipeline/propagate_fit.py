"""Temporal propagation's geometry: the looks kept per frame, the ring the camera's motion is
fitted on, the translation fit (Lucas-Kanade on the ring), warping, and the per-pixel fusion of
warped looks by predicted error (``propagate`` uses these; split out to keep modules small)."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from orchestrator.pipeline import matte
from orchestrator.pipeline.matte.image import dilate_mask


@dataclass(frozen=True, eq=False)
class Look:
    """One frame's pixels around a mark: ``rgb`` of the even-aligned area at ``origin`` (x0, y0)
    that holds the matte window grown by the margin, and its luma for the motion."""

    index: int
    origin: tuple[int, int]
    rgb: np.ndarray  # uint8 [H, W, 3]
    gray: np.ndarray  # float32 [H, W]
    smooth: np.ndarray  # float32 [3, H, W]: luma smoothed (1 px), its x and y gradients

    @classmethod
    def of(cls, index: int, origin: tuple[int, int], rgb: np.ndarray) -> "Look":
        gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)
        s = cv2.GaussianBlur(gray, (0, 0), 1.0)
        gx = cv2.Sobel(s, cv2.CV_32F, 1, 0, ksize=3) / 8.0
        gy = cv2.Sobel(s, cv2.CV_32F, 0, 1, ksize=3) / 8.0
        return cls(index, origin, rgb, gray, np.stack([s, gx, gy]))


def support_of(plan, offset) -> np.ndarray:
    est = plan.estimate
    support = est.support if est.support is not None else est.alpha > 0.02
    return matte.shift_map(support.astype(np.float32), offset) > 0.5


def ring_of(plan, margin: int, look: Look, offset, gap: int) -> np.ndarray:
    """The look's pixels away from the mark (its support grown by ``gap``): where motion is fitted."""
    mask = np.ones(look.gray.shape, bool)
    x0, y0, cw, ch = plan.window
    wy, wx = y0 - look.origin[1], x0 - look.origin[0]
    grown = dilate_mask(np.pad(support_of(plan, offset), gap), gap)
    ya, xa = wy - gap, wx - gap
    sub = grown[max(0, -ya) :, max(0, -xa) :]
    ya, xa = max(0, ya), max(0, xa)
    h, w = min(sub.shape[0], mask.shape[0] - ya), min(sub.shape[1], mask.shape[1] - xa)
    mask[ya : ya + h, xa : xa + w] &= ~sub[:h, :w]
    return mask


def translation(ref: Look, src: Look, ref_ring: np.ndarray, src_ring: np.ndarray, init: np.ndarray,
                iterations: int = 20, zoom: bool = True) -> tuple[np.ndarray, float] | None:
    """The motion d = (dx, dy, s) with src(c + (1 + s)(x - c) + (dx, dy)) ~ ref(x) on the ring
    (c the grid's centre; s = 0 without ``zoom``), and the ring's rms misfit (of the 1-px-smoothed luma).

    Gauss-Newton (Lucas-Kanade with the reference's gradient, residuals Huber-weighted so a moving
    object on the ring does not pull the fit) from ``init`` ((dx, dy) or (dx, dy, s)). Why the
    zoom: the clips' cameras zoom by up to ~1 % within the 48 frames a look comes from, which is
    0.8 px at the edge of a 160 px window - a translation alone misregistered the looks there and
    their average blurred the texture. Why not ECC: cv2.findTransformECC stopped early by up to
    0.7 px on these small rings (measured).
    """
    d = np.zeros(3)
    d[: len(init)] = np.asarray(init, np.float64)
    ref_s, gx, gy = ref.smooth
    mask = ref_ring & _shifted(src_ring, np.rint(d[:2]).astype(int))  # the rings are >= 4 px from the mark
    if mask.sum() < 64:
        return None
    h, w = mask.shape
    radius = 0.5 * float(np.hypot(h, w))  # the zoom's step in px at the grid's corner
    ys, xs = np.nonzero(mask)
    jx, jy, base = gx[mask], gy[mask], ref_s[mask]
    jac = np.stack([jx, jy, (jx * (xs - (w - 1) / 2.0) + jy * (ys - (h - 1) / 2.0)) / radius], 1)
    n = 3 if zoom else 2
    r = np.zeros(0, np.float32)
    for it in range(iterations + 1):
        r = warp(src.smooth[0], d, cv2.INTER_LINEAR)[mask] - base
        ok = np.isfinite(r)
        r, j = r[ok], jac[ok, :n]
        if r.size < 64:
            return None
        if it == iterations:
            break
        wts = 1.0 / np.maximum(1.0, np.abs(r) / (4.0 * max(float(np.mean(np.abs(r))), 0.5)))
        normal = (j * wts[:, None]).T @ j
        ev = np.linalg.eigvalsh(normal)
        if ev[0] <= 1e-4 * ev[-1]:
            return None  # a flat or one-directional ring: the motion is not determined
        step = -np.linalg.solve(normal, (j * wts[:, None]).T @ r)
        d[:n] += step * np.array([1.0, 1.0, 1.0 / radius])[:n]
        if float(np.linalg.norm(step)) < 0.01 * np.sqrt(n / 2.0):
            iterations = it + 1  # one more residual at the converged motion
    return d, float(np.sqrt(np.mean(r * r)))


def inverse(d: np.ndarray) -> np.ndarray:
    """The motion that undoes ``d`` (frame s onto t from t onto s)."""
    k = 1.0 + d[2]
    return np.array([-d[0] / k, -d[1] / k, 1.0 / k - 1.0])


def _shifted(mask: np.ndarray, k: np.ndarray) -> np.ndarray:
    """``mask(x + k)`` for an integer k (False outside)."""
    out = np.zeros_like(mask)
    h, w = mask.shape
    dx, dy = int(k[0]), int(k[1])
    if abs(dx) >= w or abs(dy) >= h:
        return out
    out[max(0, -dy) : h - max(0, dy), max(0, -dx) : w - max(0, dx)] = \
        mask[max(0, dy) : h - max(0, -dy), max(0, dx) : w - max(0, -dx)]
    return out


def warp(image: np.ndarray, d: np.ndarray, interpolation: int,
          area: tuple[int, int, int, int] | None = None) -> np.ndarray:
    """``image(c + (1 + s)(x - c) + (dx, dy))`` for d = (dx, dy[, s]) over ``area`` (x0, y0, w, h; default the whole grid): NaN where it reaches
    outside the image (or into NaN)."""
    x0, y0, w, h = area if area is not None else (0, 0, image.shape[1], image.shape[0])
    if not np.any(d) and area is None:
        return image.astype(np.float32, copy=True)
    k = 1.0 + (float(d[2]) if len(d) > 2 else 0.0)  # zoom about the grid's centre c
    cx, cy = (image.shape[1] - 1) / 2.0, (image.shape[0] - 1) / 2.0
    m = np.array([[k, 0, k * x0 + d[0] + (1 - k) * cx], [0, k, k * y0 + d[1] + (1 - k) * cy]], np.float32)
    nan = (float("nan"),) * 4
    return cv2.warpAffine(image.astype(np.float32), m, (w, h), flags=interpolation | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=nan)


def combine(values: np.ndarray, variances: np.ndarray, reject: float,
            calibrate: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, "Agreement"]:
    """Inverse-variance mean of the looks [N, h, w, 3] per pixel, looks far from the consensus left
    out; returns (value, its variance, the looks' agreement) with NaN / inf where no look is valid."""
    valid = np.isfinite(values[..., 0]) & np.isfinite(variances)
    w = np.where(valid, 1.0 / np.where(valid, variances, 1.0), 0.0).astype(np.float32)
    v = np.where(valid[..., None], values, 0.0).astype(np.float32)
    total = np.maximum(w.sum(0), 1e-12)
    mean = np.einsum("nhw,nhwc->hwc", w, v) / total[..., None]
    dev2 = ((v - mean) ** 2).mean(-1)
    # The predicted variances are scaled to the looks' actual spread (x264's noise under the mark's
    # strokes exceeds the ring's, measured 2-4x): median of a 1-3 channel chi^2 over its dof ~ 0.6.
    # ``calibrate`` (the mark's pixels): off the mark the looks are raw pixels whose noise the ring
    # predicts; under the strokes x264's error is larger, and a scale set mostly off the mark
    # left the fused value over-trusted there (walls lost to the fill).
    where = valid & (total > w * 1.01)
    if calibrate is not None and (where & calibrate).sum() > 64:
        where &= calibrate
    z = (dev2 * w / np.maximum(1.0 - w / total, 0.05))[where]
    scale = max(1.0, float(np.median(z)) / 0.6) if z.size > 64 else 1.0
    w /= scale
    total /= scale
    w *= dev2 * w <= reject * reject * (1.0 + w / total)  # |dev| <= reject * sqrt(var + var_mean)
    total = w.sum(0)
    has = total > 0
    mean = np.einsum("nhw,nhwc->hwc", w, v) / np.maximum(total, 1e-12)[..., None]
    # against the calibrated variances, the calibration capped (x264 measured 2-4x the ring's noise):
    # a large disagreeing patch must not calibrate itself away
    spread = scale / min(scale, 4.0) * (w * ((v - mean[None]) ** 2).mean(-1)).sum(0) / np.maximum((w > 0).sum(0), 1)
    agree = Agreement((w > 0).sum(0), valid.sum(0), spread)
    return np.where(has[..., None], mean, np.nan), np.where(has, 1.0 / np.maximum(total, 1e-12), np.inf), agree


@dataclass(frozen=True, eq=False)
class Agreement:
    """Per pixel: how many looks the fusion kept, how many were valid there, and how well the kept
    ones agree."""

    kept: np.ndarray  # int [h, w]
    valid: np.ndarray  # int [h, w]
    spread: np.ndarray  # float [h, w]: the kept looks' mean squared deviation over their (calibrated) variance




def deblur(value: np.ndarray, own: np.ndarray, known: np.ndarray, sigma: float, limit: float,
           previous: float | None = None) -> tuple[np.ndarray, float]:
    """``value + beta * (value - gaussian(value, sigma))`` with beta fitted on ``known`` pixels
    (off the mark: the frame's own pixels ``own`` are the truth there, up to noise), in [0, limit].

    Why: the fused looks are slightly blurred (residual sub-pixel misregistration, interpolation)
    and the blend's texture fidelity fell to 0.6-0.7 on hair and ceilings; fitted where the truth
    is seen, beta is ~0 when nothing is blurred (no sharpening for its own sake). ``previous``: the
    visit's last beta, which this one is smoothed with (a beta jumping per frame would flicker)."""
    has = np.isfinite(value[..., 0])
    v = np.where(has[..., None], value, 0.0).astype(np.float32)
    weight = cv2.GaussianBlur(has.astype(np.float32), (0, 0), sigma)
    low = cv2.GaussianBlur(v, (0, 0), sigma) / np.maximum(weight, 1e-3)[..., None]
    hp = v - low
    ring = known & has
    if ring.sum() < 64:
        return value, 0.0 if previous is None else previous
    e, h = (np.asarray(own, np.float32) - v)[ring], hp[ring]
    beta = float(np.clip((e * h).sum() / max(float((h * h).sum()), 1e-6), 0.0, limit))
    if previous is not None:
        beta = 0.7 * previous + 0.3 * beta
    return np.where(has[..., None], v + beta * hp, np.nan), beta

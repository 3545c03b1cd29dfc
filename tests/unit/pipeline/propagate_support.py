"""Generated frames for the propagation tests: a textured scene panning under a fixed white mark."""

from __future__ import annotations

import cv2
import numpy as np

from orchestrator.pipeline import matte
from orchestrator.pipeline.marks import MarkPlan
from orchestrator.pipeline.propagate import PropagateParams, Propagator

from tests.unit.pipeline.matte.matte_support import mark_alpha, texture

FW, FH = 240, 140  # frame
WINDOW = (40, 35, 160, 70)  # x0, y0, w, h of the matte window


def estimate(alpha: np.ndarray) -> matte.MatteEstimate:
    """A reliable estimate of the true matte (the propagation is judged, not the estimation)."""
    return matte.MatteEstimate(alpha=alpha, color=matte.WHITE, frame_opacity=np.ones(1, np.float32),
                               residual=np.zeros(1, np.float32), reliable=True, reason="ok",
                               alpha_threshold=0.9, max_residual=0.5, support=alpha > 0.02)


def frames(n: int, *, speed: tuple[float, float] = (1.3, 0.7), opacity: float = 0.8, noise: float = 2.0,
           seed: int = 0, wobble: float = 2.0, flat: bool = False, zoom: float = 0.0):
    """(marked uint8 [n, FH, FW, 3], clean float32 [n, FH, FW, 3], plan): the camera moves by ``speed``
    px per frame plus a ``wobble`` (sub-pixel, cubic resampling of a larger texture) under a fixed
    mark; ``noise``: Gaussian noise in grey levels (the codec's, roughly); ``zoom``: the camera's
    scale change per frame about the window's centre."""
    rng = np.random.default_rng(seed)
    big = texture(rng, FH + 80, FW + 80).astype(np.float32)
    if flat:  # a wall: a faint gradient, no texture
        big = np.broadcast_to(np.linspace(150, 170, FW + 80, dtype=np.float32)[None, :, None], big.shape).copy()
    x0, y0, w, h = WINDOW
    alpha = mark_alpha(h, w, h / 2, w / 2 + 10) * opacity
    marked, clean = [], []
    for t in range(n):
        dx, dy = 8 + speed[0] * t + wobble * np.sin(t / 4), 8 + speed[1] * t
        z, cx, cy = 1.0 + zoom * (t - n / 2), x0 + w / 2, y0 + h / 2
        m = np.array([[z, 0, dx + (1 - z) * cx], [0, z, dy + (1 - z) * cy]], np.float32)
        bg = cv2.warpAffine(big, m, (FW, FH), flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP)
        obs = bg.copy()
        a = alpha[..., None]
        obs[y0 : y0 + h, x0 : x0 + w] = a * 255.0 + (1 - a) * bg[y0 : y0 + h, x0 : x0 + w]
        obs += rng.normal(0, noise, obs.shape)
        marked.append(np.clip(np.rint(obs), 0, 255).astype(np.uint8))
        clean.append(bg)
    plan = MarkPlan(estimate(alpha / opacity), WINDOW, np.zeros(2, np.float32))
    return np.stack(marked), np.stack(clean), plan


def shift(t: int, s: int, *, speed: tuple[float, float] = (1.3, 0.7), wobble: float = 2.0) -> np.ndarray:
    """The true d with frame_s(x + d) = frame_t(x) of ``frames``."""
    return np.array([speed[0] * (t - s) + wobble * (np.sin(t / 4) - np.sin(s / 4)), speed[1] * (t - s)])


def psnr(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
    err = ((a.astype(np.float64) - b.astype(np.float64)) ** 2)[mask].mean()
    return float(10 * np.log10(255.0**2 / max(err, 1e-10)))


def observed(marked: np.ndarray, plan, params: PropagateParams | None = None, skip=(), *, key="k") -> Propagator:
    """A propagator that has seen every frame of ``marked`` (but ``skip``) under ``key``."""
    prop = Propagator(params or PropagateParams())
    for i in range(len(marked)):
        if i not in skip:
            prop.observe(i, key, plan, lambda x0, y0, x1, y1, i=i: marked[i][y0:y1, x0:x1], FW, FH)
    return prop


def inner_box() -> np.ndarray:
    """The mark's box [1, 4]: the matte window less 4 px on each side."""
    x0, y0, w, h = WINDOW
    return np.array([[x0 + 4, y0 + 4, x0 + w - 4, y0 + h - 4]])

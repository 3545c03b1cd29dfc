"""Generated crops for the matte tests: a textured, panning background under a known mark."""

from __future__ import annotations

import numpy as np

H, W = 70, 160


def texture(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A colourful textured background (smooth blobs + fine detail + stripes), float 0..255."""
    img = np.zeros((h, w, 3), np.float32)
    for cell, amp in ((32, 70.0), (8, 35.0), (2, 18.0)):
        coarse = rng.normal(size=(h // cell + 2, w // cell + 2, 3)).astype(np.float32)
        up = np.kron(coarse, np.ones((cell, cell, 1), np.float32))[:h, :w]
        k = max(1, cell // 2)
        # box blur to remove the blocks
        for axis in (0, 1):
            up = sum(np.roll(up, s, axis=axis) for s in range(-k, k + 1)) / (2 * k + 1)
        img += amp * up / (up.std() + 1e-6)
    yy, xx = np.mgrid[0:h, 0:w]
    img += 25.0 * np.sin(xx / 5.0 + yy / 9.0)[..., None]
    return np.clip(img + 110.0, 0, 255)


def mark_alpha(h: int, w: int, cy: float, cx: float) -> np.ndarray:
    """An analytic star-and-text-like matte with anti-aliased edges, centred at (cy, cx)."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    y, x = yy - cy, xx - cx

    def smooth(dist: np.ndarray) -> np.ndarray:  # dist < 0 inside; 1 px ramp
        return np.clip(0.5 - dist, 0.0, 1.0)

    r = np.hypot(y, x + 45)
    ring = smooth(np.abs(r - 13.0) - 3.0)  # a ring of width 6
    dot = smooth(np.hypot(y, x + 45) - 4.0)
    bars = np.zeros_like(x)
    for i in range(4):  # four "letters"
        lx = x - (-15 + 16 * i)
        bars = np.maximum(bars, smooth(np.maximum(np.abs(lx) - 2.5, np.abs(y) - 11.0)))
        bars = np.maximum(bars, smooth(np.maximum(np.abs(lx - 4) - 5.0, np.abs(y + 9) - 2.0)))
    return np.maximum.reduce([ring, dot, bars]).astype(np.float32)


def make_clip(n: int, opacity: float, *, seed: int = 0, jitter: float = 0.0, changing: bool = False,
          noise: float = 1.5, opacities: np.ndarray | None = None, color=(255.0, 255.0, 255.0)):
    """Crops of a moving textured background with a white mark; returns (crops, clean, alpha, offsets)."""
    rng = np.random.default_rng(seed)
    big = texture(rng, H + 4 * n + 8, W + 6 * n + 8)
    crops, clean, alphas, offsets = [], [], [], []
    for t in range(n):
        oy, ox = 2 * t + int(3 * np.sin(t / 3)), 3 * t  # camera motion
        bg = big[oy + 4 : oy + 4 + H, ox + 4 : ox + 4 + W]
        d = rng.uniform(-jitter, jitter, size=2) if jitter else np.zeros(2)
        if changing:
            a = mark_alpha(H, W, 35 + rng.uniform(-12, 12), 80 + rng.uniform(-30, 30))
        else:
            a = mark_alpha(H, W, 35 + d[0], 80 + d[1])
        o = opacity if opacities is None else opacities[t]
        a = a * o
        obs = a[..., None] * np.asarray(color) + (1 - a[..., None]) * bg + rng.normal(0, noise, bg.shape)
        crops.append(np.clip(np.rint(obs), 0, 255).astype(np.uint8))
        clean.append(bg)
        alphas.append(a)
        offsets.append(d)
    return np.stack(crops), np.stack(clean), np.stack(alphas), np.array(offsets, np.float32)


def psnr(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
    err = ((a.astype(np.float64) - b.astype(np.float64)) ** 2)[mask].mean()
    return float(10 * np.log10(255.0**2 / max(err, 1e-10)))

"""Candidate overlay places over time: a template of static edges, a per-frame presence score,
and the white-overlay fit of the steps where the overlay arrives or leaves.

The score of a frame is the normalised correlation of its gradients with the template's over
the template's edges: ~1 where the overlay is there (its edges dominate whatever moves under it),
~0 where it is not. A place is *confirmed* as an overlay when one of its steps fits a
semi-transparent white overlay: the change is Δ = α·(255 − B) with one α in every channel, α
clearly above 0 and below 1 (an opaque caption or a passing object does not fit).
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass, field

import numpy as np

from orchestrator.pipeline.discover.features import gradients, grey

HIGH, LOW = 0.45, 0.25  # presence score hysteresis
ALPHA_RANGE = (0.35, 0.92)  # a semi-transparent overlay's α (the real mark: 0.75-0.84)
CHANNEL_SPREAD = 0.15  # the channels' α agree this well for a white overlay
STEP_LEVEL = 12.0  # grey levels: pixels that changed this much at the step form its body
MAX_STEP_GAP = 4  # frames between the last full and the first empty frame of a step


@dataclass(frozen=True)
class StepFit:
    """The fit of one step (``arrive`` or not) between frames ``on`` and ``off``."""

    on: int
    off: int
    arrive: bool
    alpha: tuple[float, float, float]  # α per channel of the body's solid part (80th percentile)
    consistent: float  # share of the body within 0.2 of that α (edges are partial: information)
    body: int  # pixels that brightened with the overlay
    darker: int  # pixels that darkened (moving texture does both as much)

    @property
    def fits(self) -> bool:
        lo, hi = ALPHA_RANGE
        a = np.asarray(self.alpha)
        return bool(lo <= a.min() and a.max() <= hi and np.ptp(a) <= CHANNEL_SPREAD
                    and self.body >= 4 * self.darker)


@dataclass
class Track:
    """One place where a static overlay may be: box (x0, y0, x1, y1) in small-frame pixels."""

    box: tuple[int, int, int, int]
    tgx: np.ndarray
    tgy: np.ndarray
    weight: int
    first_frame: int
    scores: array = field(default_factory=lambda: array("f"))
    steps: list[StepFit] = field(default_factory=list)
    chunks: int = 1

    @classmethod
    def from_blob(cls, box, mean_g: tuple[np.ndarray, np.ndarray], mask: np.ndarray, pad: int,
                  shape: tuple[int, int], first_frame: int) -> "Track":
        h, w = shape
        x0, y0 = max(box[0] - pad, 0), max(box[1] - pad, 0)
        x1, y1 = min(box[2] + pad, w), min(box[3] + pad, h)
        keep = np.zeros((y1 - y0, x1 - x0), bool)
        keep[box[1] - y0 : box[3] - y0, box[0] - x0 : box[2] - x0] = mask
        tgx = np.where(keep, mean_g[0][y0:y1, x0:x1], 0).astype(np.float32)
        tgy = np.where(keep, mean_g[1][y0:y1, x0:x1], 0).astype(np.float32)
        return cls((x0, y0, x1, y1), tgx, tgy, 1, first_frame)

    @property
    def confirmed(self) -> bool:
        return any(s.fits for s in self.steps)

    def alpha(self) -> float | None:
        fits = [float(np.mean(s.alpha)) for s in self.steps if s.fits]
        return float(np.median(fits)) if fits else None

    def update(self, mean_g: tuple[np.ndarray, np.ndarray]) -> None:
        """Average the template with a chunk in which the overlay was there (what moves under it
        averages out further); pixels outside the first template stay zero."""
        x0, y0, x1, y1 = self.box
        keep = (self.tgx != 0) | (self.tgy != 0)
        w = self.weight
        self.tgx = np.where(keep, (self.tgx * w + mean_g[0][y0:y1, x0:x1]) / (w + 1), 0).astype(np.float32)
        self.tgy = np.where(keep, (self.tgy * w + mean_g[1][y0:y1, x0:x1]) / (w + 1), 0).astype(np.float32)
        self.weight = w + 1
        self.chunks += 1

    def score(self, rgb: np.ndarray) -> float:
        """Presence score of one small frame (see module docstring)."""
        x0, y0, x1, y1 = self.box
        gx, gy = gradients(grey(rgb[y0:y1, x0:x1]))
        keep = (self.tgx != 0) | (self.tgy != 0)
        keep[:, [0, -1]] = False
        keep[[0, -1], :] = False
        tx, ty, fx, fy = self.tgx[keep], self.tgy[keep], gx[keep], gy[keep]
        den = np.sqrt(float((tx * tx + ty * ty).sum()) * float((fx * fx + fy * fy).sum()))
        return float((tx * fx + ty * fy).sum() / den) if den > 0 else 0.0

    def set_score(self, frame: int, value: float) -> None:
        while len(self.scores) <= frame:
            self.scores.append(0.0)
        self.scores[frame] = value

    def fit_step(self, on_rgb: np.ndarray, off_rgb: np.ndarray, on: int, off: int) -> StepFit | None:
        """White-overlay fit of the change between a frame with the overlay and one without."""
        x0, y0, x1, y1 = self.box
        a = on_rgb[y0:y1, x0:x1].astype(np.float32)
        b = off_rgb[y0:y1, x0:x1].astype(np.float32)
        delta = a - b
        room = 255.0 - b
        change = delta.mean(2)
        body = (change > STEP_LEVEL) & (room.min(2) > 30)
        darker = int((change < -STEP_LEVEL).sum())
        if body.sum() < 8:
            return None
        alphas = delta[body] / room[body]  # [n, 3]
        med = np.percentile(alphas, 80, axis=0)
        consistent = float((np.abs(alphas - med).max(1) < 0.2).mean())
        return StepFit(on, off, on > off, tuple(round(float(v), 3) for v in med), round(consistent, 3),
                       int(body.sum()), darker)


def presence(scores: np.ndarray, *, min_run: int = 3, max_gap: int = 2) -> np.ndarray:
    """Per-frame presence from scores: above HIGH, or above LOW next to a present frame
    (hysteresis); runs shorter than ``min_run`` dropped, gaps up to ``max_gap`` filled."""
    s = np.asarray(scores, np.float32)
    on = s >= HIGH
    weak = s >= LOW
    changed = True
    while changed:  # grow present runs through weak frames
        grown = on.copy()
        grown[1:] |= on[:-1] & weak[1:]
        grown[:-1] |= on[1:] & weak[:-1]
        changed = bool((grown != on).any())
        on = grown
    on = _fill(on, max_gap)
    return _drop_short(on, min_run)


def runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) of every run of True."""
    padded = np.concatenate([[False], np.asarray(mask, bool), [False]])
    edges = np.flatnonzero(np.diff(padded.astype(np.int8)))
    return list(zip(edges[0::2].tolist(), edges[1::2].tolist()))


def _fill(on: np.ndarray, max_gap: int) -> np.ndarray:
    out = on.copy()
    for a, b in runs(~on):
        if a > 0 and b < len(on) and b - a <= max_gap:
            out[a:b] = True
    return out


def _drop_short(on: np.ndarray, min_run: int) -> np.ndarray:
    out = on.copy()
    for a, b in runs(on):
        if b - a < min_run:
            out[a:b] = False
    return out

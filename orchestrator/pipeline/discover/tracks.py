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
from dataclasses import dataclass, field, replace

import cv2
import numpy as np

from orchestrator.pipeline.discover.features import gradients, grey

HIGH, LOW = 0.45, 0.25  # presence score hysteresis
ALPHA_RANGE = (0.4, 0.92)  # a semi-transparent overlay's α (the real mark: 0.75-0.84)
CHANNEL_SPREAD = 0.15  # the channels' α agree this well for a white overlay
STEP_LEVEL = 12.0  # grey levels: pixels that changed this much at the step form its body
MAX_STEP_GAP = 4  # frames between the last full and the first empty frame of a step
MIN_SHAPE = (6, 48)  # least side and area (small-frame pixels) of an α map worth comparing


@dataclass(frozen=True)
class StepFit:
    """The fit of one step (``arrive`` or not) between frames ``on`` and ``off``."""

    on: int
    off: int
    arrive: bool
    alpha: tuple[float, float, float]  # α per channel of the body's solid part (80th percentile)
    consistent: float  # share of the body within 0.2 of that α (edges are partial: information)
    body: int  # pixels that brightened with the overlay
    darker: int  # pixels that darkened outside the body's silhouette (moving texture does both as much)
    shape: np.ndarray | None = field(default=None, compare=False, repr=False)  # α map over the body's box

    @property
    def frame(self) -> int:
        """The first frame of the new state: the first full frame of an arrival, the frame after
        the last full one of a departure (the first empty frame may be a few later)."""
        return self.on if self.arrive else self.on + 1

    @property
    def fits(self) -> bool:
        lo, hi = ALPHA_RANGE
        least, most = min(self.alpha), max(self.alpha)  # (plain Python: called ~10^5 times in a clip)
        return lo <= least and most <= hi and most - least <= CHANNEL_SPREAD and self.body >= 4 * self.darker


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
    extent: tuple[int, int, int, int] | None = None  # the whole overlay, from its steps (else box)
    fixed: float | None = None  # α of a fixed overlay (no step) measured from the picture under it
    # (on, off) frame pairs whose step was already fitted. Kept on the track, not keyed by id():
    # a retired track's id is reused by a new one, and which one depends on other threads' timing.
    tried: set = field(default_factory=set, repr=False)
    _cache: tuple | None = field(default=None, repr=False)

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
        return float(np.median(fits)) if fits else self.fixed

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
        self._cache = None

    def _template(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
        """(keep mask, tx, ty, |t|²) of the template's edge pixels (cached until ``update``)."""
        if self._cache is None:
            keep = (self.tgx != 0) | (self.tgy != 0)
            keep[:, [0, -1]] = False
            keep[[0, -1], :] = False
            tx, ty = self.tgx[keep], self.tgy[keep]
            self._cache = (keep, tx, ty, float((tx * tx + ty * ty).sum()))
        return self._cache

    def score(self, rgb: np.ndarray, grads: tuple[np.ndarray, np.ndarray] | None = None) -> float:
        """Presence score of one small frame (see module docstring); ``grads``: the whole frame's
        gradients when at hand (the same values on the template's pixels, which exclude the box's
        border)."""
        x0, y0, x1, y1 = self.box
        if grads is None:
            gx, gy = gradients(grey(rgb[y0:y1, x0:x1]))
        else:
            gx, gy = grads[0][y0:y1, x0:x1], grads[1][y0:y1, x0:x1]
        keep, tx, ty, tn = self._template()
        fx, fy = gx[keep], gy[keep]
        den = np.sqrt(tn * float((fx * fx + fy * fy).sum()))
        return float((tx * fx + ty * fy).sum() / den) if den > 0 else 0.0

    def score_many(self, greys: list[np.ndarray]) -> np.ndarray:
        """``score`` of many small frames at once from their whole grey frames (uint8 luma, as
        ``features.grey`` before its float cast): one numpy pass over the template's edge pixels
        instead of a crop's grey and gradients per frame (a new track is scored back over ~80)."""
        if not greys:
            return np.zeros(0, np.float32)
        x0, y0, x1, y1 = self.box
        keep, tx, ty, tn = self._template()
        ys, xs = np.nonzero(keep)  # (row-major: the order of ``score``'s boolean indexing)
        g = np.stack([q[y0:y1, x0:x1] for q in greys]).astype(np.float32)
        fx = g[:, ys, xs + 1] - g[:, ys, xs - 1]
        fy = g[:, ys + 1, xs] - g[:, ys - 1, xs]
        energy = (fx * fx + fy * fy).sum(1, dtype=np.float32).astype(np.float64)
        num = (tx * fx + ty * fy).sum(1, dtype=np.float32).astype(np.float64)
        den = np.sqrt(tn * energy)
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), 0.0)

    def set_score(self, frame: int, value: float) -> None:
        while len(self.scores) <= frame:
            self.scores.append(0.0)
        self.scores[frame] = value

    def fit_step(self, on_rgb: np.ndarray, off_rgb: np.ndarray, on: int, off: int) -> StepFit | None:
        """White-overlay fit of the change between a frame with the overlay and one without.
        α is measured where there is room to brighten (a white mark on a bright sky changes the
        blue channel by a few levels only: that channel is not asked for its α)."""
        x0, y0, x1, y1 = self.box
        a = on_rgb[y0:y1, x0:x1].astype(np.float32)
        b = off_rgb[y0:y1, x0:x1].astype(np.float32)
        delta = a - b
        room = 255.0 - b
        change = delta.mean(2)
        room_g = room.mean(2)
        level_g = np.maximum(STEP_LEVEL * 0.5, 0.2 * room_g)
        brighter = change > level_g
        body = brighter & (room_g > 20)
        n_body = int(body.sum())
        if n_body < 8:
            return None
        darkened = change < -level_g
        darker = int(darkened.sum())
        if n_body < 4 * darker:  # (only then can the silhouette decide: it costs ~0.5 ms)
            darker = int((darkened & ~_silhouette(brighter)).sum())
        grey_alpha = change[body] / room_g[body]
        level = _p80(grey_alpha)
        consistent = float((np.abs(grey_alpha - level) < 0.2).mean())
        plain = []
        for c in range(3):
            ok = body & (room[..., c] > 40)
            plain.append(round(_p80(delta[..., c][ok] / room[..., c][ok]), 3)
                         if ok.sum() >= 8 else round(level, 3))
        fit = StepFit(on, off, on > off, tuple(plain), round(consistent, 3), n_body, darker)
        if not fit.fits:  # a channel near 255 or coding noise may have decided: weigh by room
            weighted = replace(fit, alpha=_channel_alpha(delta, room, body, grey_alpha, level))
            fit = weighted if weighted.fits else fit
        return replace(fit, shape=_shape(change, room_g, body)) if fit.fits else fit


def _p80(x: np.ndarray) -> float:
    """``np.percentile(x, 80)`` of a flat float32 array, bit for bit (its linear method, its
    float32 difference, its float64 interpolation), from one partition: numpy's own checks and
    its unique/concatenate of indexes cost ~5x more on the few hundred pixels of a step."""
    n = x.size
    v = (n - 1) * 0.8  # numpy's virtual index (method "linear")
    if v >= n - 1:
        return float(x.max())
    lo = int(np.floor(v))
    part = np.partition(x, (lo, lo + 1))
    a, b = part[lo], part[lo + 1]
    t = v - lo
    d = float(b - a)
    return float(b) - d * (1 - t) if t >= 0.5 else float(a) + d * t


def _silhouette(body: np.ndarray) -> np.ndarray:
    """The body with its holes filled: a mark's own dark parts (the Sora cloud's eyes) darken
    inside it; moving texture darkens beside what it brightens."""
    closed = cv2.morphologyEx(body.astype(np.uint8), cv2.MORPH_CLOSE, np.ones((3, 3), np.uint8))
    outside = np.pad(1 - closed, 1, constant_values=1)
    mask = np.zeros((outside.shape[0] + 2, outside.shape[1] + 2), np.uint8)
    cv2.floodFill(outside, mask, (0, 0), 2)
    return outside[1:-1, 1:-1] != 2


def _shape(change: np.ndarray, room_g: np.ndarray, body: np.ndarray) -> np.ndarray:
    """The step's grey α map (0 where nothing brightened) over the body's bounding box: what a
    jump's leaving and arriving steps share."""
    ys, xs = np.nonzero(body)
    alpha = np.where(body, np.clip(change / np.maximum(room_g, 1.0), 0, 1), 0).astype(np.float32)
    return alpha[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]


def same_shape(a: np.ndarray | None, b: np.ndarray | None, shift: int = 2) -> float:
    """How well two steps' α maps agree (normalised correlation, best over shifts of ``shift``
    px and over the places of the smaller inside the larger): ~1 for one overlay leaving one place
    and arriving at another. The smaller may be a part of the larger, at least a quarter of it (an
    icon alone against the icon with its text; a step's map that took some texture along); 0 when
    either is missing, too small to say (a few pixels of a face's edge match anything) or they are
    sized otherwise."""
    if a is None or b is None or min(a.shape + b.shape) < MIN_SHAPE[0] or min(a.size, b.size) < MIN_SHAPE[1]:
        return 0.0
    if a.std() == 0 or b.std() == 0:
        return 0.0
    if a.size > b.size:
        a, b = b, a
    if a.size < b.size / 4 or any(p > 1.3 * q for p, q in zip(a.shape, b.shape)):
        return 0.0
    dy, dx = max(0, a.shape[0] - b.shape[0]), max(0, a.shape[1] - b.shape[1])
    big = cv2.copyMakeBorder(b, shift + dy, shift, shift + dx, shift, cv2.BORDER_CONSTANT, value=0)
    return float(np.nan_to_num(cv2.matchTemplate(big, a, cv2.TM_CCOEFF_NORMED), nan=0.0, posinf=0.0).max())


def _channel_alpha(delta: np.ndarray, room: np.ndarray, body: np.ndarray, grey_alpha: np.ndarray,
                   level: float) -> tuple[float, float, float]:
    """α per channel over the body's solid part (grey α near the 80th percentile: edges are
    partial), least squares weighted by room: Δ = α·(255 − B) gives α = ΣΔ·r / Σr², so a channel
    near 255 (a few levels of room, mostly coding noise) weighs little instead of deciding."""
    solid = np.zeros_like(body)
    solid[body] = np.abs(grey_alpha - level) < 0.2
    out = []
    for c in range(3):
        ok = solid & (room[..., c] > 20)
        r, d = room[..., c][ok], delta[..., c][ok]
        rr = float((r * r).sum())
        out.append(round(float((d * r).sum()) / rr, 3) if ok.sum() >= 8 and rr > 0 else round(level, 3))
    return tuple(out)


def _brightened(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pixels (grey) that an overlay in ``a`` and not in ``b`` lifts clearly: Δ = α·(255 − B)."""
    room = 255.0 - b
    return ((a - b) > np.maximum(STEP_LEVEL * 0.5, 0.2 * room)) & (room > 20)


def step_extent(track: Track, on_rgb: np.ndarray, off_rgb: np.ndarray, between: tuple = (), *,
                fallback: bool = False) -> tuple[tuple[int, int, int, int], np.ndarray] | None:
    """The box of everything that stepped with the track's place (the text beside an icon whose
    edges made the track): the connected brightened region over the box, searched in a window
    1.5 box widths to either side and one height above and below; with the step's grey α map
    over that box (what every visit of one overlay shares). ``between``: the frames from
    ``on_rgb`` to ``off_rgb`` (a departure seen from a few frames before: the text leaves first);
    a pixel then counts only where it stepped between two neighbouring frames, so that what
    drifts slowly over those frames (clouds over a bright sky) stays out of the map. With
    ``fallback``, the plain step's answer where that finds none (None where the plain one does):
    both from one pass over the window."""
    x0, y0, x1, y1 = track.box
    w, h = x1 - x0, y1 - y0
    H, W = on_rgb.shape[:2]
    wx0, wy0 = max(0, int(x0 - 1.5 * w)), max(0, y0 - h)
    wx1, wy1 = min(W, int(x1 + 1.5 * w)), min(H, y1 + h)
    seq = [f[wy0:wy1, wx0:wx1].astype(np.float32).mean(2) for f in (on_rgb, *between, off_rgb)]
    a, b = seq[0], seq[-1]
    plain = _brightened(a, b)
    body = plain
    if len(seq) > 2:
        body = plain & np.logical_or.reduce([_brightened(p, q) for p, q in zip(seq, seq[1:])])
    where = (track.box, (wx0, wy0))
    if not fallback or body is plain:
        return _extent(body, a, b, where)
    first = _extent(plain, a, b, where)
    return None if first is None else _extent(body, a, b, where) or first


def _extent(body: np.ndarray, a: np.ndarray, b: np.ndarray, where: tuple
            ) -> tuple[tuple[int, int, int, int], np.ndarray] | None:
    """``step_extent``'s box and α map from the window's brightened pixels."""
    (x0, y0, x1, y1), (wx0, wy0) = where
    w, h = x1 - x0, y1 - y0
    room = 255.0 - b
    # Text sits beside its icon with a gap of up to about half the icon's height.
    kx = max(5, (h // 2) * 2 + 1)
    joined = cv2.dilate(body.astype(np.uint8), np.ones((3, kx), np.uint8))
    n, labels, _, _ = cv2.connectedComponentsWithStats(joined, connectivity=8)
    inside = labels[y0 - wy0 : y1 - wy0, x0 - wx0 : x1 - wx0]
    ids = [i for i in np.unique(inside) if i > 0]
    if not ids:
        return None
    mine = np.isin(labels, ids) & body
    ys, xs = np.nonzero(mine)
    if ys.size < 8:
        return None
    box = (int(xs.min()) + wx0, int(ys.min()) + wy0, int(xs.max()) + 1 + wx0, int(ys.max()) + 1 + wy0)
    bw, bh = box[2] - box[0], box[3] - box[1]
    # A compact mark (an icon and its text beside it), mostly body: not texture that brightened
    # around it, nor the whole window (a cut or a flash).
    if bw > 3.2 * w or bh > 1.6 * h or ys.size < 0.15 * bw * bh:
        return None
    sub = (slice(box[1] - wy0, box[3] - wy0), slice(box[0] - wx0, box[2] - wx0))
    return box, _shape((a - b)[sub], room[sub], mine[sub])


def presence(scores: np.ndarray, *, min_run: int = 3, max_gap: int = 2, edge_run: int | None = None) -> np.ndarray:
    """Per-frame presence from scores: above HIGH, or above LOW next to a present frame
    (hysteresis); runs shorter than ``min_run`` dropped (``edge_run`` for a run the video's
    start or end cuts short), gaps up to ``max_gap`` filled."""
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
    return _drop_short(on, min_run, min_run if edge_run is None else edge_run)


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


def _drop_short(on: np.ndarray, min_run: int, edge_run: int) -> np.ndarray:
    out = on.copy()
    for a, b in runs(on):
        if b - a < (edge_run if a == 0 or b == on.size else min_run):
            out[a:b] = False
    return out

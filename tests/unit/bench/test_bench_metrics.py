"""bench.metrics on generated frames whose answers are known (untouched, removed, half, blurred)."""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter

from bench import metrics

H, W = 60, 90


def _scene(seed: int = 0, shift: int = 0):
    """A textured clean frame, a white mark at 0.7 over it, and the mark's mask."""
    rng = np.random.default_rng(seed)
    clean = gaussian_filter(rng.uniform(0, 255, (H + 10, W + 10, 3)), (1.2, 1.2, 0))
    clean = (clean - clean.mean()) * 4 + 120
    clean = np.clip(clean[5 + shift : 5 + shift + H, 5:5 + W], 0, 255)
    alpha = np.zeros((H, W))
    alpha[20:40, 20:30] = 0.7
    alpha[25:35, 40:70] = 0.7
    marked = alpha[..., None] * 255 + (1 - alpha[..., None]) * clean
    return clean, marked, alpha > 0


def test_mark_remaining_reads_one_untouched_zero_gone_half_half():
    clean, marked, mask = _scene()
    assert abs(metrics.mark_remaining(marked, clean, marked, mask) - 1.0) < 1e-9
    assert abs(metrics.mark_remaining(clean, clean, marked, mask)) < 1e-9
    half = 0.5 * (clean + marked)
    assert abs(metrics.mark_remaining(half, clean, marked, mask) - 0.5) < 1e-9
    over = clean - 0.3 * (marked - clean)  # over-corrected: an inverted ghost
    assert metrics.mark_remaining(over, clean, marked, mask) < -0.25


def test_mark_remaining_ignores_a_smooth_offset_but_sees_a_ghost_outline():
    clean, marked, mask = _scene()
    assert abs(metrics.mark_remaining(clean + 3.0, clean, marked, mask)) < 1e-6  # a flat error: no ghost
    outline = clean + 0.3 * metrics.highpass(marked - clean)
    assert metrics.mark_remaining(outline, clean, marked, mask) > 0.2


def test_texture_score_penalises_blur_and_added_noise_alike():
    clean, _, mask = _scene()
    assert metrics.texture_score(clean, clean, mask) == 1.0
    flat = np.full_like(clean, 128.0)  # a flat sky: coding noise of 0.5 grey levels is not texture lost
    assert metrics.texture_score(flat + np.random.default_rng(3).normal(0, 0.5, flat.shape), flat, mask) > 0.8
    blurred = gaussian_filter(clean, (2, 2, 0))
    noisy = clean + np.random.default_rng(1).normal(0, 60, clean.shape)
    assert metrics.texture_score(blurred, clean, mask) < 0.5
    assert metrics.texture_score(noisy, clean, mask) < 0.5


def test_flicker_counts_added_change_and_a_frozen_fill_on_moving_content():
    frames = [_scene(shift=s) for s in range(4)]
    exact, frozen, noisy = metrics.MarkScores(), metrics.MarkScores(), metrics.MarkScores()
    rng = np.random.default_rng(2)
    for clean, marked, mask in frames:
        exact.add(clean, clean, marked, mask)
        frozen.add(frames[0][0], clean, marked, mask)
        noisy.add(clean + rng.normal(0, 5, clean.shape), clean, marked, mask)
    assert exact.row()["flicker_added"] == 0.0 and exact.row()["flicker_clean"] > 5
    assert frozen.row()["flicker_added"] > 0.5 * frozen.row()["flicker_clean"]
    assert 4 < noisy.row()["flicker_added"] < 8  # |N(0,5) - N(0,5)| has mean ~5.6


def test_row_and_targets():
    clean, marked, mask = _scene()
    good, bad = metrics.MarkScores(), metrics.MarkScores()
    for _ in range(3):
        good.add(clean, clean, marked, mask)
        bad.add(0.7 * clean + 0.3 * marked, clean, marked, mask)
    g, b = good.row(), bad.row()
    assert g["ghost_share"] == 0.0 and g["remaining_median"] == 0.0 and g["psnr_in"] == float("inf")
    assert b["ghost_share"] == 1.0 and abs(b["remaining_median"] - 0.3) < 1e-6
    assert metrics.meets_targets(g) == []
    misses = metrics.meets_targets(b, delogo={"psnr_in": 60.0})
    assert any("keep >" in m for m in misses) and any("delogo" in m for m in misses)
    # flat background: delogo near the ceiling -> the bar is the ceiling - 1.5 dB
    assert metrics.psnr_target({"psnr_in": 40.0}, {"psnr_in": 42.0}) == 40.5
    assert metrics.psnr_target({"psnr_in": 30.0}, {"psnr_in": 42.0}) == 35.0

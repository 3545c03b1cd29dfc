"""Pooling the crops of several positions (``pool_crops``, ``estimate_groups``)."""

from __future__ import annotations

import numpy as np
import pytest

from orchestrator.pipeline import matte
from matte_support import H, W, make_clip


def test_pooled_positions_share_one_matte():
    """Crops of two positions (different sizes, the mark shifted) pool into one estimate."""
    a, _, alphas, _ = make_clip(20, 0.6, seed=12)
    b, _, _, _ = make_clip(20, 0.6, seed=13)
    b = np.pad(b, ((0, 0), (2, 4), (5, 1), (0, 0)), mode="edge")  # another window around the mark
    pooled, trims = matte.pool_crops([a, b])
    assert pooled.shape == (40, H, W, 3) and trims == [(0, 0), (3, 3)]
    est = matte.estimate_matte(pooled)
    assert est.reliable, est.reason
    # the second group's mark sits 2 px lower and 5 px further right, minus the trim
    shift = np.median(est.offsets[20:], axis=0) - np.median(est.offsets[:20], axis=0)
    assert np.allclose(shift, [2 - 3, 5 - 3], atol=0.5), shift
    in_first = matte.shift_map(est.alpha, np.median(est.offsets[:20], axis=0))  # group 1's coordinates
    assert np.abs(in_first - alphas[0]).mean() <= 0.01
    with pytest.raises(ValueError):
        matte.pool_crops([])


def test_groups_pool_positions_and_a_disagreeing_one_keeps_its_own():
    """estimate_groups pools the positions of one mark; a position showing another mark leaves."""
    a, _, alphas, _ = make_clip(20, 0.6, seed=21)
    b, _, _, _ = make_clip(20, 0.6, seed=22)
    parts = matte.estimate_groups([a, b, a[:1]])
    assert parts[2] is None  # one crop: nothing to estimate from
    assert parts[0].estimate is parts[1].estimate and parts[0].scope == "pool"
    assert (parts[0].start, parts[1].start) == (0, 20)
    assert np.abs(matte.shift_map(parts[0].estimate.alpha, parts[0].estimate.offsets[0]) - alphas[0]).mean() <= 0.01

    # A third position where the "mark" changes shape every frame (not the mark: animation, a
    # false detection) spoils the pool (under a stricter residual limit it is unreliable): the
    # position whose own estimate fits leaves and keeps it; the others are re-estimated together.
    a, _, alphas, _ = make_clip(40, 0.6, seed=21)
    b, _, _, _ = make_clip(40, 0.6, seed=22)  # a texture the estimate fits poorly on its own
    bad, _, _, _ = make_clip(60, 0.6, seed=23, changing=True)
    parts = matte.estimate_groups([a, b, bad], max_residual=0.5)
    assert parts[0].scope == "position" and parts[0].estimate.reliable and parts[0].start == 0
    assert np.abs(matte.shift_map(parts[0].estimate.alpha, parts[0].estimate.offsets[0]) - alphas[0]).mean() <= 0.01
    assert parts[1].estimate is parts[2].estimate is not parts[0].estimate
    assert parts[1].estimate.frame_opacity.shape == (100,) and parts[2].start == 40
    assert not parts[2].estimate.reliable  # so the pipeline box-inpaints those positions

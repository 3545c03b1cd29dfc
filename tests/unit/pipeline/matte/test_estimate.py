"""Matte estimation (``estimate_matte``) on generated crops whose true alpha is known."""

from __future__ import annotations

import time

import numpy as np
import pytest

from orchestrator.pipeline import matte
from matte_support import H, W, make_clip


def test_alpha_estimate_close_to_truth():
    crops, _, alphas, _ = make_clip(60, 0.6)
    t0 = time.perf_counter()
    est = matte.estimate_matte(crops)
    elapsed = time.perf_counter() - t0
    assert est.reliable, est.reason
    true_alpha = alphas[0]
    mae = float(np.abs(est.alpha - true_alpha).mean())
    inside = true_alpha > 0.05
    mae_inside = float(np.abs(est.alpha - true_alpha)[inside].mean())
    print(f"alpha MAE {mae:.4f} (inside {mae_inside:.4f}), W {est.color}, {elapsed*1000:.0f} ms")
    assert mae <= 0.03
    assert mae_inside <= 0.05
    assert np.all(np.abs(est.color - 255) < 12)
    assert np.allclose(np.median(est.frame_opacity), 1.0)
    assert np.all(est.frame_ok)


def test_coloured_mark():
    crops, clean, alphas, _ = make_clip(60, 0.6, seed=10, color=(250.0, 200.0, 40.0))
    est = matte.estimate_matte(crops)
    assert est.reliable, est.reason
    assert np.abs(est.color - [250, 200, 40]).max() < 15, est.color
    assert np.abs(est.alpha - alphas[0]).mean() <= 0.03


@pytest.mark.parametrize("case", ["few", "changing", "noise", "static"])
def test_unreliable_estimates_say_why(case):
    rng = np.random.default_rng(6)
    if case == "few":
        crops = make_clip(4, 0.6)[0]
    elif case == "changing":
        crops = make_clip(40, 0.6, seed=7, changing=True)[0]
    elif case == "noise":
        crops = rng.integers(0, 256, size=(40, H, W, 3), dtype=np.uint8)
    else:  # a static background: mark and background cannot be told apart
        crops = np.repeat(make_clip(1, 0.6)[0], 30, axis=0)
    est = matte.estimate_matte(crops)
    assert not est.reliable
    assert est.reason and est.reason != "ok"
    print(case, est.reason)


def test_bad_input_is_a_clear_error():
    with pytest.raises(ValueError):
        matte.estimate_matte(np.zeros((10, 20, 20), np.uint8))
    est = matte.estimate_matte(make_clip(20, 0.6)[0])
    with pytest.raises(ValueError):
        matte.remove_with_matte(np.zeros((10, 10, 3), np.uint8), est)


def test_clean_references_improve_the_estimate_and_marked_ones_are_dropped():
    """A clean window from a nearby frame (the mark just left) replaces the fill's guess."""
    crops, clean, alphas, _ = make_clip(24, 0.5, seed=31)
    rng = np.random.default_rng(5)
    # references: the clean background one frame earlier (the camera moved by a few px since)
    refs = {k: np.clip(np.rint(clean[k - 1] + rng.normal(0, 1.5, clean[k].shape)), 0, 255).astype(np.uint8)
            for k in range(1, 24, 2)}
    plain = matte.estimate_matte(crops)
    with_refs = matte.estimate_matte(crops, references=refs)
    assert plain.references == 0 and with_refs.references == len(refs), with_refs.summary()

    def error(est):
        return float(np.abs(matte.shift_map(est.alpha, est.offsets[0]) - alphas[0]).mean())

    assert error(with_refs) < 0.8 * error(plain), (error(with_refs), error(plain))
    # a "reference" that shows the mark (the detector missed a faint fade) is not used
    marked = matte.estimate_matte(crops, references={k: crops[k - 1] for k in range(1, 24, 2)})
    assert marked.references == 0

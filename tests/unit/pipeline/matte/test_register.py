"""Registration of the mark across crops (``register``)."""

from __future__ import annotations

import numpy as np

from orchestrator.pipeline import matte
from matte_support import make_clip


def test_registration_recovers_jitter():
    crops, _, _, true = make_clip(40, 0.6, seed=2, jitter=3.0)
    est_off = matte.register(crops)
    # offsets are relative to a common reference: compare after removing the mean difference
    diff = est_off - true
    diff -= np.median(diff, axis=0)
    assert np.abs(diff).max() <= 0.5, np.abs(diff).max()
    # and the matte estimated from jittered crops is still sharp enough to invert
    est = matte.estimate_matte(crops, offsets=est_off)
    assert est.reliable, est.reason


def test_registration_integer_boxes():
    rng = np.random.default_rng(5)
    crops, _, _, _ = make_clip(30, 0.6, seed=3)
    shifts = rng.integers(-3, 4, size=(30, 2))
    shifted = np.stack([np.roll(c, tuple(s), axis=(0, 1)) for c, s in zip(crops, shifts)])
    off = matte.register(shifted)
    diff = off - shifts
    diff -= np.round(np.median(diff, axis=0))
    assert np.abs(diff).max() <= 0.5

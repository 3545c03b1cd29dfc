"""The matte gate judged again after temporal propagation (``VisitTracker.rejected``/``passes``,
``remove._rechecked``): a textured background under a slightly blurred (pooled) matte, as on the
tuning ceilings, where one frame's inversion keeps the mark's fine pattern but the neighbours' looks
average it away (bench/README.md, "Textured backgrounds")."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from orchestrator.pipeline import matte
from orchestrator.pipeline.marks import MarkKey, MarkPlan
from orchestrator.pipeline.matte import track
from orchestrator.pipeline.matte.image import fill_rgb
from orchestrator.pipeline.remove import Propagation, plan_frame
from tests.unit.pipeline.propagate_support import FH, FW, WINDOW, frames, inner_box, observed, psnr

N = 24
T = 12


def _removed(blur: float, *, recheck: bool = True, offset=(0.0, 0.0), noise: float = 4.0, register: bool = True,
             monkeypatch: pytest.MonkeyPatch):
    """(the frame's EditArea, the tracker, the window's truth, the plan) for frame T, the plan's
    matte blurred by ``blur`` px and moved by ``offset``."""
    monkeypatch.setattr(track, "RECHECK_PROPAGATED", recheck)
    if not register:  # the per-frame registration defeated: the candidate stays misregistered
        monkeypatch.setattr(track, "_register", lambda crop, estimate, off: np.asarray(off, np.float32))
    marked, clean, plan = frames(N, noise=noise)
    alpha = gaussian_filter(plan.estimate.alpha, blur) if blur else plan.estimate.alpha
    plan = MarkPlan(replace(plan.estimate, alpha=alpha.astype(np.float32)), plan.window,
                    plan.offset + np.asarray(offset, np.float32))
    key = MarkKey.region(0)
    prop = observed(marked, plan, key=key)
    x0, y0, w, h = WINDOW
    box = inner_box()
    tracker = matte.VisitTracker(chroma_subsampled=False)
    area = plan_frame(lambda a, b, c, d: marked[T][b:d, a:c].copy(), FW, FH, box, [key], {key: plan}, [64, 128],
                      0.1, tracker=tracker, propagation=Propagation(prop, T))
    return area, tracker, clean[T][y0 : y0 + h, x0 : x0 + w], plan


def _window(area) -> np.ndarray:
    x0, y0, w, h = WINDOW
    ry, rx = y0 - area.roi[1], x0 - area.roi[0]
    return area.rgb[ry : ry + h, rx : rx + w]


def test_a_rejected_frame_whose_propagated_result_shows_no_ghost_is_inverted(monkeypatch):
    area, tracker, truth, plan = _removed(0.6, monkeypatch=monkeypatch)
    assert area.matte_marks == 1 and tracker.counts["rejected"] == 0 and tracker.counts["propagated"] == 1
    mark = plan.estimate.alpha > 0.02
    done = mark & ~np.any([c.hole is not None for c in area.crops])  # (no box crop)
    x0, y0, w, h = WINDOW
    box = np.zeros((h, w), bool)
    box[4:-4, 4:-4] = True
    smooth = fill_rgb(np.asarray(truth, np.float32), ~box)  # a smooth box fill, even from the clean frame
    got = psnr(_window(area), truth, done)
    print(f"blurred matte, propagated: {got:.1f} dB, a smooth box fill {psnr(smooth, truth, done):.1f}")
    assert got > 30.0 and got > psnr(smooth, truth, done) + 8
    # with the re-check off the same frame's box goes to the inpainter, as before
    off, tracker_off, _, _ = _removed(0.6, recheck=False, monkeypatch=monkeypatch)
    assert off.matte_marks == 0 and tracker_off.counts["rejected"] == 1
    assert all(c.hole is None for c in off.crops)  # the whole box inpainted


def test_a_matte_the_looks_cannot_fix_stays_rejected(monkeypatch):
    area, tracker, _, _ = _removed(0.8, monkeypatch=monkeypatch)  # the propagated result keeps 0.22
    assert area.matte_marks == 0 and tracker.counts["rejected"] == 1 and "propagated" not in tracker.counts


def test_a_misregistered_candidate_that_adds_texture_is_refused(monkeypatch):
    """Registration defeated, the matte 1 px off: the looks smear the ghost (its score passes) but the
    result carries 5x the background's fine texture: refused (``TEXTURE_RATIO_MAX``)."""
    area, tracker, _, _ = _removed(0.0, offset=(0.0, 1.0), noise=2.0, register=False, monkeypatch=monkeypatch)
    assert area.matte_marks == 0 and tracker.counts["rejected"] == 1

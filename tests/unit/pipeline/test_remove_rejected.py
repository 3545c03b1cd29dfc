"""Frames the matte gate rejects, on flat backgrounds: a stripe under the mark, the letters' gaps."""

from __future__ import annotations

import numpy as np

from orchestrator.pipeline import matte
from orchestrator.pipeline.marks import MarkPlan
from orchestrator.pipeline.matte.image import dilate_mask, fill_rgb
from orchestrator.pipeline.matte.linefill import choose_line_fill, line_fill
from orchestrator.pipeline.remove import rejected_fill
from tests.unit.pipeline.matte.matte_support import mark_alpha, psnr

H, W = 90, 190
BOX = (15, 12, 175, 78)  # the mark's box in the window (x0, y0, x1, y1), the support + 3 px


def _wall(seed: int, stripe: bool) -> np.ndarray:
    """A bright wall: a gentle gradient and blob, fine grain, optionally a dark vertical stripe."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    wall = 200.0 + 0.08 * xx - 0.05 * yy + 6.0 * np.exp(-((xx - 70) ** 2 + (yy - 40) ** 2) / 900.0)
    if stripe:
        wall -= 70.0 * np.clip(1.0 - np.abs(xx - 92.0) / 7.0, 0.0, 1.0) ** 0.5
    img = np.repeat(wall[..., None], 3, -1) * np.array([1.0, 0.96, 0.9], np.float32)
    return np.clip(img + rng.normal(0, 1.5, img.shape), 0, 255).astype(np.float32)


def _marked(clean: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed + 100)
    a = mark_alpha(H, W, 45, 95) * 0.78
    obs = a[..., None] * 255.0 + (1 - a[..., None]) * clean + rng.normal(0, 2.0, clean.shape)
    return np.clip(np.rint(obs), 0, 255).astype(np.uint8), a


def _plan(a: np.ndarray) -> MarkPlan:
    est = matte.MatteEstimate(alpha=a, color=matte.WHITE, frame_opacity=np.ones(1, np.float32),
                              residual=np.zeros(1, np.float32), reliable=True, reason="ok",
                              alpha_threshold=0.9, max_residual=0.5,
                              support=dilate_mask(a > 0.02, 4))  # a pooled support: grown, ~80 % of the box
    return MarkPlan(est, (100, 50, W, H), np.zeros(2, np.float32))


def _box_mask() -> np.ndarray:
    m = np.zeros((H, W), bool)
    m[BOX[1] : BOX[3], BOX[0] : BOX[2]] = True
    return m


def test_a_stripe_under_the_mark_is_carried_across_the_box():
    for seed in (1, 2, 3):
        clean = _wall(seed, stripe=True)
        marked, a = _marked(clean, seed)
        plan = _plan(a)
        got = rejected_fill(plan, plan.offset, marked, (115, 62, 275, 128))
        assert got is not None and not got.inverted and not got.hole.any()
        inside = a > 0.02
        smooth = fill_rgb(marked.astype(np.float32), ~_box_mask())  # what a box inpainter's push-pull gives
        ours, theirs = psnr(got.rgb, clean, inside), psnr(smooth, clean, inside)
        assert ours >= 33.0 and ours >= theirs + 6.0, (seed, ours, theirs)


def test_a_flat_wall_keeps_the_smooth_fill_and_only_the_mark_becomes_a_hole():
    """(``support_hole``, off by default: the box goes to the inpainter)"""
    for seed in (1, 2, 3):
        clean = _wall(seed, stripe=False)
        marked, a = _marked(clean, seed)
        assert choose_line_fill(marked, _box_mask()) is None
        plan = _plan(a)
        got = rejected_fill(plan, plan.offset, marked, (115, 62, 275, 128), support_hole=True)
        assert got is not None and not got.inverted
        support = a > 0.02
        assert (got.hole >= (a > 0.05)).all() and got.hole.sum() < 0.6 * _box_mask().sum()
        assert got.hole.sum() < 0.9 * plan.estimate.support.sum()  # not the (grown) support
        np.testing.assert_array_equal(got.rgb, marked)  # the inpainter fills the hole
        inside = support
        by_support = fill_rgb(marked.astype(np.float32), ~got.hole)
        by_box = fill_rgb(marked.astype(np.float32), ~_box_mask())
        assert psnr(by_support, clean, inside) >= psnr(by_box, clean, inside) + 1.0


def test_a_box_reaching_outside_the_window_or_without_a_stripe_is_left_to_the_box_inpainter():
    clean = _wall(1, stripe=True)
    marked, a = _marked(clean, 1)
    plan = _plan(a)
    assert rejected_fill(plan, plan.offset, marked, (95, 62, 275, 128)) is None
    flat, a = _marked(_wall(1, stripe=False), 1)
    assert rejected_fill(plan, plan.offset, flat, (115, 62, 275, 128)) is None


def test_line_fill_interpolates_rows_and_columns_exactly_on_a_plane():
    yy, xx = np.mgrid[0:40, 0:60].astype(np.float32)
    plane = np.repeat((50 + 1.5 * xx + 0.7 * yy)[..., None], 3, -1)
    known = ~dilate_mask(np.pad(np.ones((10, 30), bool), ((15, 15), (15, 15))), 0)
    got = line_fill(plane, known)
    assert np.abs(got - plane).max() < 1e-3


def test_dark_pupils_inside_the_body_join_the_hole_and_do_not_bleed_into_the_fill():
    """The pupils' white coverage is ~0: left known inside the body's hole they were filled from."""
    clean = _wall(1, stripe=False)
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    body = np.clip(15.5 - np.hypot(yy - 45, xx - 95), 0, 1) * 0.78
    pupils = (np.hypot(yy - 45, xx - 89) < 3.5) | (np.hypot(yy - 45, xx - 101) < 3.5)
    white = np.where(pupils, 0.0, body).astype(np.float32)  # the estimate's (white) alpha
    marked = white[..., None] * 255.0 + (1 - body[..., None]) * clean  # pupils: black at the body's alpha
    marked = np.clip(np.rint(marked), 0, 255).astype(np.uint8)
    plan = _plan(white)
    got = rejected_fill(plan, plan.offset, marked, (175, 76, 216, 115), support_hole=True)
    assert got is not None and got.hole[pupils].all()
    filled = fill_rgb(marked.astype(np.float32), ~got.hole)
    assert psnr(filled, clean, body > 0) >= 38.0

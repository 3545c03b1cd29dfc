"""Temporal propagation (``propagate``) on generated frames: a textured scene panning under a fixed
white mark, whose clean frames and camera path are known."""

from __future__ import annotations

import numpy as np

from orchestrator.pipeline import matte
from orchestrator.pipeline.propagate import Propagator, PropagateParams, _ring, _translation
from tests.unit.pipeline.propagate_support import FH, FW, WINDOW, frames, inner_box, observed, psnr, shift

N = 24


def _own(crop: np.ndarray, plan):
    opacity, _ = matte.fit_opacity(crop, plan.estimate)
    return matte.remove_with_matte(crop, plan.estimate, opacity)


def _window(image: np.ndarray) -> np.ndarray:
    x0, y0, w, h = WINDOW
    return image[y0 : y0 + h, x0 : x0 + w]


def test_panning_texture_is_recovered_far_better_than_one_frames_inversion():
    marked, clean, plan = frames(N)
    prop = observed(marked, plan)
    mask = plan.estimate.alpha > 0.02
    fused_db, own_db, plain_db = [], [], []
    for t in (6, 12, 18):
        crop, truth = _window(marked[t]), _window(clean[t])
        own, hole = _own(crop, plan)
        plain, _ = matte.remove_with_matte(crop, plan.estimate, 1.0, noise_sigma=None, hole_variance=None)
        fused = prop.fuse(t, "k", plan, plan.offset, crop, own, hole)
        assert fused is not None and fused.looks >= 10
        fused_db.append(psnr(fused.rgb, truth, mask))
        own_db.append(psnr(own, truth, mask))
        plain_db.append(psnr(plain, truth, mask))
    # noise 2 grey levels through a gain of 5: ~22-23 dB for one frame; the clean frame ~42 dB
    assert min(fused_db) > 36.0, fused_db
    assert min(np.subtract(fused_db, own_db)) > 10.0 and min(np.subtract(fused_db, plain_db)) > 10.0
    assert prop.counts["fused"] == 3 and prop.counts["static"] == 0


def test_pixels_off_the_mark_are_never_altered():
    marked, _, plan = frames(N)
    prop = observed(marked, plan)
    crop = _window(marked[12])
    own, hole = _own(crop, plan)
    fused = prop.fuse(12, "k", plan, plan.offset, crop, own, hole)
    off = ~(plan.estimate.support | hole)
    assert fused is not None and off.any()
    np.testing.assert_array_equal(fused.rgb[off], own[off])


def test_static_camera_falls_back_to_the_frames_own_result():
    marked, _, plan = frames(N, speed=(0.0, 0.0), wobble=0.0)
    prop = observed(marked, plan)
    crop = _window(marked[12])
    own, hole = _own(crop, plan)
    assert prop.fuse(12, "k", plan, plan.offset, crop, own, hole) is None
    assert prop.counts == {**prop.counts, "fused": 0, "static": 1}


def test_opaque_core_is_filled_from_frames_that_saw_the_background():
    marked, clean, plan = frames(N, opacity=0.97, speed=(2.0, 1.0))
    prop = observed(marked, plan)
    crop, truth = _window(marked[12]), _window(clean[12])
    own, hole = _own(crop, plan)
    fused = prop.fuse(12, "k", plan, plan.offset, crop, own, hole)
    assert hole.sum() > 200 and fused is not None
    filled = hole & ~fused.hole
    assert filled.sum() > 0.8 * hole.sum()  # the core moved over background the others saw
    assert psnr(fused.rgb, truth, filled) > 34.0


def test_only_looks_of_the_same_visit_are_used():
    marked, _, plan = frames(N)
    prop = observed(marked, plan, skip=(10,))  # frame 10 has no look: a visit ends at 9
    crop = _window(marked[12])
    own, hole = _own(crop, plan)
    fused = prop.fuse(12, "k", plan, plan.offset, crop, own, hole)
    assert fused is not None and fused.looks <= N - 11


def test_ring_translation_matches_the_camera_within_0_15_px():
    marked, _, plan = frames(N)
    prop = observed(marked, plan)
    track = prop._tracks["k"]
    ref = track.looks[12]
    ring = _ring(plan, prop.params.margin, ref, plan.offset, prop.params.ring_gap)
    for s in (4, 11, 20):
        init = track.position[12] - track.position[s]
        assert np.abs(init - shift(12, s)).max() < 0.25  # the chain of consecutive fits
        d, rms = _translation(ref, track.looks[s], ring, ring, init)
        assert np.abs(d[:2] - shift(12, s)).max() < 0.15 and abs(d[2]) < 2e-3, (s, d, shift(12, s))
        assert rms < 5.0


def test_forget_bounds_the_buffer():
    marked, _, plan = frames(N)
    prop = observed(marked, plan)
    prop.forget(20)
    assert sorted(prop._tracks["k"].looks) == [20, 21, 22, 23]


def test_plan_frame_pastes_the_fused_window_and_sends_fewer_pixels_to_the_inpainter():
    from orchestrator.pipeline.marks import MarkKey
    from orchestrator.pipeline.remove import Propagation, plan_frame

    marked, clean, plan = frames(N, opacity=0.97, speed=(2.0, 1.0))
    key = MarkKey.region(0)
    prop = observed(marked, plan, key=key)
    x0, y0, w, h = WINDOW
    box = inner_box()
    args = (FW, FH, box, [key], {key: plan}, [64, 128], 0.1)
    alone = plan_frame(lambda a, b, c, d: marked[12][b:d, a:c].copy(), *args)
    fused = plan_frame(lambda a, b, c, d: marked[12][b:d, a:c].copy(), *args,
                       propagation=Propagation(prop, 12))
    assert alone is not None and fused is not None and fused.matte_marks == 1
    assert sum(c.hole.sum() for c in fused.crops) < 0.2 * sum(c.hole.sum() for c in alone.crops)
    mask = (plan.estimate.alpha > 0.02) & (plan.estimate.alpha < 0.9)  # inverted, not inpainted
    ry, rx = y0 - fused.roi[1], x0 - fused.roi[0]
    got = fused.rgb[ry : ry + h, rx : rx + w]
    assert psnr(got, _window(clean[12]), mask) > psnr(alone.rgb[ry : ry + h, rx : rx + w], _window(clean[12]), mask) + 8


def test_flat_background_keeps_the_frames_own_result():
    marked, _, plan = frames(N, flat=True)
    prop = observed(marked, plan)
    crop = _window(marked[12])
    own, hole = _own(crop, plan)
    assert prop.fuse(12, "k", plan, plan.offset, crop, own, hole) is None
    assert prop.counts["flat"] == 1 and prop.counts["fused"] == 0


def _region(plan) -> np.ndarray:
    from orchestrator.pipeline.matte.image import dilate_mask
    from orchestrator.pipeline.propagate_fit import support_of

    _, _, w, h = WINDOW
    region = np.zeros((h, w), bool)
    region[4:-4, 4:-4] = True
    return region | dilate_mask(support_of(plan, plan.offset), 2)


def test_a_rejected_frames_box_is_filled_where_neighbours_saw_the_background_unmarked():
    marked, clean, plan = frames(N, speed=(2.0, 1.0))
    prop = observed(marked, plan)  # no frame passed the gate: only unmarked pixels may be used
    crop, truth = _window(marked[12]), _window(clean[12])
    region = _region(plan)
    fused = prop.fill(12, "k", plan, plan.offset, crop, region)
    assert fused is not None and fused.looks >= 10
    filled = region & ~fused.hole
    mark = plan.estimate.alpha > 0.02
    assert (filled & mark).sum() > 0.4 * mark.sum()  # the core moved over background the others saw
    assert psnr(fused.rgb, truth, filled & mark) > 40.0  # a frame's raw noise (2 grey levels) is 42 dB
    np.testing.assert_array_equal(fused.rgb[~region], crop[~region])
    assert prop.counts["filled"] == 1


def test_a_rejected_frame_is_left_to_the_inpainter_where_the_looks_disagree():
    marked, _, plan = frames(N, speed=(2.0, 1.0))
    rng = np.random.default_rng(5)
    x0, y0, w, h = WINDOW
    for t, frame in enumerate(marked):  # water in the scene: new content in every frame
        dx, dy = np.rint(shift(12, t, speed=(2.0, 1.0))).astype(int)  # (moving with the camera)
        block = (slice(y0 + 20 + dy, y0 + 50 + dy), slice(x0 + 30 + dx, x0 + 90 + dx))
        frame[block] = rng.integers(0, 256, frame[block].shape, dtype=np.uint8)
    prop = observed(marked, plan)
    fused = prop.fill(12, "k", plan, plan.offset, _window(marked[12]), _region(plan))
    assert fused is not None
    inner = np.zeros((h, w), bool)
    inner[24:46, 34:86] = True  # the block, less the reach of the cubic warp
    assert fused.hole[inner].mean() > 0.95


def test_plan_frame_fills_a_box_the_gate_rejected_from_the_neighbours():
    from orchestrator.pipeline.marks import MarkKey
    from orchestrator.pipeline.remove import Propagation, plan_frame

    class Rejecting(matte.VisitTracker):
        def remove(self, key, crop, estimate, planned):
            return None

    marked, clean, plan = frames(N, speed=(2.0, 1.0))
    key = MarkKey.region(0)
    prop = observed(marked, plan, PropagateParams(fill_rejected=True), key=key)  # (off by default: bench/README.md)
    x0, y0, w, h = WINDOW
    box = inner_box()
    args = (FW, FH, box, [key], {key: plan}, [64, 128], 0.1)
    alone = plan_frame(lambda a, b, c, d: marked[12][b:d, a:c].copy(), *args, tracker=Rejecting())
    fused = plan_frame(lambda a, b, c, d: marked[12][b:d, a:c].copy(), *args, tracker=Rejecting(),
                       propagation=Propagation(prop, 12))
    assert alone is not None and alone.matte_marks == 0 and fused is not None and fused.matte_marks == 1
    default = Propagator()  # the fill is off by default: the whole box is inpainted
    for i in range(N):
        default.observe(i, key, plan, lambda x0, y0, x1, y1, i=i: marked[i][y0:y1, x0:x1], FW, FH)
    off = plan_frame(lambda a, b, c, d: marked[12][b:d, a:c].copy(), *args, tracker=Rejecting(),
                     propagation=Propagation(default, 12))
    assert off is not None and off.matte_marks == 0
    assert all(c.hole is None for c in alone.crops)  # the whole box inpainted
    assert sum(c.hole.sum() for c in fused.crops) < 0.5 * (w - 8) * (h - 8)
    ry, rx = y0 - fused.roi[1], x0 - fused.roi[0]
    got = fused.rgb[ry : ry + h, rx : rx + w]
    holes = np.zeros((h, w), bool)
    for c in fused.crops:
        cx0, cy0, cx1, cy1 = c.region(FW, FH)
        full = np.zeros((FH, FW), bool)
        full[cy0:cy1, cx0:cx1] = c.hole
        holes |= full[y0 : y0 + h, x0 : x0 + w]
    done = ~holes & (plan.estimate.alpha > 0.02)
    assert done.sum() > 300 and psnr(got, _window(clean[12]), done) > 40.0


def test_each_frame_pair_is_fitted_once_and_reused_reversed():
    marked, _, plan = frames(N)
    prop, fresh = observed(marked, plan), observed(marked, plan)
    results = {}
    for t in (12, 13):
        crop = _window(marked[t])
        own, hole = _own(crop, plan)
        results[t] = prop.fuse(t, "k", plan, plan.offset, crop, own, hole)
    pairs = prop._tracks["k"].pairs
    assert any(k[:2] == (12, 13) for k in pairs) and not any(k[:2] == (13, 12) for k in pairs)
    crop = _window(marked[13])
    own, hole = _own(crop, plan)
    alone = fresh.fuse(13, "k", plan, plan.offset, crop, own, hole)  # every pair fitted for frame 13
    assert alone is not None and results[13] is not None
    assert psnr(results[13].rgb, alone.rgb, np.ones(own.shape[:2], bool)) > 45.0


def test_a_zooming_camera_is_registered_with_its_zoom():
    marked, clean, plan = frames(N, zoom=0.001)  # 1.2 % over 12 frames: 1 px at the window's edge
    mask = plan.estimate.alpha > 0.02
    got = {}
    for zoom in (False, True):
        prop = observed(marked, plan, PropagateParams(zoom=zoom))
        crop = _window(marked[4])
        own, hole = _own(crop, plan)
        fused = prop.fuse(4, "k", plan, plan.offset, crop, own, hole)
        assert fused is not None
        got[zoom] = psnr(fused.rgb, np.clip(np.rint(_window(clean[4])), 0, 255), mask & ~fused.hole)
    assert got[True] > 42.0 and got[True] > got[False] + 4.0, got


def test_on_a_smooth_background_the_blend_distrusts_the_looks_more():
    from orchestrator.pipeline.matte.invert import prior_blend

    rng = np.random.default_rng(1)
    h, w = 40, 80
    yy, xx = np.mgrid[0:h, 0:w]
    crop = np.repeat((120 + 0.3 * xx + 6 * np.sin(xx / 3.0) * np.sin(yy / 4.0))[..., None], 3, -1).astype(np.float32)
    support = np.zeros((h, w), bool)
    support[12:28, 20:60] = True
    error = np.repeat(rng.normal(0, 6, (h, w))[..., None], 3, -1)  # the looks' shared (x264) error
    value, var = crop + error, np.full((h, w), 4.0, np.float32)  # the looks' spread says 2 grey levels
    plain = prior_blend(crop, support, value, var)
    smooth = prior_blend(crop, support, value, var, smooth_texture=80.0)

    def rms(x):
        return float(np.sqrt(((x - crop) ** 2)[support].mean()))

    assert rms(smooth) < 0.8 * rms(plain), (rms(smooth), rms(plain))
    textured = prior_blend(crop, support, value, var, smooth_texture=1e-3)  # below every texture: unchanged
    np.testing.assert_allclose(textured, plain, atol=1e-4)


def test_deblurring_is_fitted_off_the_mark_and_restores_texture_only_when_blurred():
    import cv2

    from bench.metrics import texture_score
    from orchestrator.pipeline.propagate_fit import deblur

    _, clean, plan = frames(2)
    truth = _window(clean[0]).astype(np.float32)
    rng = np.random.default_rng(2)
    own = truth + rng.normal(0, 2.0, truth.shape)
    mark = plan.estimate.alpha > 0.02
    blurred = cv2.GaussianBlur(truth, (0, 0), 0.7)
    sharp, beta = deblur(blurred, own, ~mark, 0.7, 0.6)
    assert beta > 0.2
    assert texture_score(sharp, truth, mark) > texture_score(blurred, truth, mark) + 0.1
    assert psnr(sharp, truth, mark) > psnr(blurred, truth, mark)
    _, beta = deblur(truth, own, ~mark, 0.7, 0.6)  # nothing blurred: nothing added
    assert beta < 0.05

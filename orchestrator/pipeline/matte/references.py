"""Clean references: the window without the mark (just before it arrived at a position or after it
left), registered onto the marked crops nearby, so their background is known instead of guessed."""

from __future__ import annotations

import logging

import numpy as np

from orchestrator.pipeline.matte.image import dilate_mask, fill_frames, to_planes
from orchestrator.pipeline.matte.params import PARAMS, MatteParams
from orchestrator.pipeline.matte.register import align, shift_map

LOGGER = logging.getLogger(__name__)


def reference_backgrounds(crops, offsets, references, support, alpha, color, params: MatteParams = PARAMS):
    """Backgrounds of the crops that have a clean reference, moved onto them: (index, bg, valid).

    The reference (the same window in a frame where the mark is absent) is registered to the crop
    with a translation found on the pixels around the mark (``cv2.findTransformECC``), then aligned
    like the crop. A reference that fails to register, or that shows the mark itself (a faint fade
    the detector missed), is dropped.
    """
    n, h, w = crops.shape[:3]
    ring = ~dilate_mask(support, 2)
    out_i, out_bg, out_valid = [], [], []
    for k, ref in references.items():
        if not 0 <= k < n or np.shape(ref) != crops.shape[1:]:
            continue
        ref = np.asarray(ref, np.float32)
        off = offsets[k]
        mask = shift_map(ring.astype(np.float32), off) > 0.5  # the ring in the crop's coordinates
        warp = _find_warp(crops[k], ref, mask, params)
        if warp is None:
            continue
        bg, valid = _move(ref, warp, off)
        o = _opacity_shown(ref, off, support, alpha, color)
        if o > params.reference_max_opacity:
            LOGGER.debug("matte reference for crop %d shows the mark (opacity %.2f): dropped", k, o)
            continue
        out_i.append(k)
        out_bg.append(bg)
        out_valid.append(valid)
    if not out_i:
        return np.zeros(0, np.int64), np.zeros((0, 3, h, w), np.float32), np.zeros((0, h, w), bool)
    return np.asarray(out_i), np.stack(out_bg), np.stack(out_valid)


def _find_warp(crop: np.ndarray, ref: np.ndarray, mask: np.ndarray, params: MatteParams):
    """ECC translation of ``ref`` onto ``crop`` on ``mask``; identity for a flat background that
    matches as it is; None when it neither registers nor matches."""
    import cv2  # the orchestrator's dependency (inpaint.py); imported here to keep the module light

    h, w = ref.shape[:2]
    luma = np.array([0.299, 0.587, 0.114], np.float32)
    crit = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 50, 1e-4)
    warp = np.eye(2, 3, dtype=np.float32)
    try:
        cc, warp = cv2.findTransformECC(crop.astype(np.float32) @ luma, ref @ luma, warp,
                                        cv2.MOTION_TRANSLATION, crit, mask.astype(np.uint8), 3)
    except cv2.error:  # does not converge, typically on a flat background
        cc = 0.0
    if cc < 0.5 or np.abs(warp[:, 2]).max() > min(h, w) / 4:
        # No texture to register on: where the background is that flat, the motion hardly
        # matters - keep the reference unmoved if it matches the frame around the mark.
        warp = np.eye(2, 3, dtype=np.float32)
        if float(np.sqrt(((crop.astype(np.float32) - ref)[mask] ** 2).mean())) > params.reference_flat_rms:
            return None
    return warp


def _move(ref: np.ndarray, warp: np.ndarray, off: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The reference warped and aligned like its crop: (background planes [3, h, w], valid [h, w])."""
    import cv2

    h, w = ref.shape[:2]
    flags = cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP
    moved = cv2.warpAffine(ref, warp, (w, h), flags=flags, borderMode=cv2.BORDER_REPLICATE)
    inside = cv2.warpAffine(np.ones((h, w), np.float32), warp, (w, h), flags=cv2.INTER_LINEAR
                            | cv2.WARP_INVERSE_MAP, borderValue=0.0)
    bg = to_planes(align(moved[None], off[None]))[0]
    valid = align(inside[None, ..., None].repeat(3, -1), off[None])[0, ..., 0] > 0.999
    return bg, valid


def _opacity_shown(ref, off, support, alpha, color) -> float:
    """The mark's opacity fitted on the reference with the current matte (0 when it has no core)."""
    ref_al = to_planes(align(ref[None], off[None]))
    filled = fill_frames(ref_al, ~support)
    core = support & (alpha > 0.05)
    if not core.any():
        return 0.0
    ag = alpha[core][None] * (color[:, None] - filled[0][:, core])
    return float(((ref_al[0][:, core] - filled[0][:, core]) * ag).sum() / max(float((ag * ag).sum()), 1e-6))


def fill_weights(x, fill, ref_idx, ref_bg, ref_valid, ref_share, support, n_eff) -> np.ndarray:
    """Per-frame weights [N, h, w] in independent-sample equivalents for the alpha fit.

    A reference image counts as one sample, shared by the ``ref_share`` crops it serves (their
    backgrounds are the same sample). A guessed frame gets ``e_ref / (e_ref + e_fill)`` times
    ``n_eff / N``: ``e_fill`` is how far the fill is from the references under the mark (mean
    square, over all of it: per pixel it would be one background's accident), ``e_ref`` how far a
    reference is from its frame around the mark anyway (noise, registration), and N guessed frames
    are worth ``n_eff`` independent ones (the fill errors of neighbouring frames are alike). On
    photos the fill is far off and the references decide.
    """
    n, _, h, w = x.shape
    valid = ref_valid & support[None]
    err = ((fill[ref_idx] - ref_bg) ** 2).mean(1)  # [K, h, w]
    ring = ref_valid & ~dilate_mask(support, 2)[None]
    e_ref = float(((x[ref_idx] - ref_bg) ** 2).mean(1)[ring].mean()) if ring.any() else 4.0
    e_ref = max(e_ref, 1.0)
    e_fill = float(np.median(err[valid])) if valid.any() else 0.0
    guessed = (max(1.0, n_eff) / n) * e_ref / (e_ref + e_fill)
    weight = np.full((n, h, w), guessed, np.float32)
    weight[ref_idx] = np.where(ref_valid, 1.0 / ref_share[:, None, None], guessed)
    return weight


def consistent(x, ref_idx, ref_bg, ref_valid, alpha, color, opacity, params: MatteParams = PARAMS) -> np.ndarray:
    """``ref_valid`` without the pixels the blend model cannot explain with the reference there:
    something moved between the reference and the frame (an object, not the camera)."""
    a = np.clip(alpha[None] * opacity[ref_idx, None, None], 0.0, 1.0)[:, None]
    r = np.abs(x[ref_idx] - a * color[None, :, None, None] - (1.0 - a) * ref_bg).mean(1)  # [K, h, w]
    return ref_valid & ~dilate_mask(r > params.reference_max_error, 2)



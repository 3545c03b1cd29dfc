"""Estimate a semi-transparent mark's alpha matte from the video itself and invert the blend.

Why: the mark attenuates the pixels under it instead of destroying them
(``observed = a*W + (1 - a)*background`` with ``a = alpha * opacity``). When the same mark sits over
many different backgrounds, its matte ``alpha`` and colour ``W`` can be estimated per video (Dekel
et al., CVPR 2017) and the blend inverted exactly; only the near-opaque core still needs the
inpainter. The background under the mark comes from a smooth fill around it and, where the mark
has just arrived or left, from clean references (the same window without it).

Modules, one concept each: ``params`` (tuning constants), ``image`` (numpy image ops),
``register`` (where the mark sits in each crop), ``sampling`` (crops and references from pass 1),
``solve`` (the blend model's least squares), ``references`` (clean backgrounds moved onto crops),
``estimate`` (the matte from crops), ``pool`` (one estimate for all positions), ``invert``
(removal on one frame).

Use: ``estimate_groups`` once per video, then per frame ``fit_opacity`` (skip frames whose residual
exceeds ``estimate.max_residual``) and ``remove_with_matte``; its ``hole`` goes to the inpainter.
``reliable=False`` (with ``reason``) means: inpaint the box.
"""

from orchestrator.pipeline.matte.estimate import MatteEstimate, estimate_matte
from orchestrator.pipeline.matte.invert import fit_opacity, remove_with_matte
from orchestrator.pipeline.matte.params import PARAMS, WHITE, MatteParams
from orchestrator.pipeline.matte.pool import GroupMatte, estimate_groups, pool_crops
from orchestrator.pipeline.matte.register import align, register, shift_map
from orchestrator.pipeline.matte.sampling import CropSampler, PositionCrops, Reference
from orchestrator.pipeline.matte.track import VisitTracker

__all__ = [
    "PARAMS", "WHITE", "CropSampler", "GroupMatte", "MatteEstimate", "MatteParams", "PositionCrops",
    "Reference", "align", "estimate_groups", "estimate_matte", "fit_opacity", "pool_crops", "register",
    "remove_with_matte", "shift_map", "VisitTracker",
]

"""Pooling: one estimate for the crops of all of a mark's positions, with a guard for a position
that disagrees (it keeps its own estimate).

Why pool: one position sees one slowly panning background (1-4 independent frames); the same mark
at its other positions sees unrelated backgrounds (bench/README.md).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from orchestrator.pipeline.matte.estimate import MatteEstimate, estimate_matte
from orchestrator.pipeline.matte.solve import fit_residual

LOGGER = logging.getLogger(__name__)


def pool_crops(groups: list[np.ndarray]) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """Stack the crops of several mark positions into one set for a single estimate.

    Each group [n_i, h_i, w_i, 3] is centre-cropped to the smallest h and w; returns (crops
    [sum n_i, h, w, 3], per group the (top, left) trim), so the pooled crop k of group g is
    ``group_g[k][top:top + h, left:left + w]``. ``register`` (called by ``estimate_matte``) absorbs
    the remaining shifts of the mark between groups.
    """
    groups = [np.asarray(g) for g in groups if len(g)]
    if not groups:
        raise ValueError("no crops to pool")
    for g in groups:
        if g.ndim != 4 or g.shape[-1] != 3:
            raise ValueError(f"each group must be [n, h, w, 3], got {g.shape}")
    h = min(g.shape[1] for g in groups)
    w = min(g.shape[2] for g in groups)
    trims = [((g.shape[1] - h) // 2, (g.shape[2] - w) // 2) for g in groups]
    pooled = np.concatenate([g[:, t : t + h, l : l + w] for g, (t, l) in zip(groups, trims)])
    return pooled, trims


@dataclass(frozen=True)
class GroupMatte:
    """The estimate one group of crops (one mark position) uses, and where its crops sit in it.

    Crop ``k`` of the group is ``estimate``'s frame ``start + k`` (its ``offsets``, ``residual``,
    ``frame_opacity``); in matte coordinates it is ``crop[top:top + h, left:left + w]`` with
    ``(top, left) = trim`` and ``(h, w) = estimate.alpha.shape``. ``scope`` is ``"pool"`` (shared
    with other positions) or ``"position"`` (its own).
    """

    estimate: MatteEstimate
    start: int
    trim: tuple[int, int]
    scope: str


def estimate_groups(groups: list[np.ndarray], references: list[dict[int, np.ndarray]] | None = None,
                    **kwargs) -> list[GroupMatte | None]:
    """One matte for the crops of all groups (a mark's positions); a position leaves the pool and
    uses its own estimate when that is reliable and the pooled one is unreliable or does not fit
    the position's crops (median residual above the pool's per-frame limit); the pool is then
    re-estimated from the positions left. Own estimates are only computed when the pool is in
    doubt, so the usual cost is one estimate. Groups with fewer than 2 crops get None.
    ``references[i]`` are group ``i``'s clean references by crop index (see ``estimate_matte``);
    ``kwargs`` go to ``estimate_matte``, which raises ValueError for crops too small for a matte.
    """
    refs = references or [{} for _ in groups]
    out: list[GroupMatte | None] = [None] * len(groups)
    live = [i for i, g in enumerate(groups) if len(g) >= 2]
    if not live:
        return out
    _estimate_pool(groups, refs, live, out, kwargs)
    if len(live) < 2:
        return out
    keep = [i for i in live if not _leaves_pool(groups, refs, i, out, kwargs)]
    if len(keep) < len(live) and keep:
        _estimate_pool(groups, refs, keep, out, kwargs)
    return out


def _estimate_pool(groups, refs, members: list[int], out: list, kwargs: dict) -> None:
    """One estimate from the pooled crops of ``members``; their ``out`` entries point into it."""
    scope = "pool" if len(members) > 1 else "position"
    crops, trims = pool_crops([np.asarray(groups[i]) for i in members])
    pooled_refs, start = {}, 0
    for i, (top, left) in zip(members, trims):
        hh, ww = crops.shape[1:3]
        pooled_refs.update({start + k: np.asarray(r)[top : top + hh, left : left + ww]
                            for k, r in refs[i].items()})
        start += len(groups[i])
    est = estimate_matte(crops, references=pooled_refs or None, **kwargs)
    start = 0
    for i, trim in zip(members, trims):
        out[i] = GroupMatte(est, start, (int(trim[0]), int(trim[1])), scope)
        start += len(groups[i])


def _leaves_pool(groups, refs, i: int, out: list, kwargs: dict) -> bool:
    """Whether position ``i`` does better on its own (then ``out[i]`` becomes its own estimate)."""
    part = out[i]
    pooled = part.estimate
    n = len(groups[i])
    mine = pooled.reference_index[(pooled.reference_index >= part.start)
                                  & (pooled.reference_index < part.start + n)]
    pooled_res = fit_residual(pooled.residual[part.start : part.start + n], mine - part.start)
    if pooled.reliable and pooled_res <= pooled.max_residual:
        return False
    own = estimate_matte(np.asarray(groups[i]), references=refs[i] or None, **kwargs)
    own_res = fit_residual(own.residual, own.reference_index)
    LOGGER.info("matte pool check: position %d, %d crops, pooled residual %.3f, own %.3f (%s)",
                i, n, pooled_res, own_res, "reliable" if own.reliable else own.reason)
    if own.reliable and own_res <= own.max_residual:
        out[i] = GroupMatte(own, 0, (0, 0), "position")
        return True
    return False

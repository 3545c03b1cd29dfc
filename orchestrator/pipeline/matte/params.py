"""The matte's tuning constants in one frozen object (measured on bench/quality.py; see bench/README.md)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# The Sora mark's colour: kept unless a fitted colour explains the frames clearly better.
WHITE = np.array([255.0, 255.0, 255.0], dtype=np.float32)


@dataclass(frozen=True)
class MatteParams:
    """Constants of the estimate, the inversion and the sampling of crops for the matte."""

    # --- estimation (``estimate_matte`` defaults)
    min_frames: int = 8  # fewer crops than this: no estimate
    alpha_threshold: float = 0.9  # a = alpha*opacity above this is always the opaque core
    max_residual: float = 0.75  # median misfit above which the fixed matte does not fit
    min_background_motion: float = 1.0  # grey levels: a static background cannot be separated
    iterations: int = 6  # background-guess refinements
    inner_rounds: int = 8  # alternating least-squares rounds per background guess
    min_fit_references: int = 3  # references needed before the fit is judged on them alone
    # --- clean references
    reference_flat_rms: float = 6.0  # an unregistrable (flat) reference is used unmoved within this
    reference_max_error: float = 25.0  # model error above which a reference pixel is not background
    reference_max_opacity: float = 0.25  # a reference must not show the mark
    reference_partners: int = 3  # marked frames paired with each clean reference in pass 1
    reference_span: int = 12  # a reference serves the sampled crops this many frames away
    # --- inversion (``remove_with_matte``)
    hole_alpha_min: float = 0.5  # below: always inverted; above: inpainted if the error is large
    hole_variance: float = 150.0  # expected error variance (grey levels^2) that makes a hole
    hole_se_free_alpha: float = 0.8  # with references, below this the hole test ignores the se
    alpha_shrink: float = 3.0  # standard errors alpha is shrunk by (fill-only estimates)
    reference_alpha_shrink: float = 1.0  # ... and with clean references
    ring_px: int = 4  # ring outside the mark whose texture tells the inversion's excess noise apart
    blend_radius: int = 2  # half-width of the Wiener blend's texture window
    # the Wiener blend's weights: "prior" by predicted errors (the fill's from the texture of a ring
    # around the mark, the inversion's from noise and matte error), "local" by the inversion's look
    blend: str = "prior"
    noise_hf_fraction: float = 0.4  # share of x264's noise variance a 3x3 high-pass sees
    # --- sampling (pass 1)
    crop_margin: float = 0.15  # a position's window: the first box grown by this (+4 px)


PARAMS = MatteParams()

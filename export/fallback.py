"""Weight-free inpainter: multi-scale push-pull with masked Jacobi smoothing, as an ONNX graph.

Used when LaMa weights are absent (offline machines, quick CPU trials). Same tensors as LaMa
(docs/CONTRACTS.md), so the orchestrator cannot tell them apart.

Algorithm (Gortler et al.'s push-pull, plus a harmonic relaxation):
- pull: build a pyramid by 2x2 averaging of the known pixels, each level keeping the weighted mean
  colour ``c`` and a confidence ``w`` = min(1, sum of the children's confidences);
- push: from the coarsest level down, ``f = w * c + (1 - w) * upsample(f_coarser)``, then a few
  Jacobi sweeps ``f = w * c + (1 - w) * mean3x3(f)`` that solve Laplace's equation inside the hole
  with the known pixels as boundary; so the fill is smooth, matches the border colours, and carries
  large-scale gradients across the hole instead of a flat colour.
It cannot invent texture (no learning); it is the offline default, not a LaMa replacement.

Re-create the committed assets with ``python -m export.fallback --all`` (needs torch).
"""

from __future__ import annotations

import argparse
import logging
import math
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from export.inpainter import UInt8Inpainter, export_onnx

LOGGER = logging.getLogger(__name__)

ASSETS = Path(__file__).resolve().parent / "assets"
CROPS = (512, 256)


def asset_path(crop: int) -> Path:
    return ASSETS / f"inpainter_fallback_{crop}.onnx"


class PushPullCore(nn.Module):
    """``forward(image01, hole) -> fill``; see the module docstring."""

    def __init__(self, crop: int, *, coarsest: int = 4, sweeps_coarse: int = 6, sweeps_fine: int = 3):
        super().__init__()
        if crop < coarsest or crop & (crop - 1):
            raise ValueError(f"crop must be a power of two >= {coarsest}, not {crop}")
        self.levels = int(math.log2(crop // coarsest))
        self.sweeps_coarse = sweeps_coarse
        self.sweeps_fine = sweeps_fine

    @staticmethod
    def _mean3(x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)

    def forward(self, image01: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
        eps = 1e-6
        weights = [1.0 - hole]
        colours = [image01]
        for _ in range(self.levels):
            w, c = weights[-1], colours[-1]
            w_sum = F.avg_pool2d(w, 2) * 4.0
            c_next = F.avg_pool2d(w * c, 2) * 4.0 / torch.clamp(w_sum, min=eps)
            weights.append(torch.clamp(w_sum, max=1.0))
            colours.append(c_next)
        # Coarsest level: a cell with no known pixel at all takes the crop's mean known colour.
        w, c = weights[-1], colours[-1]
        total = torch.clamp(w.sum(dim=(2, 3), keepdim=True), min=eps)
        mean = (w * c).sum(dim=(2, 3), keepdim=True) / total
        fill = w * c + (1.0 - w) * mean
        for level in range(self.levels - 1, -1, -1):
            w, c = weights[level], colours[level]
            fill = F.interpolate(fill, scale_factor=2.0, mode="bilinear", align_corners=False)
            known = w * c
            fill = known + (1.0 - w) * fill
            sweeps = self.sweeps_fine if level < 2 else self.sweeps_coarse
            for _ in range(sweeps):
                fill = known + (1.0 - w) * self._mean3(fill)
        return fill


def fallback_module(crop: int = 512) -> UInt8Inpainter:
    return UInt8Inpainter(PushPullCore(crop)).eval()


def export_fallback(out_path: Path | str, *, crop: int = 512) -> Path:
    """The weight-free inpainter for ``crop`` as ONNX (dynamic batch), written atomically."""
    start = time.monotonic()
    path = export_onnx(fallback_module(crop), out_path, crop=crop)
    LOGGER.info("exported fallback inpainter (crop %d) to %s in %.1f s", crop, path, time.monotonic() - start)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--all", action="store_true", help=f"re-create the committed assets {CROPS}")
    parser.add_argument("--crop", type=int, default=512)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    targets = [(c, asset_path(c)) for c in CROPS] if args.all else [(args.crop, args.out or asset_path(args.crop))]
    for crop, out in targets:
        export_fallback(out, crop=crop)
        print(f"wrote {out} ({out.stat().st_size / 1e3:.0f} kB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

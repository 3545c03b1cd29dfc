"""Inpainter export: uint8 ``image`` [B,3,S,S] + uint8 ``mask`` [B,1,S,S] -> uint8 ``output``.

Both inpainters (LaMa here, the weight-free one in ``export.fallback``) are a "core" that maps an
RGB image in [0, 1] and a {0, 1} hole mask to a prediction in [0, 1]; :class:`UInt8Inpainter` puts
the shared uint8 contract around it (docs/CONTRACTS.md): normalisation, mask > 127 = hole, rounding,
and compositing so that pixels outside the mask equal the input exactly.

CLI: ``python -m export.inpainter --weights PATH | --random-init [--crop 512] --out FILE``.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import onnx
import torch
from torch import nn

from export.files import atomic_output
from export.graphs import uint8_violations
from export.lama import LamaConfig, build_generator

LOGGER = logging.getLogger(__name__)

OPSET = 17
INPUT_NAMES = ("image", "mask")
OUTPUT_NAME = "output"


class UInt8Inpainter(nn.Module):
    """The uint8 graph contract around a float core ``core(image01, hole01) -> pred01``."""

    def __init__(self, core: nn.Module):
        super().__init__()
        self.core = core

    def forward(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        # UINT8 only at the edges (export.graphs): TensorRT takes a UINT8 input only into a Cast and
        # a UINT8 output only from one, so cast first, composite in float, cast last.
        image255 = image.to(torch.float32)
        hole = mask.to(torch.float32) > 127.0
        pred = self.core(image255 / 255.0, hole.to(torch.float32))
        pred = torch.round(torch.clamp(pred * 255.0, 0.0, 255.0))
        return torch.where(hole, pred, image255).to(torch.uint8)


class LamaCore(nn.Module):
    """LaMa's own input convention: masked image (holes zeroed) concatenated with the mask."""

    def __init__(self, generator: nn.Module):
        super().__init__()
        self.generator = generator

    def forward(self, image01: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
        return self.generator(torch.cat([image01 * (1.0 - hole), hole], dim=1))


def example_inputs(crop: int, batch: int = 1, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    image = torch.randint(0, 256, (batch, 3, crop, crop), dtype=torch.uint8, generator=gen)
    mask = torch.zeros((batch, 1, crop, crop), dtype=torch.uint8)
    mask[:, :, crop // 4 : crop // 2, crop // 8 : crop // 2] = 255
    return image, mask


def export_onnx(module: nn.Module, out_path: Path | str, *, crop: int) -> Path:
    """Export ``module`` (a :class:`UInt8Inpainter`) for a fixed ``crop`` with dynamic batch.

    Uses the TorchScript (legacy) exporter: with the matmul DFT the graph has only standard ops,
    and it is several times faster to export than the dynamo exporter. Written atomically.
    """
    if crop % 8:
        raise ValueError(f"crop must be a multiple of 8, not {crop}")
    out_path = Path(out_path)
    module = module.eval()
    with atomic_output(out_path) as tmp, torch.no_grad():
        torch.onnx.export(
            module,
            example_inputs(crop, batch=2),
            str(tmp),
            input_names=list(INPUT_NAMES),
            output_names=[OUTPUT_NAME],
            dynamic_axes={"image": {0: "batch"}, "mask": {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
            opset_version=OPSET,
            do_constant_folding=True,
            dynamo=False,
        )
        problems = uint8_violations(onnx.load(str(tmp)))
        if problems:
            raise ValueError("TensorRT could not build this graph: " + "; ".join(problems))
    return out_path


def lama_module(weights: Path | None = None, *, random_init: bool = False,
                config: LamaConfig = LamaConfig(), fft_impl: str = "matmul", seed: int = 0) -> UInt8Inpainter:
    if weights is None and not random_init:
        raise ValueError("give LaMa weights, or random_init=True for a random-init model (tests, timing)")
    return UInt8Inpainter(LamaCore(build_generator(weights, config=config, fft_impl=fft_impl, seed=seed))).eval()


def export_lama(out_path: Path | str, *, weights: Path | None, crop: int = 512, random_init: bool = False,
                config: LamaConfig = LamaConfig()) -> Path:
    """big-lama (or a narrower ``config`` for tests) as ONNX with the inpainter tensors."""
    start = time.monotonic()
    module = lama_module(weights, random_init=random_init, config=config)
    path = export_onnx(module, out_path, crop=crop)
    LOGGER.info("exported LaMa (%s, crop %d) to %s in %.1f s (%.1f MB)",
                "random init" if weights is None else weights, crop, path, time.monotonic() - start,
                path.stat().st_size / 1e6)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--weights", type=Path, help="LaMa best.ckpt, IOPaint big-lama.pt or a state dict")
    source.add_argument("--random-init", action="store_true", help="random weights (tests, timing)")
    parser.add_argument("--crop", type=int, default=512)
    parser.add_argument("--ngf", type=int, default=64, help="width (64 = big-lama)")
    parser.add_argument("--blocks", type=int, default=18, help="resnet blocks (18 = big-lama)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    start = time.monotonic()
    export_lama(args.out, weights=args.weights, crop=args.crop, random_init=args.random_init,
                config=LamaConfig(ngf=args.ngf, n_blocks=args.blocks))
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.1f} MB) in {time.monotonic() - start:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

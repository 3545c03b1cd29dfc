"""No-ghost benchmark (issue 15): the registry's Sora-mark clips, shipped code, honest metrics.

For each clip kind of ``export.clips`` (bright walls/skies, dark hair, textured ceilings,
saturated, pillarboxed portrait, 10 s revisits, username line, 1080p) it scores, inside the mark's
true pixels (``bench.metrics``): the clean clip through x264 (the ceiling), ffmpeg ``delogo`` and
box inpainting (the fallback ONNX) on the true boxes, the pipeline with the true boxes as
time-ranged regions (``detect=false``), and the pipeline end to end with default options (its own
detector) - both through a local Triton. Frames stream, so 1080p clips fit in memory.

Seeds: ``--seeds heldout`` (default: the registry's FROZEN held-out seeds, for reported tables)
or ``--seeds tuning`` / a comma list. Never tune on the held-out ones.

    .venv/bin/python -m bench.ghosts --kinds bright,textured --methods ceiling,delogo,regions
    .venv/bin/python -m bench.ghosts --json out.json     # every kind, every method, held-out seeds
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.metrics import MarkScores, meets_targets  # noqa: E402

LOGGER = logging.getLogger("bench.ghosts")
DEFAULT_KINDS = "bright,dark,textured,saturated,pillarbox,revisits_10s,username,1080p"
METHODS = ("ceiling", "delogo", "inpaint", "regions", "e2e")
MASK_ALPHA = 0.02  # a pixel belongs to the mark where its true alpha exceeds this


def stream_frames(path: Path, width: int, height: int, vf: str | None = None) -> Iterator[np.ndarray]:
    """Decode ``path`` frame by frame (RGB uint8) with the ffmpeg CLI, optionally through ``vf``."""
    cmd = ["ffmpeg", "-v", "error", "-i", str(path)] + (["-vf", vf] if vf else []) + [
        "-f", "rawvideo", "-pix_fmt", "rgb24", "-"]
    size = width * height * 3
    with subprocess.Popen(cmd, stdout=subprocess.PIPE) as proc:
        try:
            while True:
                buf = proc.stdout.read(size)
                if len(buf) < size:
                    return
                yield np.frombuffer(buf, np.uint8).reshape(height, width, 3)
        finally:
            proc.kill()


def _segments(boxes: list) -> Iterator[tuple[int, int, tuple]]:
    start = 0
    for i in range(1, len(boxes) + 1):
        if i == len(boxes) or boxes[i] != boxes[start]:
            if boxes[start] is not None:
                yield start, i, tuple(int(v) for v in boxes[start])
            start = i


def _dilate(box, px: int, width: int, height: int) -> tuple:
    x1, y1, x2, y2 = box
    return max(0, x1 - px), max(0, y1 - px), min(width, x2 + px), min(height, y2 + px)


def delogo_filter(boxes: list, width: int, height: int) -> str:
    parts = []
    for a, b, (x1, y1, x2, y2) in _segments(boxes):
        x1, y1, x2, y2 = max(1, x1), max(1, y1), min(width - 1, x2), min(height - 1, y2)
        parts.append(f"delogo=x={x1}:y={y1}:w={x2 - x1}:h={y2 - y1}:enable='between(n,{a},{b - 1})'")
    return ",".join(parts) or "null"


def regions_of(boxes: list, fps: float) -> list[dict]:
    """The true boxes as time-ranged regions (what a user with exact boxes would send)."""
    return [{"box": list(box), "start": a / fps, "end": b / fps} for a, b, box in _segments(boxes)]


def run_pipeline(clip, out: Path, workdir: Path, *, regions: bool) -> dict:
    from bench.quality import _e2e_server
    from orchestrator.pipeline.options import TaskOptions
    from orchestrator.pipeline.run import process_video

    _, settings = _e2e_server(workdir)
    truth = clip.truth
    boxes = [_dilate(b, 3, truth.width, truth.height) if b is not None else None for b in truth.boxes]
    opts = TaskOptions(regions=regions_of(boxes, truth.fps), detect=False) if regions else TaskOptions()
    return process_video(clip.marked, out, opts, settings=settings)


def score(frames: Iterator[np.ndarray], clip, marked_path: Path) -> dict:
    truth = clip.truth
    scores = MarkScores(with_ssim=True)
    marked = stream_frames(marked_path, truth.width, truth.height)
    for i, (out, inp) in enumerate(zip(frames, marked)):
        if i >= truth.n_frames:
            break
        mask = truth.alpha(i) > MASK_ALPHA if truth.boxes[i] is not None else None
        scores.add(out, truth.clean_frame(i), inp, mask)
    return scores.row()


def method_frames(name: str, clip, workdir: Path, info: dict) -> Iterator[np.ndarray]:
    truth = clip.truth
    w, h = truth.width, truth.height
    boxes = [_dilate(b, 3, w, h) if b is not None else None for b in truth.boxes]
    if name == "ceiling":
        return stream_frames(clip.clean, w, h)
    if name == "delogo":
        return stream_frames(clip.marked, w, h, delogo_filter(boxes, w, h))
    if name == "inpaint":
        from bench.quality import FALLBACK_ONNX, OnnxInpainter, box_mask

        fill = OnnxInpainter(FALLBACK_ONNX)
        return (f if b is None else fill(np.array(f), box_mask(b, h, w))
                for f, b in zip(stream_frames(clip.marked, w, h), boxes))
    out = workdir / f"{clip.marked.stem}_{name}.mp4"
    details = run_pipeline(clip, out, workdir, regions=name == "regions")
    info.update({"marks": details.get("marks"), "regions": details.get("regions"),
                 "matte_frames": details.get("matte_frames"), "fps": details.get("fps")})
    return stream_frames(out, w, h)


def _fmt(v, nd: int = 2) -> str:
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return "–"
    return "∞" if isinstance(v, float) and np.isinf(v) else f"{v:.{nd}f}"


def print_table(rows: list[dict]) -> None:
    print("| clip | method | PSNR in | SSIM in | remaining median | max | frames > 0.2 | texture | "
          "flicker added | targets missed |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    by = {(r["clip"], r["method"]): r for r in rows}
    for r in sorted(rows, key=lambda r: (r["clip"], METHODS.index(r["method"].split(" ")[0])
                                         if r["method"].split(" ")[0] in METHODS else 9, r["method"])):
        base = {m: by.get((r["clip"], m)) for m in ("delogo", "inpaint", "ceiling")}
        targets = ""
        if r["method"].split(" ")[0] in ("regions", "e2e"):
            misses = meets_targets(r, delogo=base["delogo"], inpaint=base["inpaint"], ceiling=base["ceiling"])
            targets = "; ".join(misses) or "all met"
        print(f"| {r['clip']} | {r['method']} | {_fmt(r['psnr_in'])} | {_fmt(r['ssim_in'], 3)} | "
              f"{_fmt(r['remaining_median'], 3)} | {_fmt(r['remaining_max'], 3)} | "
              f"{_fmt(r['ghost_share'] * 100, 0)} % | {_fmt(r['texture'])} | {_fmt(r['flicker_added'])} | {targets} |")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--kinds", default=DEFAULT_KINDS)
    p.add_argument("--seeds", default="heldout", help="heldout (frozen), tuning, or a comma list")
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--workdir", type=Path, default=None)
    p.add_argument("--json", type=Path, default=None)
    p.add_argument("--add", type=Path, default=None,
                   help="rows of an earlier run (its --json) to print beside: its baselines, and its "
                        "pipeline rows as '<method> (before)'")
    p.add_argument("-v", "--verbose", action="store_true")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    from export import clips as registry

    seeds = {"heldout": registry.HELDOUT_SEEDS, "tuning": registry.TUNING_SEEDS,
             "fresh": registry.FRESH_SEEDS}.get(args.seeds) or \
        tuple(int(s) for s in args.seeds.split(","))
    methods = [m for m in args.methods.split(",") if m]
    if set(methods) - set(METHODS):
        p.error(f"unknown methods {sorted(set(methods) - set(METHODS))}; one of {METHODS}")
    tmp = tempfile.TemporaryDirectory(prefix="bench-ghosts-") if args.workdir is None else None
    workdir = args.workdir or Path(tmp.name)
    rows: list[dict] = []
    try:
        for kind in [k for k in args.kinds.split(",") if k]:
            for seed in seeds:
                clip = registry.make(kind, seed, workdir / "clips")
                label = f"{kind} {seed} ({clip.truth.background})"
                for name in methods:
                    info: dict = {}
                    t0 = time.perf_counter()
                    row = score(method_frames(name, clip, workdir, info), clip, clip.marked)
                    rows.append({"clip": label, "method": name, **row, "seconds": time.perf_counter() - t0,
                                 "info": info})
                    LOGGER.info("%s %s: %s", label, name, rows[-1])
    finally:
        from bench.quality import _E2E

        if "server" in _E2E:
            _E2E["server"].stop()
        if tmp is not None:
            tmp.cleanup()
    if args.add is not None:
        for r in json.loads(args.add.read_text()):
            if r["method"] in ("regions", "e2e"):
                r = {**r, "method": f"{r['method']} (before)"}
            if (r["clip"], r["method"]) not in {(x["clip"], x["method"]) for x in rows}:
                rows.append(r)
    print_table(rows)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())

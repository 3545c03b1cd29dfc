"""Removal-quality benchmark on synthetic clips whose clean frames and true mark are known.

Why: "does the mark go away, and how close is the result to the real content" can only be
measured where the real content is known. Every method gets the SAME boxes (the true boxes,
dilated) so the numbers compare the fillers, not the detectors; ``--end-to-end`` then runs the real
pipeline (detector included) through a local Triton and scores detection as well.

Run (from the repository root)::

    .venv/bin/python bench/quality.py                      # all methods, opacities 0.3 .. 1.0
    .venv/bin/python bench/quality.py --lama model.onnx    # add a LaMa ONNX (inpainter tensors)
    .venv/bin/python bench/quality.py --end-to-end         # add the real pipeline via local Triton
    .venv/bin/python bench/quality.py --clips 2,3 --methods ceiling,delogo,auto   # a lean subset

Prints Markdown tables; ``--json PATH`` also writes the raw numbers. See bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from orchestrator.pipeline import matte  # noqa: E402

LOGGER = logging.getLogger("bench.quality")
FALLBACK_ONNX = ROOT / "export" / "assets" / "inpainter_fallback_256.onnx"
Box = tuple[int, int, int, int]


# --------------------------------------------------------------------------- video I/O


def decode_frames(path: Path, width: int, height: int) -> np.ndarray:
    """All frames as uint8 [T, H, W, 3] RGB, decoded by the ffmpeg CLI (one decoder for every method)."""
    cmd = ["ffmpeg", "-v", "error", "-i", str(path), "-f", "rawvideo", "-pix_fmt", "rgb24", "-"]
    out = subprocess.run(cmd, check=True, capture_output=True).stdout
    return np.frombuffer(out, np.uint8).reshape(-1, height, width, 3)


def run_delogo(path: Path, boxes: list[Box | None], width: int, height: int) -> np.ndarray:
    """ffmpeg ``delogo`` with the same boxes: one filter per run of frames with a constant box."""
    filters = []
    for (a, b), box in _segments(boxes):
        x1, y1, x2, y2 = box
        # delogo interpolates from the ring just outside the box: keep it inside the frame.
        x1, y1 = max(1, x1), max(1, y1)
        x2, y2 = min(width - 1, x2), min(height - 1, y2)
        filters.append(f"delogo=x={x1}:y={y1}:w={x2 - x1}:h={y2 - y1}:enable='between(n,{a},{b - 1})'")
    vf = ",".join(filters) if filters else "null"
    cmd = ["ffmpeg", "-v", "error", "-i", str(path), "-vf", vf, "-f", "rawvideo", "-pix_fmt", "rgb24", "-"]
    out = subprocess.run(cmd, check=True, capture_output=True).stdout
    return np.frombuffer(out, np.uint8).reshape(-1, height, width, 3)


def _segments(boxes: list[Box | None]) -> Iterator[tuple[tuple[int, int], Box]]:
    """Maximal runs [a, b) of consecutive frames with the same (non-None) box."""
    start = 0
    for i in range(1, len(boxes) + 1):
        if i == len(boxes) or boxes[i] != boxes[start]:
            if boxes[start] is not None:
                yield (start, i), boxes[start]
            start = i


def dilate_box(box: Box | None, px: int, width: int, height: int) -> Box | None:
    if box is None:
        return None
    x1, y1, x2, y2 = box
    return (max(0, x1 - px), max(0, y1 - px), min(width, x2 + px), min(height, y2 + px))


# --------------------------------------------------------------------------- fillers


class OnnxInpainter:
    """A square-crop inpainter with the project's tensors (``image``/``mask`` uint8 → ``output``)."""

    def __init__(self, path: Path) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 2
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        self.size = int(self.session.get_inputs()[0].shape[-1])
        self.name = Path(path).name

    def __call__(self, frame: np.ndarray, hole: np.ndarray) -> np.ndarray:
        """Fill ``hole`` (bool [H, W]) of ``frame``; a window of the model's size around the hole."""
        ys, xs = np.nonzero(hole)
        if ys.size == 0:
            return frame
        h, w = hole.shape
        s = self.size
        if ys.max() - ys.min() >= s or xs.max() - xs.min() >= s:
            return telea(frame, hole)  # larger than the model's crop: not this benchmark's case
        cy, cx = (ys.min() + ys.max()) // 2, (xs.min() + xs.max()) // 2
        y0 = int(np.clip(cy - s // 2, 0, max(0, h - s)))
        x0 = int(np.clip(cx - s // 2, 0, max(0, w - s)))
        crop = np.zeros((s, s, 3), np.uint8)
        mask = np.zeros((s, s), np.uint8)
        ch, cw = min(s, h - y0), min(s, w - x0)
        crop[:ch, :cw] = frame[y0 : y0 + ch, x0 : x0 + cw]
        mask[:ch, :cw] = hole[y0 : y0 + ch, x0 : x0 + cw] * 255
        out = self.session.run(["output"], {"image": crop.transpose(2, 0, 1)[None],
                                            "mask": mask[None, None]})[0][0].transpose(1, 2, 0)
        result = frame.copy()
        region = result[y0 : y0 + ch, x0 : x0 + cw]
        sel = hole[y0 : y0 + ch, x0 : x0 + cw]
        region[sel] = out[:ch, :cw][sel]
        return result


def telea(frame: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """OpenCV Telea on a window around the hole (radius 3)."""
    import cv2

    ys, xs = np.nonzero(hole)
    if ys.size == 0:
        return frame
    m = 12
    y0, y1 = max(0, ys.min() - m), min(hole.shape[0], ys.max() + m + 1)
    x0, x1 = max(0, xs.min() - m), min(hole.shape[1], xs.max() + m + 1)
    sub = cv2.inpaint(np.ascontiguousarray(frame[y0:y1, x0:x1]), hole[y0:y1, x0:x1].astype(np.uint8) * 255,
                      3, cv2.INPAINT_TELEA)
    out = frame.copy()
    out[y0:y1, x0:x1][hole[y0:y1, x0:x1]] = sub[hole[y0:y1, x0:x1]]
    return out


def box_mask(box: Box, height: int, width: int) -> np.ndarray:
    m = np.zeros((height, width), bool)
    x1, y1, x2, y2 = box
    m[y1:y2, x1:x2] = True
    return m


def box_method(filler: Callable[[np.ndarray, np.ndarray], np.ndarray]):
    """A method that fills each frame's whole box with ``filler``."""

    def run(frames: np.ndarray, boxes: list[Box | None], info: dict) -> Iterator[np.ndarray]:
        h, w = frames.shape[1:3]
        for frame, box in zip(frames, boxes):
            yield frame if box is None else filler(frame, box_mask(box, h, w))

    return run


class _RgbFrame:
    """A decoded frame for ``detect.scan`` when the frames are already RGB arrays."""

    def __init__(self, rgb: np.ndarray) -> None:
        self.rgb, self.height, self.width = rgb, rgb.shape[0], rgb.shape[1]

    def to_ndarray(self, format: str) -> np.ndarray:  # noqa: A002 - av.VideoFrame's signature
        return self.rgb


class _TruthDetector:
    """Stands in for the Triton detector in pass 1: answers each frame's given box."""

    def __init__(self, boxes: list[Box | None], batch: int) -> None:
        self.boxes, self.batch = boxes, batch

    def resize(self, decoded) -> int:
        return decoded.index

    def submit(self, images: list[int]) -> list[list[int]]:
        return [list(images)]

    def collect(self, futures: list[list[int]]) -> list[np.ndarray]:
        return [np.array([[*self.boxes[i], 0.9]], np.float64) if self.boxes[i] is not None
                else np.zeros((0, 5)) for f in futures for i in f]

    def detect(self, images: list[int]) -> list[np.ndarray]:
        return self.collect(self.submit(images)) if images else []


def _pipeline_plans(frames: np.ndarray, boxes: list[Box | None], settings) -> tuple:
    """The pipeline's pass 1 and planning on the given boxes: ``detect.scan`` (with a detector
    that answers them) reporting to ``matte.CropSampler``, the timeline, ``plan.plan_mattes``.
    Returns (timeline, plans, reports, seconds spent planning)."""
    from orchestrator.pipeline.decode import Decoded
    from orchestrator.pipeline.detect import scan, scan_params, timeline_of
    from orchestrator.pipeline.marks import Mark, MarkKey
    from orchestrator.pipeline.plan import plan_mattes

    t, h, w = frames.shape[:3]
    sampler = matte.CropSampler(per_position=settings.matte_crops)
    decoded = (Decoded(i, i, _RgbFrame(frames[i])) for i in range(t))
    result = scan(decoded, _TruthDetector(boxes, settings.detect_batch), scan_params(settings), listener=sampler)
    timeline = timeline_of(result, settings)
    marks = [Mark(MarkKey.position(i), box) for i, box in enumerate(timeline.positions)]
    t0 = time.perf_counter()
    plans, reports = plan_mattes(marks, sampler, w, h)
    return timeline, plans, reports, time.perf_counter() - t0


def matte_method(filler: Callable[[np.ndarray, np.ndarray], np.ndarray]):
    """``auto`` with the pipeline's own code: pass 1 and planning (``_pipeline_plans``) on the true
    boxes (``info["detections"]``: what a detector finds), then per frame ``remove.plan_frame`` on
    the given boxes (matte inversion where the plan fits the frame) and ``filler`` on the crops it
    leaves for the inpainter (whole boxes, matte holes)."""
    from orchestrator.pipeline.marks import MarkKey
    from orchestrator.pipeline.remove import plan_frame
    from orchestrator.settings import Settings

    settings = Settings.from_env({})

    def run(frames: np.ndarray, boxes: list[Box | None], info: dict) -> Iterator[np.ndarray]:
        h, w = frames.shape[1:3]
        timeline, plans, reports, t_plan = _pipeline_plans(frames, info.pop("detections", boxes), settings)
        estimates = {id(p.estimate): r.matte for p, r in ((plans.get(k), r) for k, r in reports.items())
                     if p is not None} or {k: r.matte for k, r in reports.items() if r.matte}
        info["segments"] = list(estimates.values())  # one entry per estimate (positions may share one)
        info["estimate_ms_per_crop"] = 1000 * t_plan / max(1, sum(m["frames"] for m in info["segments"]))
        positions = np.asarray(timeline.positions, np.float64).reshape(-1, 4)
        tracker = matte.VisitTracker()  # as pass 2 does: per-visit registration, the ghost gate
        t_inv, n_inv = 0.0, 0
        for frame, box in zip(frames, boxes):
            if box is None:
                yield frame
                continue
            # the mark this box shows: the position it overlaps most
            key = MarkKey.position(int(np.argmax(_iou(positions, box)))) if len(positions) else None
            out = frame.copy()
            t0 = time.perf_counter()
            area = plan_frame(lambda x0, y0, x1, y1, _o=out: _o[y0:y1, x0:x1], w, h, np.array([box]),
                              [key] if key is not None else [], plans, [256, 512], settings.inpaint_context,
                              tracker=tracker)
            if area is None or not area.matte_marks:
                info["box_frames"] = info.get("box_frames", 0) + 1
                yield filler(frame, box_mask(box, h, w))
                continue
            t_inv += time.perf_counter() - t0
            n_inv += 1
            info["matte_frames"] = info.get("matte_frames", 0) + 1
            hole = np.zeros((h, w), bool)
            for crop in area.crops:
                rx0, ry0, rx1, ry1 = crop.region(w, h)
                hole[ry0:ry1, rx0:rx1] |= crop.hole_mask(w, h)
            if hole.any():
                info["hole_px"] = info.get("hole_px", 0) + int(hole.sum())
                out = filler(out, hole)
            yield out
        info["inversion_ms_per_crop"] = 1000 * t_inv / max(1, n_inv)
        info["gate"] = dict(tracker.counts)

    return run


def _iou(boxes: np.ndarray, box: Box) -> np.ndarray:
    from orchestrator.pipeline.boxes import iou_matrix

    return iou_matrix(boxes, np.asarray(box, np.float64)[None])[:, 0]


# --------------------------------------------------------------------------- metrics


def _psnr(mse: float) -> float:
    return float("inf") if mse <= 0 else float(10 * np.log10(255.0**2 / mse))


@dataclass
class Scores:
    """Accumulates the metrics of one method on one clip, frame by frame."""

    psnr_in: list[float] = field(default_factory=list)
    ssim_in: list[float] = field(default_factory=list)
    sq_out: float = 0.0
    n_out: int = 0
    flicker: list[float] = field(default_factory=list)
    flicker_clean: list[float] = field(default_factory=list)
    _prev: tuple | None = None

    def add(self, out: np.ndarray, clean: np.ndarray, inp: np.ndarray, box: Box | None) -> None:
        from skimage.metrics import structural_similarity

        h, w = out.shape[:2]
        outside = np.ones((h, w), bool)
        if box is not None:
            x1, y1, x2, y2 = box
            outside[y1:y2, x1:x2] = False
            o = out[y1:y2, x1:x2].astype(np.float64)
            c = clean[y1:y2, x1:x2].astype(np.float64)
            self.psnr_in.append(_psnr(float(((o - c) ** 2).mean())))
            win = min(7, (min(y2 - y1, x2 - x1) // 2) * 2 + 1)
            self.ssim_in.append(float(structural_similarity(o, c, channel_axis=2, data_range=255.0,
                                                            win_size=win)))
            if self._prev is not None and self._prev[0] == box:
                self.flicker.append(float(np.abs(o - self._prev[1]).mean()))
                self.flicker_clean.append(float(np.abs(c - self._prev[2]).mean()))
            self._prev = (box, o, c)
        else:
            self._prev = None
        d = out[outside].astype(np.float64) - inp[outside].astype(np.float64)
        self.sq_out += float((d * d).sum())
        self.n_out += d.size

    def row(self) -> dict:
        fl, fc = float(np.mean(self.flicker or [0])), float(np.mean(self.flicker_clean or [0]))
        return {
            "psnr_in": float(np.mean(self.psnr_in)) if self.psnr_in else float("nan"),
            "ssim_in": float(np.mean(self.ssim_in)) if self.ssim_in else float("nan"),
            "psnr_out": _psnr(self.sq_out / max(1, self.n_out)),
            "flicker": fl,
            "flicker_clean": fc,
            "flicker_ratio": fl / fc if fc > 0 else float("nan"),
        }


def detection_scores(pred: list[np.ndarray], truth: list[Box | None], iou_thr: float = 0.5) -> dict:
    """Per-frame precision / recall / mean IoU of predicted boxes against the true box."""
    tp = fp = fn = 0
    ious = []
    for boxes, gt in zip(pred, truth):
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        if gt is None:
            fp += len(boxes)
            continue
        if len(boxes) == 0:
            fn += 1
            ious.append(0.0)
            continue
        g = np.asarray(gt, np.float64)
        ix = np.clip(np.minimum(boxes[:, 2], g[2]) - np.maximum(boxes[:, 0], g[0]), 0, None)
        iy = np.clip(np.minimum(boxes[:, 3], g[3]) - np.maximum(boxes[:, 1], g[1]), 0, None)
        inter = ix * iy
        union = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]) + (g[2] - g[0]) * (g[3] - g[1]) - inter
        iou = inter / np.maximum(union, 1e-9)
        best = float(iou.max())
        ious.append(best)
        if best >= iou_thr:
            tp += 1
            fp += len(boxes) - 1
        else:
            fn += 1
            fp += len(boxes)
    return {
        "precision": tp / max(1, tp + fp),
        "recall": tp / max(1, tp + fn),
        "mean_iou": float(np.mean(ious)) if ious else float("nan"),
    }


# --------------------------------------------------------------------------- end to end


def run_end_to_end(clip: Path, out_path: Path, workdir: Path) -> tuple[dict, list[np.ndarray] | None]:
    """The real pipeline through a local Triton; returns (details, per-frame boxes or None)."""
    from orchestrator.pipeline.options import TaskOptions
    from orchestrator.pipeline.run import process_video

    triton, settings = _e2e_server(workdir)
    details = process_video(clip, out_path, TaskOptions(), settings=settings)
    boxes = _e2e_boxes(clip, settings)
    return details, boxes


_E2E: dict = {}


def _e2e_server(workdir: Path):
    """Prepare a CPU model repository and start one local Triton for the whole run."""
    if "server" in _E2E:
        return _E2E["server"], _E2E["settings"]
    from orchestrator.settings import Settings
    from orchestrator.triton.local import LocalTriton, free_port

    repo = workdir / "model_repository"
    LOGGER.info("preparing the model repository in %s", repo)
    subprocess.run([sys.executable, "-m", "export.prepare", "--target", "cpu", "--offline",
                    "--repository", str(repo)], check=True, cwd=ROOT)
    models = tuple(p.name for p in repo.iterdir() if (p / "config.pbtxt").exists())
    server = LocalTriton(repo, http_port=free_port(), grpc_port=free_port(), metrics_port=free_port(),
                         runtime_dir=workdir / "triton-runtime", load_models=models)
    server.start(300)
    settings = Settings.from_env({}).with_overrides(triton_grpc_url=server.grpc_url, data_dir=workdir)
    _E2E.update(server=server, settings=settings)
    return server, settings


def _e2e_boxes(clip: Path, settings) -> list[np.ndarray] | None:
    """Per-frame boxes after temporal filling, from the pipeline's own pass 1 (same functions)."""
    from orchestrator.pipeline.decode import iter_frames, probe
    from orchestrator.pipeline.detect import detector_for, scan, scan_params, timeline_of
    from orchestrator.triton.client import TritonClient

    info = probe(clip, max_width=settings.max_width, max_height=settings.max_height,
                 max_duration_s=settings.max_duration_s)
    client = TritonClient.from_settings(settings)
    try:
        result = scan(iter_frames(clip), detector_for(client, info.width, info.height, settings),
                      scan_params(settings))
        timeline = timeline_of(result, settings)
        return [timeline.boxes_at(i) for i in range(result.n_frames)]
    finally:
        client.close()


# --------------------------------------------------------------------------- main


def _fmt(v: float, nd: int = 2) -> str:
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return "–"
    if isinstance(v, float) and np.isinf(v):
        return "lossless"
    return f"{v:.{nd}f}"


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--opacities", default="0.3,0.5,0.7,0.9,1.0")
    p.add_argument("--clips", default=None,
                   help="comma list of clip indices (0-based, into --opacities) to run; seeds and "
                        "backgrounds stay those of the full run (e.g. --clips 2,3)")
    p.add_argument("--seconds", type=float, default=4.0)
    p.add_argument("--size", default="640x360", help="WxH of the synthetic clips")
    p.add_argument("--backgrounds", default="photo:chelsea,photo:grace_hopper,texture",
                   help="background kinds, cycled over the clips (held-out photos by default)")
    p.add_argument("--seed", type=int, default=100, help="first clip seed (held out from training)")
    p.add_argument("--dilate", type=int, default=3, help="pixels added around the true boxes")
    p.add_argument("--crf", type=int, default=18, help="x264 CRF of the synthetic input clips")
    p.add_argument("--methods", default="ceiling,input,delogo,telea,inpaint,auto",
                   help="comma list of: ceiling (clean clip through x264), input, delogo, telea, inpaint, auto")
    p.add_argument("--lama", type=Path, default=None, help="a LaMa ONNX with the inpainter tensors")
    p.add_argument("--end-to-end", action="store_true", help="also run the real pipeline via local Triton")
    p.add_argument("--workdir", type=Path, default=None, help="keep clips and outputs here")
    p.add_argument("--json", type=Path, default=None, help="write the raw numbers here")
    p.add_argument("-v", "--verbose", action="store_true")
    return p.parse_args(argv)


def _methods(args: argparse.Namespace, wanted: list[str]) -> tuple[dict[str, Callable], str]:
    """The methods to run by row name, and what fills the holes of ``auto``."""
    fallback = OnnxInpainter(FALLBACK_ONNX) if FALLBACK_ONNX.exists() else None
    hole_filler = fallback or telea
    hole_name = fallback.name if fallback else "OpenCV Telea (no fallback ONNX found)"
    methods: dict[str, Callable] = {}
    if "input" in wanted:
        methods["input"] = box_method(lambda f, m: f)
    if "telea" in wanted:
        methods["telea"] = box_method(telea)
    if "inpaint" in wanted:
        if fallback is not None:
            methods["inpaint (fallback)"] = box_method(fallback)
        else:
            print(f"note: {FALLBACK_ONNX} missing: no box-inpainting row", file=sys.stderr)
    lama = OnnxInpainter(args.lama) if args.lama is not None else None
    if lama is not None:
        methods["inpaint (LaMa)"] = box_method(lama)
    if "auto" in wanted:
        methods["auto (matte + fallback)" if fallback else "auto (matte + Telea)"] = matte_method(hole_filler)
        if lama is not None:
            methods["auto (matte + LaMa)"] = matte_method(lama)
    return methods, hole_name


@dataclass
class _Clip:
    """One synthetic clip of the run and what every method is scored against."""

    label: str
    opacity: float
    seed: int
    kind: str | None
    path: Path
    truth: object  # export.watermark.ClipTruth
    frames: np.ndarray
    clean: list[np.ndarray]
    boxes: list[Box | None]


def _make(args: argparse.Namespace, ci: int, opacity: float, workdir: Path, width: int, height: int) -> _Clip:
    from export.watermark import make_clip

    kinds = [k for k in args.backgrounds.split(",") if k]
    seed, kind = args.seed + ci, (kinds[ci % len(kinds)] if kinds else None)
    path = workdir / f"clip_{ci}_op{opacity:g}.mp4"
    truth = make_clip(path, width=width, height=height, seconds=args.seconds, opacity=opacity,
                      seed=seed, background=kind, crf=args.crf, audio=False)
    frames = decode_frames(path, width, height)
    n = min(len(frames), truth.n_frames)
    return _Clip(f"α={opacity:g} ({truth.background})", opacity, seed, kind, path, truth, frames[:n],
                 [truth.clean_frame(i) for i in range(n)],
                 [dilate_box(b, args.dilate, width, height) for b in truth.boxes[:n]])


def _ceiling(args: argparse.Namespace, c: _Clip, workdir: Path) -> dict:
    """The clean clip through the same encoder: what a perfect remover could reach given x264's
    loss, and the clean clip's own flicker as seen through the codec."""
    from export.watermark import make_clip

    height, width = c.frames.shape[1:3]
    make_clip(workdir / "clean.mp4", width=width, height=height, seconds=args.seconds,
              opacity=c.opacity, seed=c.seed, background=c.kind, crf=args.crf, audio=False, marked=False)
    clean_x264 = decode_frames(workdir / "clean.mp4", width, height)[: len(c.frames)]
    scores = Scores()
    for i in range(len(c.frames)):
        scores.add(clean_x264[i], c.clean[i], clean_x264[i], c.boxes[i])
    return {"clip": c.label, "opacity": c.opacity, "method": "clean via x264 (ceiling)", **scores.row(),
            "seconds": 0.0}


def _score(c: _Clip, name: str, method: Callable | None) -> tuple[dict, dict]:
    """One method on one clip: its row and its details (``method`` None: ffmpeg's delogo)."""
    n, height, width = c.frames.shape[:3]
    info: dict = {"detections": [None if b is None else tuple(int(v) for v in b)
                                 for b in c.truth.boxes[:n]]}  # what pass 1's detector sees
    t0 = time.perf_counter()
    if method is None:
        out_frames: Iterator[np.ndarray] = iter(run_delogo(c.path, c.boxes, width, height)[:n])
    else:
        out_frames = method(c.frames, c.boxes, info)
    scores = Scores()
    for i, out in enumerate(out_frames):
        scores.add(out, c.clean[i], c.frames[i], c.boxes[i])
    info.pop("detections", None)
    row = {"clip": c.label, "opacity": c.opacity, "method": name, **scores.row(),
           "seconds": time.perf_counter() - t0}
    LOGGER.info("%s %s: %s", c.label, name, row)
    return row, info


def _score_end_to_end(c: _Clip, ci: int, workdir: Path) -> tuple[dict, dict]:
    n, height, width = c.frames.shape[:3]
    out_path = workdir / f"clip_{ci}_e2e.mp4"
    t0 = time.perf_counter()
    details, pred = run_end_to_end(c.path, out_path, workdir)
    out = decode_frames(out_path, width, height)[:n]
    scores = Scores()
    for i in range(min(n, len(out))):
        scores.add(out[i], c.clean[i], c.frames[i], c.boxes[i])
    row = {"clip": c.label, "opacity": c.opacity, "method": "end-to-end pipeline",
           **scores.row(), "seconds": time.perf_counter() - t0}
    if pred is not None:
        row.update(detection_scores(pred[:n], c.truth.boxes[:n]))
    info = {"marks": details.get("marks"), "matte_frames": details.get("matte_frames"), "fps": details.get("fps")}
    return row, info


def _run_clips(args: argparse.Namespace, methods: dict, wanted: list[str], workdir: Path) -> tuple[list, list]:
    width, height = (int(v) for v in args.size.lower().split("x"))
    results: list[dict] = []
    details_all: list[dict] = []
    only = {int(v) for v in args.clips.split(",") if v} if args.clips else None
    for ci, opacity in enumerate(float(v) for v in args.opacities.split(",")):
        if only is not None and ci not in only:
            continue
        c = _make(args, ci, opacity, workdir, width, height)
        infos: dict[str, dict] = {}
        if "ceiling" in wanted:
            results.append(_ceiling(args, c, workdir))
        order = list(methods)
        if "delogo" in wanted:
            order.insert(1 if "input" in methods else 0, "delogo")
        for name in order:
            row, infos[name] = _score(c, name, methods.get(name))
            results.append(row)
        if args.end_to_end:
            row, infos["end-to-end"] = _score_end_to_end(c, ci, workdir)
            results.append(row)
        details_all.append({"clip": c.label, "infos": infos})
    return results, details_all


def _print_tables(args: argparse.Namespace, results: list[dict], hole_name: str) -> None:
    print(f"\nClips: {args.size}, {args.seconds:g} s, x264 CRF {args.crf}, camera motion; boxes = true "
          f"boxes + {args.dilate} px, the same for every method. Holes of `auto` filled by: {hole_name}.\n")
    print("| clip | method | PSNR in (dB) | SSIM in | PSNR out vs input (dB) | flicker in (clean) |")
    print("|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['clip']} | {r['method']} | {_fmt(r['psnr_in'])} | {_fmt(r['ssim_in'], 3)} | "
              f"{_fmt(r['psnr_out'], 1)} | {_fmt(r['flicker'])} ({_fmt(r['flicker_clean'])}) |")
    # auto vs delogo summary
    by = {(r["clip"], r["method"]): r for r in results}
    clips = list(dict.fromkeys(r["clip"] for r in results))
    auto_name = next((m for m in (r["method"] for r in results) if m.startswith("auto")), None)
    if auto_name and any(r["method"] == "delogo" for r in results):
        print(f"\n| clip | {auto_name} − delogo (dB) | − box inpaint (dB) | flicker auto / clean via x264 "
              f"| / clean |")
        print("|---|---|---|---|---|")
        for c in clips:
            a, d = by.get((c, auto_name)), by.get((c, "delogo"))
            bi = by.get((c, "inpaint (fallback)"))
            ce = by.get((c, "clean via x264 (ceiling)"))
            if a and d:
                print(f"| {c} | {a['psnr_in'] - d['psnr_in']:+.2f} | "
                      f"{_fmt(a['psnr_in'] - bi['psnr_in']) if bi else '–'} | "
                      f"{_fmt(a['flicker'] / ce['flicker']) if ce and ce['flicker'] else '–'} | "
                      f"{_fmt(a['flicker_ratio'])} |")
    if any("recall" in r for r in results):
        print("\n| clip | precision | recall | mean IoU |")
        print("|---|---|---|---|")
        for r in results:
            if "recall" in r:
                print(f"| {r['clip']} | {r['precision']:.3f} | {r['recall']:.3f} | {r['mean_iou']:.3f} |")


def _print_matte_details(details_all: list[dict]) -> None:
    for d in details_all:
        for name, info in d["infos"].items():
            if info:
                LOGGER.info("%s / %s: %s", d["clip"], name, info)
    timing = [(d["clip"], i) for d in details_all for n, i in d["infos"].items() if "estimate_ms_per_crop" in i]
    if not timing:
        return
    est = np.mean([i["estimate_ms_per_crop"] for _, i in timing])
    inv = np.mean([i["inversion_ms_per_crop"] for _, i in timing])
    print(f"\nMatte cost: estimation {est:.2f} ms per crop, inversion {inv:.2f} ms per crop.")
    for c, i in timing:
        segs = "; ".join(f"{s['frames']} crops ({s.get('scope', '')}, {s.get('references', 0)} references): "
                         f"{'ok' if s['reliable'] else s['reason']}, "
                         f"~{s['effective_frames']} independent, residual {s['median_residual']}"
                         for s in i.get("segments", []))
        print(f"- {c}: matte frames {i.get('matte_frames', 0)}, box-inpainted frames "
              f"{i.get('box_frames', 0)}, hole px {i.get('hole_px', 0)}; estimates: {segs}")


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    if shutil.which("ffmpeg") is None:
        print("ffmpeg is required (scripts/install-system-deps.sh installs it)", file=sys.stderr)
        return 2
    wanted = [m for m in args.methods.split(",") if m]
    methods, hole_name = _methods(args, wanted)
    tmp = tempfile.TemporaryDirectory(prefix="bench-quality-") if args.workdir is None else None
    workdir = args.workdir or Path(tmp.name)
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        results, details_all = _run_clips(args, methods, wanted, workdir)
    finally:
        if "server" in _E2E:
            _E2E["server"].stop()
        if tmp is not None:
            tmp.cleanup()
    _print_tables(args, results, hole_name)
    _print_matte_details(details_all)
    if args.json:
        args.json.write_text(json.dumps({"results": results, "details": details_all}, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())

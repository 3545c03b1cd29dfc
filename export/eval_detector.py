"""Score a detector ONNX per frame on the clip registry's held-out clips (onnxruntime, no Triton).

Why: the demo detector's recall and precision must be known on clips nobody tuned on
(``export.clips.HELDOUT_SEEDS``), for every kind — marked ones and mark-free ones — with the same
letterbox + NMS the pipeline uses. ``python -m export.eval_detector`` prints the table.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np

from export import clips as clipreg
from export import synthetic
from export import watermark as wm

LOGGER = logging.getLogger(__name__)


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float = 0.45) -> list[int]:
    """Greedy non-maximum suppression; boxes (x1, y1, x2, y2)."""
    order = np.argsort(-scores)
    keep: list[int] = []
    while order.size:
        i = int(order[0])
        keep.append(i)
        if order.size == 1:
            break
        rest = order[1:]
        ious = box_iou(boxes[i], boxes[rest])
        order = rest[ious <= iou]
    return keep


def box_iou(a, b: np.ndarray) -> np.ndarray:
    """IoU of box ``a`` with each row of ``b`` (x1, y1, x2, y2)."""
    a = np.asarray(a, np.float64)
    b = np.atleast_2d(np.asarray(b, np.float64))
    ix = np.clip(np.minimum(a[2], b[:, 2]) - np.maximum(a[0], b[:, 0]), 0, None)
    iy = np.clip(np.minimum(a[3], b[:, 3]) - np.maximum(a[1], b[:, 1]), 0, None)
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]) - inter
    return inter / np.maximum(union, 1e-9)


def detect(session, frames: list[np.ndarray], *, conf: float = 0.25, iou: float = 0.45,
           imgsz: int = 640, batch: int = 8) -> list[list[tuple[float, float, float, float, float]]]:
    """Run the detector ONNX on RGB frames; per frame a list of (x1, y1, x2, y2, score) in frame pixels."""
    out: list[list[tuple[float, float, float, float, float]]] = []
    for start in range(0, len(frames), batch):
        chunk = frames[start:start + batch]
        packed, params = [], []
        for f in chunk:
            lb, r, left, top = synthetic.letterbox(f, imgsz)
            packed.append(lb)
            params.append((r, left, top, f.shape[1], f.shape[0]))
        pred = session.run(["output0"], {"images": np.stack(packed)})[0]
        for p, (r, left, top, w, h) in zip(pred, params):
            scores = p[4]
            sel = np.nonzero(scores >= conf)[0]
            if sel.size == 0:
                out.append([])
                continue
            cx, cy, bw, bh = p[0, sel], p[1, sel], p[2, sel], p[3, sel]
            boxes = np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], 1)
            boxes = (boxes - [left, top, left, top]) / r
            boxes = np.clip(boxes, 0, [w, h, w, h])
            keep = nms(boxes, scores[sel], iou)
            out.append([(*map(float, boxes[k]), float(scores[sel][k])) for k in keep])
    return out


def decode_rgb(path: str | Path) -> list[np.ndarray]:
    import av

    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


def _inside_fraction(det, box) -> float:
    """Fraction of ``det``'s area that lies inside ``box`` (both x1, y1, x2, y2)."""
    ix = max(0.0, min(det[2], box[2]) - max(det[0], box[0]))
    iy = max(0.0, min(det[3], box[3]) - max(det[1], box[1]))
    return ix * iy / max((det[2] - det[0]) * (det[3] - det[1]), 1e-9)


def evaluate_clip(session, truth: wm.ClipTruth, frames: list[np.ndarray], *, conf: float = 0.25) -> dict:
    """Per-frame detection quality of the raw detector (no temporal filling).

    recall: marked frames with a detection at IoU >= 0.5 with the true box; mean_iou: mean over
    marked frames of the best IoU (0 when missed); precision: detections with IoU >= 0.5 / all
    detections (mark-free frames included); precision_on_mark: detections lying mostly (>= 50 % of
    their area) on the true mark / all — a box around part of the mark is harmless once merged.
    """
    dets = detect(session, frames, conf=conf)
    ious, hit_frames, tp, on_mark, n_det, fp_frames = [], 0, 0, 0, 0, 0
    for d, box in zip(dets, truth.boxes):
        n_det += len(d)
        if box is None:
            fp_frames += bool(d)
            continue
        best = float(box_iou(box, np.array([x[:4] for x in d])).max()) if d else 0.0
        ious.append(best)
        good = sum(1 for x in d if box_iou(box, np.array([x[:4]]))[0] >= 0.5)
        tp += good
        hit_frames += good > 0
        fp_frames += len(d) > good
        on_mark += sum(1 for x in d if _inside_fraction(x[:4], box) >= 0.5)
    ious_a = np.array(ious) if ious else np.zeros(0)
    return {
        "size": f"{truth.width}x{truth.height}", "frames": len(frames), "background": truth.background,
        "opacity": truth.opacity, "username": truth.username, "mark": truth.mark,
        "marked_frames": int(ious_a.size), "hit_frames": int(hit_frames),
        "recall": round(hit_frames / ious_a.size if ious_a.size else 1.0, 4),
        "mean_iou": round(float(ious_a.mean()) if ious_a.size else 1.0, 4),
        "detections": n_det, "true_detections": tp,
        "precision": round(tp / n_det if n_det else 1.0, 4),
        "precision_on_mark": round(on_mark / n_det if n_det else 1.0, 4),
        "frames_with_false_detection": fp_frames,
    }


def evaluate_registry(onnx_path: str | Path, *, kinds=clipreg.KINDS, seeds=clipreg.HELDOUT_SEEDS,
                      clip_dir: str | Path = ".artifacts/clips", conf: float = 0.25) -> dict:
    """One row per kind (summed over ``seeds``): frames, recall, precision, false-detection frames."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    rows, t0 = [], time.perf_counter()
    for kind in kinds:
        per = []
        for seed in seeds:
            clip = clipreg.make(kind, seed, clip_dir, clean=False)
            per.append(evaluate_clip(session, clip.truth, decode_rgb(clip.marked), conf=conf))
            LOGGER.info("%s/%s: %s", kind, seed, per[-1])
        marked, det = sum(r["marked_frames"] for r in per), sum(r["detections"] for r in per)
        rows.append({
            "kind": kind, "clips": len(per), "frames": sum(r["frames"] for r in per), "marked_frames": marked,
            "recall": round(sum(r["hit_frames"] for r in per) / marked, 4) if marked else None,
            "precision": round(sum(r["true_detections"] for r in per) / det, 4) if det else 1.0,
            "detections": det,
            "frames_with_false_detection": sum(r["frames_with_false_detection"] for r in per),
            "mean_iou": round(sum(r["mean_iou"] * r["marked_frames"] for r in per) / marked, 4) if marked else None,
        })
    return {"seeds": list(seeds), "conf": conf, "iou": 0.5, "rows": rows,
            "seconds": round(time.perf_counter() - t0, 1)}


def table(result: dict) -> str:
    """The result as a Markdown table."""
    lines = [f"held-out seeds {result['seeds']}, conf {result['conf']}, a hit = IoU >= 0.5", "",
             "| kind | frames | marked | recall | precision | detections | frames with a false detection | mean IoU |",
             "|---|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        lines.append(f"| {r['kind']} | {r['frames']} | {r['marked_frames']} | {r['recall']} | {r['precision']} | "
                     f"{r['detections']} | {r['frames_with_false_detection']} | {r['mean_iou']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Score a detector ONNX on the held-out registry clips")
    parser.add_argument("--onnx", type=Path, default=Path(__file__).resolve().parent / "assets" / "detector_demo.onnx")
    parser.add_argument("--kinds", default=",".join(clipreg.KINDS))
    parser.add_argument("--seeds", default=",".join(map(str, clipreg.HELDOUT_SEEDS)))
    parser.add_argument("--clip-dir", type=Path, default=Path(".artifacts/clips"))
    parser.add_argument("--conf", type=float, default=0.25)
    parser.add_argument("--json", type=Path, help="also write the raw result here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    result = evaluate_registry(args.onnx, kinds=[k for k in args.kinds.split(",") if k],
                               seeds=[int(s) for s in args.seeds.split(",") if s], clip_dir=args.clip_dir,
                               conf=args.conf)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())

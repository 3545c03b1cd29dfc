"""Train the demo watermark detector on synthetic data, export it, and measure it on held-out clips.

Why: ``make run`` must detect the mark on machines that cannot download the public YOLO11s weights.
``make train-detector`` re-creates ``export/assets/detector_demo.onnx`` (+ ``detector_demo.json``:
recipe, times, held-out table) on the CPU in bounded time:

1. :func:`export.synthetic.generate_dataset` — crops of letterboxed frames with the faithful Sora
   mark and hard negatives (bars, textured walls/ceilings, faces, text, other logos).
2. Ultralytics YOLO, a narrow YOLO11 ("tiny": YOLO11 layers at width 0.125, ~0.8 M parameters)
   trained from scratch at the crop size for a fixed number of epochs.
3. :func:`export.detector.export_detector` at 640 (the Triton contract; the net is convolutional so
   the mark keeps the pixel size it had in the crops).
4. :func:`export.eval_detector.evaluate_registry` — per-frame recall / precision at IoU >= 0.5 on
   every clip kind of :mod:`export.clips` for the FROZEN held-out seeds.

``--quick`` is the tests' seconds-long variant.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import logging
import os
import platform
import sys
import time
from pathlib import Path

from export import synthetic
from export import watermark as wm
from export.eval_detector import box_iou, decode_rgb, detect, evaluate_clip, evaluate_registry, nms, table

LOGGER = logging.getLogger(__name__)

ASSETS = Path(__file__).resolve().parent / "assets"
DEMO_ONNX = ASSETS / "detector_demo.onnx"
# The recipe (make train-detector): see the module docstring; times are in detector_demo.json.
RECIPE = dict(n_train=1500, n_val=150, crop=192, epochs=10, batch=16, seed=0)


def tiny_yolo_cfg(width: float = 0.125, depth: float = 0.5, max_channels: int = 1024, nc: int = 1) -> dict:
    """Ultralytics' YOLO11 architecture dict at a smaller width (built at runtime from its yaml)."""
    from ultralytics.nn.tasks import yaml_model_load

    cfg = copy.deepcopy(yaml_model_load("yolo11n.yaml"))
    cfg["scales"] = {"t": [depth, width, max_channels]}
    cfg["scale"] = "t"
    cfg["nc"] = nc
    return cfg


# --------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------

def train_detector(out_onnx: str | Path = DEMO_ONNX, *, work_dir: str | Path = ".artifacts/train_detector",
                   n_train: int = RECIPE["n_train"], n_val: int = RECIPE["n_val"], crop: int = RECIPE["crop"],
                   time_minutes: float | None = None, epochs: int = RECIPE["epochs"],
                   batch: int = RECIPE["batch"], seed: int = RECIPE["seed"], model: str = "tiny",
                   evaluate: bool = True, dataset_dir: str | Path | None = None,
                   init_weights: str | Path | None = None) -> dict:
    """Generate data, train, export ``out_onnx`` and return (and write beside it) the report dict.

    Training runs ``epochs`` epochs (a fixed number of steps, so the recipe is reproducible);
    ``time_minutes`` is a safety cap that stops after the epoch in which it is exceeded.
    ``init_weights`` continues from an earlier checkpoint instead of random init.
    """
    import torch
    import ultralytics
    from ultralytics import YOLO

    from export.detector import export_detector

    work = Path(work_dir).resolve()
    work.mkdir(parents=True, exist_ok=True)
    out_onnx = Path(out_onnx)
    report: dict = {"created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    previous = out_onnx.with_suffix(".json")
    if init_weights and previous.exists():  # keep the earlier stage's recipe with the new one
        old = json.loads(previous.read_text())
        report["previous_stage"] = {k: old.get(k) for k in ("created", "dataset", "training", "val_split",
                                                            "heldout_clips", "previous_stage")}

    ds = Path(dataset_dir) if dataset_dir else work / f"dataset_v{synthetic.VERSION}_s{seed}_{n_train}_{n_val}_{crop}"
    t0 = time.perf_counter()
    if (ds / "data.yaml").exists() and len(list((ds / "images" / "train").glob("*.jpg"))) == n_train:
        data_yaml = ds / "data.yaml"
        LOGGER.info("reusing dataset %s", ds)
    else:
        data_yaml = synthetic.generate_dataset(ds, n_train=n_train, n_val=n_val, crop=crop, seed=seed,
                                               workers=2 if n_train >= 200 else 1)
    report["dataset"] = {
        "generator": "export.synthetic.generate_dataset", "seed": seed, "train": n_train, "val": n_val,
        "crop": crop, "letterbox": 640, "negative_rate": synthetic.NEGATIVE_RATE, "bars_rate": synthetic.BARS_RATE,
        "photos_held_out": list(wm.HELDOUT_PHOTOS), "seconds": round(time.perf_counter() - t0, 1),
    }

    if init_weights:
        cfg_path = Path(init_weights)
        arch = {"name": f"continued from {cfg_path.name}"}
    elif model == "tiny":
        cfg_path = work / "watermark_tiny.yaml"
        import yaml

        cfg_path.write_text(yaml.safe_dump(tiny_yolo_cfg()))
        arch = {"name": "YOLO11 layers, depth 0.5, width 0.125 (tiny)", "cfg": str(cfg_path.name)}
    else:
        cfg_path = Path(model)
        arch = {"name": model}
    yolo = YOLO(str(cfg_path))
    arch["parameters"] = int(sum(p.numel() for p in yolo.model.parameters()))
    threads = max(1, min(2, os.cpu_count() or 1))
    torch.set_num_threads(threads)
    train_args = dict(
        data=str(data_yaml), epochs=epochs, imgsz=crop, batch=batch, workers=0, device="cpu",
        cache="ram", plots=False, amp=False, seed=seed, deterministic=True, project=str(work),
        name="run", exist_ok=True, verbose=False, patience=1000, fliplr=0.0, scale=0.3,
        translate=0.1, mosaic=1.0, close_mosaic=2 if epochs > 3 else 0, optimizer="AdamW", lr0=0.003,
        warmup_epochs=1.0, cos_lr=False,
    )
    t1 = time.perf_counter()
    if time_minutes:
        def _cap(trainer) -> None:
            if time.perf_counter() - t1 > time_minutes * 60:
                LOGGER.warning("training time cap of %.1f min reached after epoch %d", time_minutes, trainer.epoch + 1)
                trainer.stop = True

        yolo.add_callback("on_fit_epoch_end", _cap)
    yolo.train(**train_args)
    train_s = time.perf_counter() - t1
    trainer = yolo.trainer
    best = Path(trainer.best) if Path(trainer.best).exists() else Path(trainer.last)
    epochs_run = int(getattr(trainer, "epoch", epochs - 1)) + 1
    report["training"] = {
        "framework": f"ultralytics {ultralytics.__version__}, torch {torch.__version__}",
        "architecture": arch, "imgsz": crop, "batch": batch, "epochs_planned": trainer.epochs,
        "epochs_run": epochs_run, "time_cap_minutes": time_minutes,
        "init_weights": Path(init_weights).name if init_weights else None, "seconds": round(train_s, 1),
        "threads": threads, "cpu": platform.processor() or platform.machine(),
        "args": {k: v for k, v in train_args.items() if k not in ("data", "project")},
    }
    val = YOLO(str(best)).val(data=str(data_yaml), imgsz=crop, batch=batch, device="cpu", plots=False,
                              workers=0, verbose=False, project=str(work), name="val", exist_ok=True)
    report["val_split"] = {
        "images": n_val, "precision": round(float(val.box.mp), 4), "recall": round(float(val.box.mr), 4),
        "mAP50": round(float(val.box.map50), 4), "mAP50-95": round(float(val.box.map), 4),
    }
    export_detector(out_onnx, weights=best, imgsz=640)
    data = out_onnx.read_bytes()
    report["onnx"] = {"file": out_onnx.name, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest(),
                      "input": "images uint8 [B,640,640,3]", "output": "output0 float32 [B,5,8400]"}
    report["model_seconds"] = round(time.perf_counter() - t0, 1)  # data + training + val + export
    if evaluate:
        report["heldout_clips"] = evaluate_registry(out_onnx, clip_dir=work.parent / "clips")
        LOGGER.info("held-out clips:\n%s", table(report["heldout_clips"]))
    report["recreate"] = "make train-detector (python -m export.train_detector)"
    out_onnx.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Train the demo watermark detector on synthetic data")
    parser.add_argument("--out", type=Path, default=DEMO_ONNX)
    parser.add_argument("--work-dir", type=Path, default=Path(".artifacts/train_detector"))
    parser.add_argument("--train", type=int, default=RECIPE["n_train"])
    parser.add_argument("--val", type=int, default=RECIPE["n_val"])
    parser.add_argument("--crop", type=int, default=RECIPE["crop"])
    parser.add_argument("--epochs", type=int, default=RECIPE["epochs"])
    parser.add_argument("--time-minutes", type=float, default=0, help="wall-clock cap (0 = none)")
    parser.add_argument("--init-weights", type=Path, help="continue from this Ultralytics .pt")
    parser.add_argument("--model", default="tiny", help="'tiny' or an Ultralytics yaml such as yolo11n.yaml")
    parser.add_argument("--dataset", type=Path, help="reuse an existing generated dataset")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="a few iterations on a tiny set (tests)")
    parser.add_argument("--eval-only", action="store_true", help="only score --out on the held-out clips")
    parser.add_argument("--no-eval", action="store_true", help="skip the held-out clips (add them with --eval-only)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.eval_only:  # re-score an existing model; updates its JSON report when there is one
        result = evaluate_registry(args.out, clip_dir=args.work_dir.parent / "clips")
        report_path = args.out.with_suffix(".json")
        if report_path.exists():
            report = json.loads(report_path.read_text())
            report["heldout_clips"] = result
            report_path.write_text(json.dumps(report, indent=2) + "\n")
        print(table(result))
        return 0
    if args.quick:
        report = train_detector(args.out, work_dir=args.work_dir, n_train=16, n_val=4, crop=128,
                                time_minutes=None, epochs=1, batch=8, seed=args.seed, model=args.model,
                                evaluate=False)
    else:
        report = train_detector(args.out, work_dir=args.work_dir, n_train=args.train, n_val=args.val,
                                crop=args.crop, time_minutes=args.time_minutes or None, epochs=args.epochs,
                                seed=args.seed, model=args.model, dataset_dir=args.dataset,
                                init_weights=args.init_weights, evaluate=not args.no_eval)
    print(json.dumps({k: v for k, v in report.items() if k != "heldout_clips"}, indent=2))
    if "heldout_clips" in report:
        print(table(report["heldout_clips"]))
    return 0


__all__ = ["train_detector", "tiny_yolo_cfg", "DEMO_ONNX", "RECIPE", "box_iou", "decode_rgb", "detect",
           "evaluate_clip", "evaluate_registry", "nms"]


if __name__ == "__main__":
    sys.exit(main())

"""Synthetic YOLO dataset for the watermark detector, made from the project's own template.

Why: the public labelled data cannot be downloaded everywhere, and new mark variants need new
data. Each sample is a frame as the pipeline will feed it to the detector: a moving background at a
Sora-like source size, the mark composited (varied opacity incl. fades, sizes, with/without the
username line, Sora slots or anywhere), degraded (noise, blur, JPEG blocking, the downscale of the
letterbox), letterboxed to ``imgsz`` with pad 114. With ``crop`` < ``imgsz`` a crop of that
letterboxed frame is stored instead: the mark keeps the pixel size it has at inference, while
training costs (crop/imgsz)^2 less (YOLO is fully convolutional, so it detects at 640 what it
learned on 320 crops). Frames without a mark (and white distractor text) are negatives.

Deterministic: sample k of split s depends only on (seed, s, k).
"""

from __future__ import annotations

import argparse
import io
import logging
import string
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from export import watermark as wm
from export.marks import _font

LOGGER = logging.getLogger(__name__)

# Source frame sizes (W, H) the detector must handle; Sora's are 1280x704 / 704x1280.
SOURCE_SIZES = ((1280, 704), (704, 1280), (1280, 704), (704, 1280), (1920, 1080), (1080, 1920),
                (1280, 720), (854, 480), (480, 854), (640, 360), (1080, 1080), (960, 544))
PAD_VALUE = 114
_DISTRACTOR_WORDS = ("Hello", "SALE", "Sky", "Now", "12:45", "Open", "Studio", "Solar", "Demo", "News")


@dataclass(frozen=True)
class Sample:
    """One generated image (uint8 HxWx3) and its boxes in YOLO's normalised (cx, cy, w, h)."""

    image: np.ndarray
    boxes: list[tuple[float, float, float, float]]


def letterbox_params(width: int, height: int, imgsz: int = 640) -> tuple[float, int, int, int, int]:
    """(scale, new_w, new_h, left, top) of Ultralytics-style centred letterboxing."""
    r = min(imgsz / width, imgsz / height)
    nw, nh = int(round(width * r)), int(round(height * r))
    left = int(round((imgsz - nw) / 2 - 0.1))
    top = int(round((imgsz - nh) / 2 - 0.1))
    return r, nw, nh, left, top


def letterbox(image: np.ndarray, imgsz: int = 640) -> tuple[np.ndarray, float, int, int]:
    """Resize (bilinear) + pad with 114 to imgsz x imgsz; returns (image, scale, left, top)."""
    h, w = image.shape[:2]
    r, nw, nh, left, top = letterbox_params(w, h, imgsz)
    if (nw, nh) != (w, h):
        image = np.asarray(Image.fromarray(image).resize((nw, nh), Image.BILINEAR))
    out = np.full((imgsz, imgsz, 3), PAD_VALUE, np.uint8)
    out[top:top + nh, left:left + nw] = image
    return out, r, left, top


def _username(rng: np.random.Generator) -> str:
    chars = string.ascii_lowercase + string.digits + "_."
    n = int(rng.integers(4, 15))
    return "@" + "".join(chars[int(i)] for i in rng.integers(0, len(chars), n))


def _degrade(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Noise, blur, colour shift and JPEG blocking, as a compressed video frame would have."""
    out = img.astype(np.float32)
    if rng.random() < 0.5:
        gain, bias = rng.uniform(0.85, 1.12), rng.uniform(-12, 12)
        out = out * gain + bias
    if rng.random() < 0.6:
        out += rng.standard_normal(out.shape, dtype=np.float32) * np.float32(rng.uniform(1, 7))
    pil = Image.fromarray(np.clip(out, 0, 255).astype(np.uint8))
    if rng.random() < 0.25:
        pil = pil.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.0)))
    if rng.random() < 0.8:
        buf = io.BytesIO()
        pil.save(buf, "JPEG", quality=int(rng.integers(25, 92)))
        buf.seek(0)
        pil = Image.open(buf).convert("RGB")
    return np.asarray(pil, np.uint8)


def _distractor(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """White semi-transparent text that is NOT the mark (keeps precision up on captions/logos)."""
    h, w = img.shape[:2]
    layer = Image.new("L", (w, h), 0)
    draw = ImageDraw.Draw(layer)
    size = int(rng.uniform(0.03, 0.08) * min(w, h)) + 8
    word = _DISTRACTOR_WORDS[int(rng.integers(len(_DISTRACTOR_WORDS)))]
    draw.text((int(rng.uniform(0, 0.8) * w), int(rng.uniform(0, 0.9) * h)), word,
              font=_font(size), fill=int(rng.integers(120, 256)))
    a = np.asarray(layer, np.float32)[..., None] / 255.0
    return np.clip(a * 255 + (1 - a) * img, 0, 255).astype(np.uint8)


def make_sample(seed: int, split: int, index: int, *, imgsz: int = 640, crop: int | None = None,
                negative_rate: float = 0.12, photos: tuple[str, ...] | None = None) -> Sample:
    """Generate one training image and its labels (see module docstring)."""
    rng = np.random.default_rng([seed, split, index])
    src_w, src_h = SOURCE_SIZES[int(rng.integers(len(SOURCE_SIZES)))]
    _, cw, ch, left, top = letterbox_params(src_w, src_h, imgsz)
    # Render at up to 2x the letterboxed size, then downscale like the pipeline's letterbox does.
    k = float(rng.uniform(1.0, min(2.0, src_w / cw)))
    rw, rh = max(2, int(round(cw * k))) // 2 * 2, max(2, int(round(ch * k))) // 2 * 2
    kinds = [f"photo:{p}" for p in (photos if photos is not None else wm.available_photos())]
    kinds += list(wm.PROCEDURAL_KINDS) * max(1, len(kinds) // 6)
    bg = wm.Background(rw, rh, seed=int(rng.integers(1 << 30)), kind=kinds[int(rng.integers(len(kinds)))],
                       motion=float(rng.uniform(0.3, 1.5)))
    frame = bg.frame(int(rng.integers(0, 300)))
    negative = rng.random() < negative_rate
    box = None
    if not negative:
        username = None if rng.random() < 0.3 else _username(rng)
        t = wm.template_for_frame(rw, rh, username=username, scale=float(rng.uniform(0.7, 1.4)))
        if rng.random() < 0.6:
            slots = wm.sora_slots(rw, rh, t.width, t.height)
            x, y = slots[int(rng.integers(3))]
            x += int(rng.integers(-4, 5))
            y += int(rng.integers(-4, 5))
        else:
            x = int(rng.integers(0, max(1, rw - t.width)))
            y = int(rng.integers(0, max(1, rh - t.height)))
        x = min(max(x, 0), rw - t.width)
        y = min(max(y, 0), rh - t.height)
        opacity = float(rng.uniform(0.3, 1.0))
        if rng.random() < 0.15:  # mid-fade frames around a jump
            opacity *= float(rng.uniform(0.4, 1.0))
        frame = wm.composite(frame, t, x, y, opacity)
        box = (x, y, x + t.width, y + t.height)
    if rng.random() < 0.25:
        frame = _distractor(frame, rng)
    frame = _degrade(frame, rng)
    boxed, r, left, top = letterbox(frame, imgsz)
    r = cw / rw  # the letterbox resized rw x rh to cw x ch
    boxes_px = []
    if box is not None:
        boxes_px.append((box[0] * r + left, box[1] * r + top, box[2] * r + left, box[3] * r + top))
    if crop is None or crop >= imgsz:
        image, ox, oy, size = boxed, 0, 0, imgsz
    else:
        size = crop
        if boxes_px and rng.random() < 0.9:  # crop containing the whole mark
            x1, y1, x2, y2 = boxes_px[0]
            lo_x, hi_x = max(0, int(np.ceil(x2)) - size), min(imgsz - size, int(x1))
            lo_y, hi_y = max(0, int(np.ceil(y2)) - size), min(imgsz - size, int(y1))
            ox = int(rng.integers(lo_x, hi_x + 1)) if hi_x >= lo_x else int(np.clip(x1, 0, imgsz - size))
            oy = int(rng.integers(lo_y, hi_y + 1)) if hi_y >= lo_y else int(np.clip(y1, 0, imgsz - size))
        else:  # any window, preferring content over padding
            ox = int(rng.integers(max(0, left - size // 4), max(max(0, left - size // 4) + 1,
                                                               min(imgsz - size, left + cw - size * 3 // 4) + 1)))
            oy = int(rng.integers(max(0, top - size // 4), max(max(0, top - size // 4) + 1,
                                                              min(imgsz - size, top + ch - size * 3 // 4) + 1)))
        image = boxed[oy:oy + size, ox:ox + size]
    labels = []
    for x1, y1, x2, y2 in boxes_px:
        cx1, cy1 = max(x1 - ox, 0.0), max(y1 - oy, 0.0)
        cx2, cy2 = min(x2 - ox, float(size)), min(y2 - oy, float(size))
        full = (x2 - x1) * (y2 - y1)
        if cx2 <= cx1 or cy2 <= cy1:
            continue
        if (cx2 - cx1) * (cy2 - cy1) < 0.6 * full:
            # Mostly cut off: grey it out so no unlabeled half-mark teaches "not a mark".
            image = image.copy()
            image[int(cy1):int(np.ceil(cy2)), int(cx1):int(np.ceil(cx2))] = PAD_VALUE
            continue
        labels.append(((cx1 + cx2) / 2 / size, (cy1 + cy2) / 2 / size, (cx2 - cx1) / size, (cy2 - cy1) / size))
    return Sample(np.ascontiguousarray(image), labels)


def _write_sample(job) -> bool:
    out, name, seed, split, k, imgsz, crop, negative_rate, photos = job
    s = make_sample(seed, split, k, imgsz=imgsz, crop=crop, negative_rate=negative_rate, photos=photos)
    stem = f"{name}_{k:05d}"
    Image.fromarray(s.image).save(out / "images" / name / f"{stem}.jpg", quality=95)
    (out / "labels" / name / f"{stem}.txt").write_text(
        "".join(f"0 {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}\n" for cx, cy, w, h in s.boxes))
    return bool(s.boxes)


def generate_dataset(out_dir: str | Path, *, n_train: int = 1200, n_val: int = 200, imgsz: int = 640,
                     crop: int | None = 320, seed: int = 0, negative_rate: float = 0.12,
                     photos: tuple[str, ...] | None = None, workers: int = 1) -> Path:
    """Write ``images/{train,val}``, ``labels/{train,val}`` and ``data.yaml``; returns data.yaml.

    ``photos`` restricts the photo backgrounds (default: all installed except
    :data:`export.watermark.HELDOUT_PHOTOS`, which evaluation clips use).
    """
    if n_train < 1 or n_val < 1:
        raise ValueError(f"need at least one train and one val image, got {n_train}/{n_val}")
    out = Path(out_dir)
    if photos is None:
        photos = tuple(p for p in wm.available_photos() if p not in wm.HELDOUT_PHOTOS)
    t0 = time.perf_counter()
    counts = {}
    for split, name, n in ((0, "train", n_train), (1, "val", n_val)):
        (out / "images" / name).mkdir(parents=True, exist_ok=True)
        (out / "labels" / name).mkdir(parents=True, exist_ok=True)
        jobs = [(out, name, seed, split, k, imgsz, crop, negative_rate, photos) for k in range(n)]
        if workers > 1:
            import multiprocessing

            with multiprocessing.get_context("spawn").Pool(workers) as pool:
                positives = sum(pool.imap_unordered(_write_sample, jobs, chunksize=16))
        else:
            positives = sum(map(_write_sample, jobs))
        counts[name] = (n, positives)
    data_yaml = out / "data.yaml"
    data_yaml.write_text(f"path: {out.resolve()}\ntrain: images/train\nval: images/val\nnames:\n  0: watermark\n")
    LOGGER.info("dataset %s: train %d (%d with mark), val %d (%d with mark) in %.1f s", out,
                *counts["train"], *counts["val"], time.perf_counter() - t0)
    return data_yaml


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Generate the synthetic watermark YOLO dataset")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--train", type=int, default=1200)
    parser.add_argument("--val", type=int, default=200)
    parser.add_argument("--crop", type=int, default=320, help="crop size (0 = whole 640 frame)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=1, help="generator processes")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    print(generate_dataset(args.out, n_train=args.train, n_val=args.val, crop=args.crop or None, seed=args.seed,
                           workers=args.workers))
    return 0


if __name__ == "__main__":
    sys.exit(main())

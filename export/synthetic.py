"""Synthetic YOLO dataset for the watermark detector, made from the project's own Sora mark.

Why: the public labelled data cannot be downloaded everywhere, and new mark variants need new
data. Each sample is a frame as the pipeline feeds it to the detector, drawn directly at the 640
letterbox scale (optionally finer, then downscaled): a footage-like moving scene (export.scenes),
sometimes a picture between black bars (a pillarboxed portrait in 1280×704, 1080p with thin bars,
…), the mark sized to the picture (username or not, the cloud alone, pupils anywhere, α mostly
0.7–0.9), degraded (noise, blur, JPEG blocking), letterboxed with pad 114, and cropped to ``crop``
(YOLO is fully convolutional: it detects at 640 what it learned on crops). Hard negatives: frames
without a mark, bars and their edges, textured walls and ceilings, faces (two dark eyes look like
the cloud's), subtitles and white text, other channels' logos.

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
from export.scenes import CAPTIONS

LOGGER = logging.getLogger(__name__)

# Source frame sizes (W, H) the detector must handle; Sora's are 1280x704 / 704x1280.
SOURCE_SIZES = ((1280, 704), (704, 1280), (1280, 704), (704, 1280), (1920, 1080), (1080, 1920),
                (1280, 720), (854, 480), (480, 854), (640, 360), (1080, 1080), (960, 544))
PAD_VALUE = 114
# Frames with a picture between black bars: (frame W, H, picture W, H), centred.
# The pillarboxed portrait (whose mark is ≈60×20, ≈30×10 after the 640 letterbox) is listed 3 times.
BAR_LAYOUTS = ((1280, 704, 396, 704), (1280, 704, 396, 704), (1280, 704, 388, 704), (1920, 1080, 1920, 1056),
               (704, 1280, 704, 388), (1280, 720, 960, 720), (1920, 1080, 608, 1080), (1080, 1920, 1080, 608))
BARS_RATE = 0.35
NEGATIVE_RATE = 0.3
LOGO_RATE = 0.35
DISTRACTOR_RATE = 0.6
VERSION = 5  # bump when samples change, so a cached dataset is not reused
_CAPTION_CHUNKS = tuple(" ".join(c.split()[i:i + 2]) for c in CAPTIONS for i in range(0, len(c.split()), 2))
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
    n = int(rng.integers(3, 15))
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


def _distractor(img: np.ndarray, rng: np.random.Generator, text_px: float) -> np.ndarray:
    """White words that are NOT the mark: subtitles, titles, "Sky"/"Solar"-like words and the bare
    word "Sora" without its cloud (1-3 of them, about the wordmark's size, with or without a dark
    outline) — keeps precision up on captions."""
    h, w = img.shape[:2]
    pil = Image.fromarray(img)
    draw = ImageDraw.Draw(pil)
    for _ in range(int(rng.integers(1, 4))):
        size = max(8, int(text_px * rng.uniform(0.6, 1.6)))
        words = _DISTRACTOR_WORDS + CAPTIONS + _CAPTION_CHUNKS + ("Sora",) * 4
        word = words[int(rng.integers(len(words)))]
        shade = int(rng.integers(190, 256))
        stroke = int(rng.integers(1, 3)) if rng.random() < 0.5 else 0
        draw.text((int(rng.uniform(-0.1, 0.85) * w), int(rng.uniform(0, 0.95) * h)), word, font=_font(size),
                  fill=(shade, shade, shade), stroke_width=stroke, stroke_fill=(0, 0, 0))
    return np.asarray(pil)


def _other_logo(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Another channel's semi-transparent logo (badge, star, "TV" box, dots): not the mark.

    The ring-with-bars of ``export.clips`` ``other_shape`` is deliberately NOT among them: that
    clip kind measures discovery on a shape the detector never saw.
    """
    h, w = img.shape[:2]
    size = int(rng.uniform(0.05, 0.12) * min(w, h)) + 6
    layer = Image.new("L", (size * 3, size), 0)
    d = ImageDraw.Draw(layer)
    kind = int(rng.integers(6))
    if kind == 0:  # round badge with a letter
        d.ellipse((0, 0, size - 1, size - 1), fill=255)
        d.text((size // 2, size // 2), "ABCMNX"[int(rng.integers(6))], font=_font(int(size * 0.7)), fill=0,
               anchor="mm")
    elif kind in (1, 4):  # five-pointed star(s), with a word or alone
        for k in range(1 if kind == 1 else int(rng.integers(1, 4))):
            c = size / 2 + k * size * 1.1
            pts = [(c + size / 2 * np.cos(np.pi / 2 + j * 4 * np.pi / 5),
                    size / 2 - size / 2 * np.sin(np.pi / 2 + j * 4 * np.pi / 5)) for j in range(5)]
            d.polygon(pts, fill=255)
        if kind == 1:
            d.text((int(size * 1.1), size // 2), "Star", font=_font(int(size * 0.6)), fill=255, anchor="lm")
    elif kind == 2:  # boxed "TV" / "HD"
        d.rounded_rectangle((0, 0, int(size * 1.6), size - 1), radius=size // 5, outline=255, width=max(1, size // 8))
        d.text((int(size * 0.8), size // 2), ("TV", "HD", "4K")[int(rng.integers(3))], font=_font(int(size * 0.6)),
               fill=255, anchor="mm")
    elif kind == 3:  # three dots + word
        for k in range(3):
            r = size * 0.18
            d.ellipse((k * size * 0.42, size / 2 - r, k * size * 0.42 + 2 * r, size / 2 + r), fill=255)
        d.text((int(size * 1.3), size // 2), "live", font=_font(int(size * 0.6)), fill=255, anchor="lm")
    else:  # plain light blobs: ellipses and rounded shapes (lamps, reflections, clouds of the scene)
        for _ in range(int(rng.integers(1, 4))):
            x0, y0 = rng.uniform(0, size * 2), rng.uniform(0, size * 0.5)
            d.ellipse((x0, y0, x0 + rng.uniform(0.3, 1.0) * size, y0 + rng.uniform(0.3, 0.5) * size), fill=255)
    x = int(rng.integers(0, max(1, w - layer.width)))
    y = int(rng.integers(0, max(1, h - layer.height)))
    a = np.zeros((h, w), np.float32)
    piece = np.asarray(layer, np.float32)[: h - y, : w - x] / 255.0 * float(rng.uniform(0.4, 0.9))
    a[y:y + piece.shape[0], x:x + piece.shape[1]] = piece
    if rng.random() < 0.5:  # light but not white: coloured lamps, pale objects
        tint = rng.uniform(150, 255, 3)
        return np.clip(a[..., None] * tint + (1 - a[..., None]) * img, 0, 255).astype(np.uint8)
    return np.clip(a[..., None] * 255 + (1 - a[..., None]) * img, 0, 255).astype(np.uint8)


def _layout(rng: np.random.Generator) -> tuple[int, int, tuple[int, int, int, int]]:
    """(frame_w, frame_h, picture box): a plain frame, or a picture between black bars."""
    if rng.random() >= BARS_RATE:
        fw, fh = SOURCE_SIZES[int(rng.integers(len(SOURCE_SIZES)))]
        return fw, fh, (0, 0, fw, fh)
    fw, fh, pw, ph = BAR_LAYOUTS[int(rng.integers(len(BAR_LAYOUTS)))]
    return fw, fh, ((fw - pw) // 2, (fh - ph) // 2, pw, ph)


def _mark(rng: np.random.Generator, pw: int, ph: int, scale: float):
    """A Sora mark variant (username or not, text gone or not, pupils anywhere) and its opacity."""
    username = None if rng.random() < 0.4 else _username(rng)
    text = rng.random() >= 0.1
    eyes = (float(rng.uniform(-2, 2)), float(rng.uniform(-1.2, 1.2)))
    size = wm.sora_scale_for_picture(pw, ph) * scale * float(rng.uniform(0.5, 1.3))
    t = wm.sora_mark(max(size, 0.12), username=username, eyes=eyes, text=text)
    opacity = float(rng.uniform(0.7, 0.9)) if rng.random() < 0.8 else float(rng.uniform(0.45, 0.7))
    return t, opacity


def _render_frame(rng: np.random.Generator, photos, negative: bool):
    """The frame as the detector sees it after a 640 letterbox (unpadded), the mark box in it, and
    points on hard negatives (faces' eyes) that crop windows may centre on."""
    fw, fh, (px, py, pw, ph) = _layout(rng)
    r = min(640 / fw, 640 / fh)
    k = 1.0 if rng.random() < 0.5 else float(rng.uniform(1.0, 1.5))  # render finer, then downscale
    rpw, rph = max(8, int(round(pw * r * k))), max(8, int(round(ph * r * k)))
    kinds = [f"photo:{p}" for p in photos] + list(wm.PROCEDURAL_KINDS) + list(wm.SCENE_KINDS) * 2
    n_faces = int(rng.integers(1, 4)) if rng.random() < 0.45 else 0
    bg = wm.Background(rpw, rph, seed=int(rng.integers(1 << 30)), kind=kinds[int(rng.integers(len(kinds)))],
                       motion=float(rng.uniform(0.3, 1.5)), faces=n_faces, captions=rng.random() < 0.3,
                       face_size=(0.04, 0.16))
    index = int(rng.integers(0, 300))
    pic = bg.frame(index)
    box = None
    if not negative:
        t, opacity = _mark(rng, pw, ph, r * k)
        if rng.random() < 0.6:
            x, y = wm.sora_slots(rpw, rph, t.width, t.height)[int(rng.integers(3))]
            x, y = x + int(rng.integers(-6, 7)), y + int(rng.integers(-6, 7))
        else:
            x, y = int(rng.integers(0, max(1, rpw - t.width))), int(rng.integers(0, max(1, rph - t.height)))
        x, y = min(max(x, 0), max(rpw - t.width, 0)), min(max(y, 0), max(rph - t.height, 0))
        pic = wm.composite(pic, t, x, y, opacity)
        ys, xs = np.nonzero(t.alpha > 0.004)
        box = (x + xs.min(), y + ys.min(), x + xs.max() + 1, y + ys.max() + 1)
    if rng.random() < LOGO_RATE:
        pic = _other_logo(pic, rng)
    if rng.random() < DISTRACTOR_RATE:
        pic = _distractor(pic, rng, 27 * wm.sora_scale_for_picture(pw, ph) * r * k)
    frame = np.zeros((max(1, int(round(fh * r * k))), max(1, int(round(fw * r * k))), 3), np.uint8)
    ox, oy = int(round(px * r * k)), int(round(py * r * k))
    frame[oy:oy + rph, ox:ox + rpw] = pic[: frame.shape[0] - oy, : frame.shape[1] - ox]
    if box is not None:
        box = (box[0] + ox, box[1] + oy, box[2] + ox, box[3] + oy)
    hard = [(x + ox, y - f["r"] * 0.2 + oy) for (x, y), f in zip(bg.face_centres(index), bg.faces)]
    return _degrade(frame, rng), box, hard


def _crop_origin(rng, size: int, imgsz: int, content: tuple[int, int, int, int], box_px,
                 hard: list[tuple[float, float]]) -> tuple[int, int]:
    left, top, cw, ch = content
    if hard and (not box_px or rng.random() < 0.3):  # a window around a face (possibly with the mark)
        x, y = hard[int(rng.integers(len(hard)))]
        ox = int(np.clip(x - size / 2 + rng.uniform(-size / 4, size / 4), 0, imgsz - size))
        oy = int(np.clip(y - size / 2 + rng.uniform(-size / 4, size / 4), 0, imgsz - size))
        return ox, oy
    if box_px and rng.random() < 0.85:  # a window holding the whole mark
        x1, y1, x2, y2 = box_px
        lo_x, hi_x = max(0, int(np.ceil(x2)) - size), min(imgsz - size, int(x1))
        lo_y, hi_y = max(0, int(np.ceil(y2)) - size), min(imgsz - size, int(y1))
        ox = int(rng.integers(lo_x, hi_x + 1)) if hi_x >= lo_x else int(np.clip(x1, 0, imgsz - size))
        oy = int(rng.integers(lo_y, hi_y + 1)) if hi_y >= lo_y else int(np.clip(y1, 0, imgsz - size))
        return ox, oy
    lo_x, lo_y = max(0, left - size // 4), max(0, top - size // 4)
    ox = int(rng.integers(lo_x, max(lo_x + 1, min(imgsz - size, left + cw - size * 3 // 4) + 1)))
    oy = int(rng.integers(lo_y, max(lo_y + 1, min(imgsz - size, top + ch - size * 3 // 4) + 1)))
    return ox, oy


def make_sample(seed: int, split: int, index: int, *, imgsz: int = 640, crop: int | None = None,
                negative_rate: float = NEGATIVE_RATE, photos: tuple[str, ...] | None = None) -> Sample:
    """Generate one training image and its labels (see module docstring)."""
    rng = np.random.default_rng([seed, split, index])
    if photos is None:
        photos = tuple(p for p in wm.available_photos() if p not in wm.HELDOUT_PHOTOS)
    frame, box, hard = _render_frame(rng, photos, rng.random() < negative_rate)
    boxed, r, left, top = letterbox(frame, imgsz)
    boxes_px = [(box[0] * r + left, box[1] * r + top, box[2] * r + left, box[3] * r + top)] if box else []
    if crop is None or crop >= imgsz:
        image, ox, oy, size = boxed, 0, 0, imgsz
    else:
        size = crop
        content = (left, top, boxed.shape[1] - 2 * left, boxed.shape[0] - 2 * top)
        hard_px = [(x * r + left, y * r + top) for x, y in hard]
        ox, oy = _crop_origin(rng, size, imgsz, content, boxes_px[0] if boxes_px else None, hard_px)
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
                     crop: int | None = 320, seed: int = 0, negative_rate: float = NEGATIVE_RATE,
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

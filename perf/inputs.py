"""Realistic uint8 inputs for perf_analyzer, cut from a generated, H.264-encoded Sora-like clip.

Random or zero tensors make models (and the dynamic batcher) look faster or slower than they are
on real frames, so the benchmark feeds what the pipeline feeds: frames letterboxed to 640 with
pad 114 for ``detector``, and square crops around the mark with their masks for the inpainters.
"""

from __future__ import annotations

import base64
import io
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
from PIL import Image, ImageDraw

LOGGER = logging.getLogger(__name__)

# Public descriptions of the landscape mark positions (DESIGN.md), cycled about every 67 frames.
LANDSCAPE_BOXES = ((30, 68, 179, 118), (1112, 321, 1266, 367), (35, 585, 176, 638))
LETTERBOX_PAD = 114


@dataclass(frozen=True)
class Clip:
    frames: np.ndarray  # uint8 [N, H, W, 3], decoded after a real H.264 round trip
    boxes: list[tuple[int, int, int, int]]  # mark box per frame


def _background(t: int, width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """A moving colour gradient with a few textured shapes: smooth areas plus edges, like video."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    r = 128 + 100 * np.sin((xx + 7 * t) / 180.0)
    g = 128 + 90 * np.cos((yy - 5 * t) / 140.0)
    b = 128 + 80 * np.sin((xx + yy + 3 * t) / 260.0)
    img = np.stack([r, g, b], axis=-1)
    img += rng.normal(0, 6, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def _draw_mark(img: Image.Image, box: tuple[int, int, int, int], opacity: float) -> None:
    """White star-like logo plus the word "Sora", alpha-blended like the real mark."""
    overlay = Image.new("L", img.size, 0)
    draw = ImageDraw.Draw(overlay)
    x1, y1, x2, y2 = box
    h = y2 - y1
    cx, cy, rad = x1 + h // 2, y1 + h // 2, h // 2 - 4
    star = []
    for k in range(10):
        angle = np.pi / 5 * k - np.pi / 2
        rr = rad if k % 2 == 0 else rad * 0.45
        star.append((cx + rr * np.cos(angle), cy + rr * np.sin(angle)))
    draw.polygon(star, fill=255)
    draw.text((x1 + h + 6, y1 + h // 3), "Sora", fill=255)
    alpha = (np.asarray(overlay, dtype=np.float32) / 255.0 * opacity)[..., None]
    arr = np.asarray(img, dtype=np.float32)
    img.paste(Image.fromarray(np.clip(arr * (1 - alpha) + 255 * alpha, 0, 255).astype(np.uint8)))


def generate_clip(n_frames: int = 12, width: int = 1280, height: int = 704, seed: int = 0) -> Clip:
    """Render ``n_frames`` with the mark jumping between its three positions, encode, decode back."""
    rng = np.random.default_rng(seed)
    boxes = [LANDSCAPE_BOXES[(i * len(LANDSCAPE_BOXES)) // max(n_frames, 1) % 3] for i in range(n_frames)]
    buf = io.BytesIO()
    with av.open(buf, mode="w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"crf": "23", "preset": "ultrafast"}
        for i in range(n_frames):
            img = Image.fromarray(_background(i, width, height, rng))
            _draw_mark(img, boxes[i], opacity=0.7)
            for packet in stream.encode(av.VideoFrame.from_image(img)):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    buf.seek(0)
    with av.open(buf, mode="r") as inp:
        frames = np.stack([f.to_ndarray(format="rgb24") for f in inp.decode(video=0)])
    return Clip(frames=frames, boxes=boxes)


def letterbox(frame: np.ndarray, size: int = 640) -> np.ndarray:
    """Resize keeping aspect ratio and pad to ``size``×``size`` with 114, as the pipeline does."""
    h, w = frame.shape[:2]
    scale = min(size / w, size / h)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    resized = np.asarray(Image.fromarray(frame).resize((nw, nh), Image.BILINEAR))
    out = np.full((size, size, 3), LETTERBOX_PAD, dtype=np.uint8)
    top, left = (size - nh) // 2, (size - nw) // 2
    out[top : top + nh, left : left + nw] = resized
    return out


def crop_with_mask(frame: np.ndarray, box: tuple[int, int, int, int], size: int, dilate: int = 4):
    """Square ``size`` crop centred on ``box`` (shifted inside the frame) and its hole mask."""
    h, w = frame.shape[:2]
    if size > h or size > w:
        frame = np.pad(frame, ((0, max(0, size - h)), (0, max(0, size - w)), (0, 0)), mode="edge")
        h, w = frame.shape[:2]
    x1, y1, x2, y2 = box
    left = int(np.clip((x1 + x2) // 2 - size // 2, 0, w - size))
    top = int(np.clip((y1 + y2) // 2 - size // 2, 0, h - size))
    crop = frame[top : top + size, left : left + size]
    mask = np.zeros((size, size), dtype=np.uint8)
    mx1, my1 = max(0, x1 - left - dilate), max(0, y1 - top - dilate)
    mx2, my2 = min(size, x2 - left + dilate), min(size, y2 - top + dilate)
    mask[my1:my2, mx1:mx2] = 255
    return np.ascontiguousarray(crop.transpose(2, 0, 1)), mask[None]


def _entry(name: str, array: np.ndarray) -> dict:
    return {name: {"b64": base64.b64encode(np.ascontiguousarray(array).tobytes()).decode(), "shape": list(array.shape)}}


class InputSpecError(ValueError):
    """The model's inputs are not ones this benchmark knows how to fill with real data."""


def write_input_data(model_inputs: list[dict], clip: Clip, path: Path) -> int:
    """Write a perf_analyzer ``--input-data`` JSON for a model with the given config inputs.

    ``model_inputs`` are the ``input`` entries of the model config (``name``, ``dims``,
    ``data_type``); batch dims are excluded. Returns the number of data steps written.
    """
    names = {i["name"]: i for i in model_inputs}
    for i in model_inputs:
        dtype = str(i.get("data_type", "TYPE_UINT8"))
        if dtype not in {"TYPE_UINT8", "UINT8"}:
            raise InputSpecError(f"input {i['name']} is {dtype}; the pipeline sends UINT8")
    steps: list[dict] = []
    if set(names) == {"images"}:
        dims = [int(d) for d in names["images"]["dims"]]
        if len(dims) != 3 or dims[0] != dims[1] or dims[2] != 3:
            raise InputSpecError(f"detector input 'images' must be [S, S, 3], got {dims}")
        steps = [_entry("images", letterbox(f, dims[0])) for f in clip.frames]
    elif set(names) == {"image", "mask"}:
        dims = [int(d) for d in names["image"]["dims"]]
        if len(dims) != 3 or dims[0] != 3 or dims[1] != dims[2]:
            raise InputSpecError(f"inpainter input 'image' must be [3, S, S], got {dims}")
        for frame, box in zip(clip.frames, clip.boxes):
            crop, mask = crop_with_mask(frame, box, dims[1])
            steps.append({**_entry("image", crop), **_entry("mask", mask)})
    else:
        raise InputSpecError(f"unknown model inputs {sorted(names)}: expected images, or image + mask")
    path.write_text(json.dumps({"data": steps}))
    LOGGER.info("wrote %d input steps to %s (%.1f MB)", len(steps), path, path.stat().st_size / 1e6)
    return len(steps)

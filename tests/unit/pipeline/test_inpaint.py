"""Crop planning for the inpainter (``inpaint.plan_crops``, ``Crop``)."""

from __future__ import annotations

import numpy as np

from orchestrator.pipeline.inpaint import plan_crops


def test_plan_picks_smallest_size_and_shifts_inside_frame():
    crops = plan_crops(np.array([[10, 20, 110, 60]]), 1280, 704, [256, 512])
    assert len(crops) == 1
    c = crops[0]
    assert (c.size, c.side) == (256, 256)
    assert c.x0 == 0 and c.y0 == 0  # shifted inside at the corner
    x0, y0, x1, y1 = c.region(1280, 704)
    assert x1 - x0 == 256 and y1 - y0 == 256


def test_plan_groups_nearby_boxes_and_downscales_big_ones():
    near = plan_crops(np.array([[100, 100, 150, 130], [170, 100, 220, 130]]), 1280, 704, [256, 512])
    assert len(near) == 1 and len(near[0].boxes) == 2
    far = plan_crops(np.array([[10, 10, 60, 40], [1100, 600, 1150, 640]]), 1280, 704, [256, 512])
    assert len(far) == 2
    big = plan_crops(np.array([[0, 0, 700, 400]]), 1280, 704, [256, 512])
    assert big[0].size == 512 and big[0].side > 512  # region downscaled into the largest crop


def test_crop_extract_paste_roundtrip_only_touches_the_hole():
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 255, (120, 200, 3), np.uint8)
    crop = plan_crops(np.array([[50, 40, 90, 70]]), 200, 120, [256])[0]  # frame smaller than crop
    image, mask = crop.extract(frame)
    assert image.shape == (3, 256, 256) and mask.shape == (1, 256, 256)
    assert mask.sum() // 255 == 40 * 30
    before = frame.copy()
    out = image.copy()
    out[:, mask[0] > 0] = 0  # "inpainted": the hole turns black
    crop.paste(frame, out)
    assert (frame[40:70, 50:90] < 10).all()
    far = np.ones((120, 200), bool)
    far[30:80, 40:100] = False
    assert (frame[far] == before[far]).all()

"""Planning and per-frame removal (``plan.plan_mattes``, ``remove.plan_frame``) and the task details
built from their hand-offs (``marks``), on generated frames whose clean content is known."""

from __future__ import annotations

import numpy as np

from orchestrator.pipeline import matte
from orchestrator.pipeline import boxes as bx
from orchestrator.pipeline.boxes import centre_window
from orchestrator.pipeline.inpaint import even_box
from orchestrator.pipeline.marks import Mark, MarkKey, MarkPlan, MarkReport, marks_details
from orchestrator.pipeline.options import Region
from orchestrator.pipeline.plan import plan_mattes
from orchestrator.pipeline.remove import frame_keys, plan_frame

WIDTH, HEIGHT = 320, 180


def _alpha(h: int, w: int, peak: float) -> np.ndarray:
    """A bar-shaped matte with soft edges in the middle of an [h, w] window."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    inside = np.clip(6.0 - np.maximum(np.abs(yy - h / 2) - 4, np.abs(xx - w / 2) - 20), 0, 1)
    return (peak * inside).astype(np.float32)


def _scene(alpha: np.ndarray, x0: int, y0: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A textured frame and the same frame with a white mark of ``alpha`` at (x0, y0)."""
    rng = np.random.default_rng(seed)
    clean = rng.uniform(40, 200, (HEIGHT, WIDTH, 3)).astype(np.float32)
    marked = clean.copy()
    h, w = alpha.shape
    a = alpha[..., None]
    marked[y0 : y0 + h, x0 : x0 + w] = a * 255.0 + (1 - a) * clean[y0 : y0 + h, x0 : x0 + w]
    return clean.round().astype(np.uint8), marked.round().astype(np.uint8)


def _estimate(alpha: np.ndarray, threshold: float = 0.9) -> matte.MatteEstimate:
    n = 1
    return matte.MatteEstimate(alpha=alpha, color=matte.WHITE, frame_opacity=np.ones(n, np.float32),
                               residual=np.zeros(n, np.float32), reliable=True, reason="ok",
                               alpha_threshold=threshold, max_residual=0.5, support=alpha > 0.01)


def test_centre_window_shifts_inside_the_frame_and_refuses_larger_windows():
    assert centre_window((100, 50, 140, 70), 60, 30, WIDTH, HEIGHT) == (90, 45)
    assert centre_window((300, 160, 318, 178), 60, 30, WIDTH, HEIGHT) == (WIDTH - 60, HEIGHT - 30)
    assert centre_window((0, 0, 10, 10), 60, 30, WIDTH, HEIGHT) == (0, 0)
    assert centre_window((0, 0, 10, 10), WIDTH + 1, 30, WIDTH, HEIGHT) is None


def test_frame_with_a_fitting_plan_is_inverted_and_needs_no_inpainter():
    alpha = _alpha(40, 80, 0.5)
    clean, marked = _scene(alpha, 100, 60)
    key = MarkKey.position(0)
    plan = MarkPlan(_estimate(alpha), (100, 60, 80, 40), np.zeros(2, np.float32))
    box = np.array([[110, 66, 170, 94]])
    area = plan_frame(lambda x0, y0, x1, y1: marked[y0:y1, x0:x1].copy(), WIDTH, HEIGHT, box, [key],
                      {key: plan}, [64, 128], 0.1)
    assert area is not None and area.matte_marks == 1 and area.crops == []
    assert area.roi == even_box(100, 60, 180, 100, WIDTH, HEIGHT)
    x0, y0 = area.roi[:2]
    got = area.rgb[60 - y0 : 100 - y0, 100 - x0 : 180 - x0].astype(float)
    want = clean[60:100, 100:180].astype(float)
    before = marked[60:100, 100:180].astype(float)
    assert np.abs(got - want).mean() < 0.25 * np.abs(before - want).mean()


def test_opaque_core_becomes_a_hole_crop_and_other_boxes_whole_crops():
    alpha = _alpha(40, 80, 1.0)
    _, marked = _scene(alpha, 100, 60)
    key = MarkKey.position(0)
    plan = MarkPlan(_estimate(alpha), (100, 60, 80, 40), np.zeros(2, np.float32))
    boxes = np.array([[110, 66, 170, 94], [10, 10, 40, 30]])  # the second box has no plan
    area = plan_frame(lambda x0, y0, x1, y1: marked[y0:y1, x0:x1].copy(), WIDTH, HEIGHT, boxes,
                      [key, MarkKey.region(0)], {key: plan}, [64, 128], 0.1)
    assert area.matte_marks == 1 and len(area.crops) == 2
    box_crop, hole_crop = area.crops
    assert box_crop.hole is None and box_crop.boxes.tolist() == [[10, 10, 40, 30]]
    rx0, ry0, rx1, ry1 = hole_crop.region(WIDTH, HEIGHT)
    hole = np.zeros((HEIGHT, WIDTH), bool)
    hole[ry0:ry1, rx0:rx1] = hole_crop.hole
    core = np.zeros((HEIGHT, WIDTH), bool)
    core[60:100, 100:180] = alpha > 0.9
    assert hole[core].all() and not hole[:, :95].any()  # the matte's core, not the box


def test_without_a_matching_key_count_every_box_is_inpainted_whole():
    alpha = _alpha(40, 80, 0.5)
    _, marked = _scene(alpha, 100, 60)
    key = MarkKey.position(0)
    plan = MarkPlan(_estimate(alpha), (100, 60, 80, 40), np.zeros(2, np.float32))
    area = plan_frame(lambda x0, y0, x1, y1: marked[y0:y1, x0:x1].copy(), WIDTH, HEIGHT,
                      np.array([[110, 66, 170, 94]]), [], {key: plan}, [64, 128], 0.1)
    assert area.matte_marks == 0 and len(area.crops) == 1 and area.crops[0].hole is None
    assert plan_frame(lambda *a: None, WIDTH, HEIGHT, np.zeros((0, 4)), [], {}, [64], 0.1) is None


def test_frame_keys_name_positions_then_active_regions():
    from orchestrator.pipeline.boxes import build_timeline

    a = np.array([[10, 10, 50, 30, 0.9]])
    timeline = build_timeline(20, {f: a for f in range(20)})
    regions = [Region(box=(0, 0, 5, 5), start=0.0, end=1.0), Region(box=(0, 0, 5, 5), start=2.0)]
    assert frame_keys(timeline, 3, 0.5, regions) == [MarkKey.position(0), MarkKey.region(0)]
    assert frame_keys(timeline, 25, 2.5, regions) == [MarkKey.region(1)]


def test_plan_reports_why_a_mark_gets_no_matte():
    sampler = matte.CropSampler(per_position=8)
    marks = [Mark(MarkKey.position(0), np.array([100.0, 60, 180, 100]))]
    plans, reports = plan_mattes(marks, sampler, WIDTH, HEIGHT)
    assert plans == {} and reports[MarkKey.position(0)] == MarkReport(reason="no crops")
    frame = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    sampler.on_marked(0, frame, np.array([[100.0, 60, 180, 100]]))
    far = [Mark(MarkKey.region(0), np.array([0.0, 0, 20, 20]))]
    plans, reports = plan_mattes(marks + far, sampler, WIDTH, HEIGHT)
    assert plans == {}
    assert reports[MarkKey.position(0)].reason == reports[MarkKey.region(0)].reason == "too few crops"


def test_plan_pools_a_moving_background_into_a_usable_matte():
    """Crops of one position over a panning texture: a reliable estimate, a window centred on the
    mark's box inside the frame, and the mark's offset in it about zero."""
    alpha = _alpha(40, 80, 0.5)
    rng = np.random.default_rng(3)
    big = rng.uniform(40, 200, (HEIGHT + 40, WIDTH + 80, 3)).astype(np.float32)
    big = (big + np.roll(big, 1, 0) + np.roll(big, 1, 1)) / 3
    sampler = matte.CropSampler(per_position=64)
    box = np.array([115.0, 70, 165, 90])
    for t in range(24):
        frame = big[t : t + HEIGHT, 2 * t : 2 * t + WIDTH].copy()
        frame[60:100, 100:180] = alpha[..., None] * 255 + (1 - alpha[..., None]) * frame[60:100, 100:180]
        sampler.on_marked(t, frame.round().astype(np.uint8), box[None])
    mark = Mark(MarkKey.position(0), box)
    plans, reports = plan_mattes([mark], sampler, WIDTH, HEIGHT)
    report = reports[mark.key]
    assert report.method == "matte" and report.reason is None and report.matte["scope"] == "position"
    plan = plans[mark.key]
    x0, y0, cw, ch = plan.window
    assert (x0, y0) == centre_window(box, cw, ch, WIDTH, HEIGHT)
    assert np.abs(plan.offset).max() <= 1.0


def test_a_loose_mark_box_gets_the_window_its_crops_were_cut_in():
    """The mark's box from discovery can be loose (texture taken along below the mark); the plan's
    window is where the position's crops were cut, so the whole mark lies inside it and its
    offset there is the crops' (username 9103: centred on the loose box, the window started 22 px
    below the mark's top and the top of the mark stayed)."""
    alpha = _alpha(40, 80, 0.5)
    rng = np.random.default_rng(4)
    big = rng.uniform(40, 200, (HEIGHT + 40, WIDTH + 80, 3)).astype(np.float32)
    big = (big + np.roll(big, 1, 0) + np.roll(big, 1, 1)) / 3
    sampler = matte.CropSampler(per_position=64)
    box = np.array([100.0, 60, 180, 100])  # the mark's window (its bar and soft edges)
    for t in range(24):
        frame = big[t : t + HEIGHT, 2 * t : 2 * t + WIDTH].copy()
        frame[60:100, 100:180] = alpha[..., None] * 255 + (1 - alpha[..., None]) * frame[60:100, 100:180]
        sampler.on_marked(t, frame.round().astype(np.uint8), box[None])
    loose = np.array([95.0, 55, 185, 170])  # taken along 70 px of texture below the mark
    tight, wide = Mark(MarkKey.position(0), box), Mark(MarkKey.position(0), loose)
    plan = plan_mattes([tight], sampler, WIDTH, HEIGHT)[0][tight.key]
    got = plan_mattes([wide], sampler, WIDTH, HEIGHT)[0][wide.key]
    x0, y0, cw, ch = got.window
    assert (x0, y0) != centre_window(loose, cw, ch, WIDTH, HEIGHT)  # (that one starts below the mark)
    assert got.window == plan.window and np.allclose(got.offset, plan.offset)
    # and the mark is removed through the loose box's plan
    clean, marked = _scene(alpha, 100, 60, seed=5)
    area = plan_frame(lambda a, b, c, d: marked[b:d, a:c].copy(), WIDTH, HEIGHT, loose[None], [wide.key],
                      {wide.key: got}, [64, 128], 0.1)
    ax, ay = area.roi[:2]
    out = area.rgb[60 - ay : 100 - ay, 100 - ax : 180 - ax].astype(float)
    want, before = clean[60:100, 100:180].astype(float), marked[60:100, 100:180].astype(float)
    assert np.abs(out - want).mean() < 0.25 * np.abs(before - want).mean()


def test_details_keep_the_documented_shape():
    marks = [Mark(MarkKey.position(0), np.array([10.04, 20.0, 30.0, 40.06])),
             Mark(MarkKey.region(0), np.array([1.0, 2, 3, 4]), Region(box=(1, 2, 3, 4), start=0.5))]
    reports = {MarkKey.position(0): MarkReport("matte", None, {"reliable": True, "scope": "pool"}),
               MarkKey.region(0): MarkReport(reason="too few crops")}
    details = marks_details(marks, reports, detect=True)
    assert details == {
        "marks": [{"box": [10.0, 20.0, 30.0, 40.1], "method": "matte", "matte": {"reliable": True, "scope": "pool"}}],
        "regions": [{"box": [1.0, 2.0, 3.0, 4.0], "start": 0.5, "end": None, "method": "inpaint",
                     "reason": "too few crops"}],
    }
    assert list(details["regions"][0]) == ["box", "start", "end", "method", "reason"]
    assert "marks" not in marks_details(marks, {}, detect=False)


def test_regions_of_one_mark_share_one_estimate():
    """A user's time-ranged regions around the visits of one mark pool like detected positions
    (one region's visit alone is a few independent backgrounds); another logo of another size
    keeps its own estimate."""
    alpha = _alpha(40, 80, 0.6)
    boxes = [np.array([20.0, 20, 100, 60]), np.array([200.0, 110, 280, 150]), np.array([150.0, 20, 190, 40])]
    sampler = matte.CropSampler(per_position=48)
    for i in range(48):
        clean, marked = _scene(alpha, *(20, 20) if i < 24 else (200, 110), seed=i)
        small = marked.astype(np.float32)  # a small grey logo elsewhere, all the time
        small[20:40, 150:190] = 0.5 * 128 + 0.5 * small[20:40, 150:190]
        frame = small.round().astype(np.uint8)
        sampler.on_marked(i, frame, np.stack([boxes[0] if i < 24 else boxes[1], boxes[2]]))
    marks = [Mark(MarkKey.region(k), b, Region(box=tuple(b))) for k, b in enumerate(boxes)]
    plans, reports = plan_mattes(marks, sampler, WIDTH, HEIGHT)
    a, b = plans[MarkKey.region(0)], plans[MarkKey.region(1)]
    assert a.estimate is b.estimate and reports[MarkKey.region(0)].matte["scope"] == "pool"
    other = plans.get(MarkKey.region(2))
    assert other is None or other.estimate is not a.estimate


def test_a_frame_the_mark_has_left_is_left_untouched_not_inpainted():
    """The timeline can keep a place a few frames after the mark left it (a departure not seen):
    the tracker finds no mark there and the frame is not edited (issue 14: first, do no harm)."""
    alpha = _alpha(40, 80, 0.6)
    clean, marked = _scene(alpha, 100, 60)
    key = MarkKey.position(0)
    plan = MarkPlan(_estimate(alpha), (100, 60, 80, 40), np.zeros(2, np.float32))
    box = np.array([[110, 66, 170, 94]])
    tracker = matte.VisitTracker(chroma_subsampled=False)
    area = plan_frame(lambda x0, y0, x1, y1: marked[y0:y1, x0:x1].copy(), WIDTH, HEIGHT, box, [key],
                      {key: plan}, [64, 128], 0.1, tracker=tracker)
    assert area is not None and area.matte_marks == 1 and tracker.counts["absent"] == 0
    gone = plan_frame(lambda x0, y0, x1, y1: clean[y0:y1, x0:x1].copy(), WIDTH, HEIGHT, box, [key],
                      {key: plan}, [64, 128], 0.1, tracker=tracker)
    assert gone is None and tracker.counts["absent"] == 1


def test_a_mark_takes_the_window_holding_its_centre_with_the_most_crops():
    """The windows one place had on real runs (pass 1's boxes: a part of the mark first, the
    whole, discovery's loose extent, the detector's tight box) and the one each mark must take."""
    from orchestrator.pipeline.plan import _best_window

    def pick(box, windows, crops):
        box, windows = np.asarray(box, np.float64), np.asarray(windows, np.float64)
        return _best_window(box, windows, bx.iou_matrix(box[None], windows)[0], np.asarray(crops))

    # saturated 9101: the cloud's window, the text's (best IoU, cuts the cloud), the whole mark's
    assert pick([15, 44, 99, 79], [[5, 34, 66, 88], [40, 40, 118, 82], [-2, 34, 115, 88]], [6, 6, 32]) == 2
    # pillarbox 9101: a loose box's own window (few crops) and the tight one that holds its centre
    assert pick([452, 434, 538, 479], [[436, 424, 554, 490], [453, 444, 537, 477]], [9, 29]) == 1
    # a loose box no window holds the centre of: the best IoU, as before
    assert pick([742, 120, 820, 280], [[727, 235, 836, 289], [738, 246, 824, 280]], [7, 10]) == 0

"""Do no harm in the planning: a position whose matte shows no overlay is left untouched (no
fallback to inpainting a box of clean picture), and the task says plainly what happened."""

from __future__ import annotations

import numpy as np

from orchestrator.cli import describe_outcome
from orchestrator.pipeline import boxes as bx
from orchestrator.pipeline.marks import Mark, MarkKey, MarkReport
from orchestrator.pipeline.marks import mark_details, outcome
from orchestrator.pipeline.plan import leave_unmarked as _leave_unmarked


def test_no_overlay_matte_leaves_the_position_untouched():
    timeline = bx.Timeline(np.array([[0.0, 0, 140, 40], [300, 200, 380, 230]]), np.ones((2, 10), bool), [10, 10])
    marks = [Mark(MarkKey.position(0), timeline.positions[0]), Mark(MarkKey.position(1), timeline.positions[1])]
    reports = {MarkKey.position(0): MarkReport(reason="the fixed matte does not fit",
                                               matte={"alpha_max": 0.08, "reliable": False}),
               MarkKey.position(1): MarkReport(method="matte", matte={"alpha_max": 0.8, "reliable": True})}
    plans = {MarkKey.position(1): object()}
    _leave_unmarked(marks, plans, reports, timeline)
    faint = reports[MarkKey.position(0)]
    assert faint.method == "untouched" and "no overlay" in faint.reason
    assert not timeline.present[0].any()  # no box: no inpainting fallback either
    assert reports[MarkKey.position(1)].method == "matte" and MarkKey.position(1) in plans
    assert timeline.present[1].all()


def test_outcome_words():
    assert outcome({"frames_with_boxes": 0, "marks": []}) == "no watermark found"
    assert outcome({"frames_with_boxes": 0, "marks": [{"method": "untouched"}]}) == "found, left untouched"
    assert outcome({"frames_with_boxes": 0, "marks": [{"method": "untouched", "confirmed": False}]}) == \
        "no watermark found"
    assert outcome({"frames_with_boxes": 5, "marks": [{"method": "matte"}]}) == "removed"
    task = {"details": {"outcome": "removed", "marks": [
        {"method": "matte", "mark": 0, "visits": [[0, 67], [201, 268]]},
        {"method": "inpaint", "mark": 0, "visits": [[67, 134]]}]}}
    assert describe_outcome(task) == "removed (1 mark(s), 2 position(s), 3 visit(s): matte 1, inpaint 1)"
    assert describe_outcome({"details": {"outcome": "no watermark found"}}) == "no watermark found"


def test_a_place_discovery_confirmed_keeps_the_inpainting_fallback():
    timeline = bx.Timeline(np.array([[0.0, 0, 140, 40]]), np.ones((1, 10), bool), [10])
    marks = [Mark(MarkKey.position(0), timeline.positions[0], found={"source": "discovery", "alpha": 0.75})]
    reports = {MarkKey.position(0): MarkReport(reason="too few crops", matte={"alpha_max": 0.0})}
    _leave_unmarked(marks, {}, reports, timeline)
    assert reports[MarkKey.position(0)].method == "inpaint" and timeline.present[0].all()


def test_an_unconfirmed_detection_is_altered_only_through_a_usable_matte():
    timeline = bx.Timeline(np.array([[0.0, 0, 140, 40], [300, 200, 380, 230]]), np.ones((2, 10), bool), [10, 10])
    guess = {"source": "detector", "confirmed": False}
    marks = [Mark(MarkKey.position(0), timeline.positions[0], found=guess),
             Mark(MarkKey.position(1), timeline.positions[1], found=guess)]
    # The matte fits an overlay at position 1 (a plan); at position 0 it is unusable but not ~0,
    # which would send a confirmed mark to the inpainting fallback.
    reports = {MarkKey.position(0): MarkReport(reason="the fixed matte does not fit",
                                               matte={"alpha_max": 0.4, "reliable": False}),
               MarkKey.position(1): MarkReport(method="matte", matte={"alpha_max": 0.8, "reliable": True,
                                                                      "color": [255.0, 255.0, 255.0]})}
    plans = {MarkKey.position(1): object()}
    _leave_unmarked(marks, plans, reports, timeline)
    assert reports[MarkKey.position(0)].method == "untouched" and "unconfirmed" in reports[MarkKey.position(0)].reason
    assert not timeline.present[0].any()
    assert reports[MarkKey.position(1)].method == "matte" and timeline.present[1].all()


def test_an_unconfirmed_detection_whose_matte_took_the_texture_colours_is_left_untouched():
    timeline = bx.Timeline(np.array([[0.0, 0, 140, 40]]), np.ones((1, 10), bool), [10])
    marks = [Mark(MarkKey.position(0), timeline.positions[0], found={"source": "detector", "confirmed": False})]
    # Seen on a false box over clean texture: a "reliable" fit, alpha 0.43, a beige colour.
    reports = {MarkKey.position(0): MarkReport(method="matte", matte={"alpha_max": 0.43, "reliable": True,
                                                                      "color": [255.0, 231.2, 158.2]})}
    plans = {MarkKey.position(0): object()}
    _leave_unmarked(marks, plans, reports, timeline)
    assert reports[MarkKey.position(0)].method == "untouched" and not plans and not timeline.present[0].any()


def test_an_unconfirmed_place_the_kept_mark_jumps_from_keeps_the_fallback():
    present = np.zeros((3, 120), bool)
    present[0, :56] = True  # the mark's first visit: too few crops for a matte
    present[1, 56:] = True  # its second: the matte fits a white overlay
    present[2, 30:50] = True  # a guess elsewhere during the first visit: no jump of the mark
    timeline = bx.Timeline(np.array([[14.0, 33, 92, 60], [556, 163, 630, 189], [300, 100, 380, 126]]), present,
                           [56, 64, 20])
    guess = {"source": "detector", "confirmed": False}
    marks = [Mark(MarkKey.position(k), timeline.positions[k], found=guess) for k in range(3)]
    reports = {MarkKey.position(0): MarkReport(reason="too few frames (7 < 8)", matte={"alpha_max": 0.0}),
               MarkKey.position(1): MarkReport(method="matte", matte={"alpha_max": 0.8, "reliable": True,
                                                                      "color": [250.0, 250.0, 250.0]}),
               MarkKey.position(2): MarkReport(reason="too few crops")}
    _leave_unmarked(marks, {MarkKey.position(1): object()}, reports, timeline)
    assert reports[MarkKey.position(0)].method == "inpaint" and timeline.present[0, :56].all()
    assert reports[MarkKey.position(2)].method == "untouched" and not timeline.present[2].any()
    # The task details say why the first place was altered: the jump confirmed it.
    first = mark_details(marks[0], reports[MarkKey.position(0)])
    assert first["confirmed"] is True and first["confirmed_by"] == "jump"
    assert "confirmed_by" not in mark_details(marks[2], reports[MarkKey.position(2)])


def test_a_place_the_mark_jumped_to_is_inpainted_when_its_matte_finds_nothing():
    timeline = bx.Timeline(np.array([[57.0, 890, 268, 964]]), np.ones((1, 10), bool), [10])
    marks = [Mark(MarkKey.position(0), timeline.positions[0], found={"source": "jump", "confirmed": True})]
    reports = {MarkKey.position(0): MarkReport(method="matte", matte={"alpha_max": 0.0, "reliable": True})}
    plans = {MarkKey.position(0): object()}
    _leave_unmarked(marks, plans, reports, timeline)
    assert reports[MarkKey.position(0)].method == "inpaint" and not plans and timeline.present[0].all()

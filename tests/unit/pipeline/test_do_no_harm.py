"""Do no harm in the planning: a position whose matte shows no overlay is left untouched (no
fallback to inpainting a box of clean picture), and the task says plainly what happened."""

from __future__ import annotations

import numpy as np

from orchestrator.cli import describe_outcome
from orchestrator.pipeline import boxes as bx
from orchestrator.pipeline.run import _leave_unmarked, outcome


def test_no_overlay_matte_leaves_the_position_untouched():
    timeline = bx.Timeline(np.array([[0.0, 0, 140, 40], [300, 200, 380, 230]]), np.ones((2, 10), bool), [10, 10])
    faint = {"box": [0, 0, 140, 40], "method": "inpaint", "matte": {"alpha_max": 0.08, "reliable": False}}
    real = {"box": [300, 200, 380, 230], "method": "matte", "matte": {"alpha_max": 0.8, "reliable": True}}
    marks = [(("p", 0), timeline.positions[0], faint), (("p", 1), timeline.positions[1], real)]
    plans = {("p", 0): object(), ("p", 1): object()}
    _leave_unmarked(marks, plans, timeline)
    assert faint["method"] == "untouched" and "no overlay" in faint["reason"]
    assert ("p", 0) not in plans and not timeline.present[0].any()
    assert real["method"] == "matte" and ("p", 1) in plans and timeline.present[1].all()


def test_outcome_words():
    assert outcome({"frames_with_boxes": 0, "marks": []}) == "no watermark found"
    assert outcome({"frames_with_boxes": 0, "marks": [{"method": "untouched"}]}) == "found, left untouched"
    assert outcome({"frames_with_boxes": 5, "marks": [{"method": "matte"}]}) == "removed"
    task = {"details": {"outcome": "removed", "marks": [
        {"method": "matte", "mark": 0, "visits": [[0, 67], [201, 268]]},
        {"method": "inpaint", "mark": 0, "visits": [[67, 134]]}]}}
    assert describe_outcome(task) == "removed (1 mark(s), 2 position(s), 3 visit(s): matte 1, inpaint 1)"
    assert describe_outcome({"details": {"outcome": "no watermark found"}}) == "no watermark found"

"""Inference deadlines follow the measured cost of each model and the batch sent."""

from __future__ import annotations

import pytest

from orchestrator.triton.deadlines import DeadlinePolicy, Deadlines, shared


def test_unmeasured_models_get_the_first_call_deadline():
    deadlines = Deadlines(DeadlinePolicy(floor_s=60, first_s=900))
    assert deadlines.timeout_s("inpainter", 8) == 900


def test_the_deadline_scales_with_cost_and_batch_above_the_floor():
    deadlines = Deadlines(DeadlinePolicy(floor_s=60, first_s=900, factor=4))
    deadlines.observe("detector", 16, 0.8)  # 50 ms per image (a GPU)
    assert deadlines.timeout_s("detector", 16) == 60  # 3.2 s wanted: the floor
    deadlines.observe("inpainter", 8, 8 * 27.0)  # CPU LaMa: 27 s per crop, 216 s at batch 8
    assert deadlines.timeout_s("inpainter", 8) == pytest.approx(4 * 27.0 * 8)  # 864 s, not 60
    assert deadlines.timeout_s("inpainter", 1) == pytest.approx(108)
    assert deadlines.timeout_s("inpainter", 16) == pytest.approx(1728)


def test_a_slower_request_raises_the_next_deadline_at_once_and_it_relaxes_over_time():
    deadlines = Deadlines(DeadlinePolicy(floor_s=1, factor=2), smoothing=0.5)
    deadlines.observe("m", 1, 1.0)
    deadlines.observe("m", 1, 10.0)  # the machine got busy
    assert deadlines.timeout_s("m", 1) == pytest.approx(20)
    deadlines.observe("m", 1, 1.0)
    deadlines.observe("m", 1, 1.0)
    assert deadlines.timeout_s("m", 1) == pytest.approx(2 * 2.125)  # average 5.5 -> 3.25 -> 2.125


def test_ceiling_and_one_table_per_server():
    deadlines = Deadlines(DeadlinePolicy(floor_s=1, factor=4, ceiling_s=100))
    deadlines.observe("m", 1, 1000.0)
    assert deadlines.timeout_s("m", 4) == 100
    policy = DeadlinePolicy(floor_s=7)
    assert shared("a:1", policy) is shared("a:1", policy) and shared("a:1", policy) is not shared("b:1", policy)

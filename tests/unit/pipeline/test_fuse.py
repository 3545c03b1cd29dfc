"""Discovery fused with the demo detector (``discover.fuse``): one entry per place, discovery's box
widened to the detector's, the detector's visits discovery missed, one frame per jump."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from orchestrator.pipeline import boxes as bx
from orchestrator.errors import TritonUnavailableError
from orchestrator.pipeline.discover import PictureArea, detector_weights, fuse
from orchestrator.pipeline.discover.result import Discovery, FoundPosition

N = 120
TEXT_ONLY = (587.0, 162.0, 640.0, 189.0)  # discovery's extent: the wordmark, clipped at the frame's edge
WHOLE = (556.0, 163.0, 633.0, 189.0)  # the detector's box: cloud + wordmark
OTHER = (14.0, 296.0, 100.0, 329.0)


def discovery(places: list[tuple[tuple, list[tuple[int, int]]]]) -> Discovery:
    present = np.zeros((len(places), N), bool)
    for k, (_, visits) in enumerate(places):
        for a, b in visits:
            present[k, a:b] = True
    positions = tuple(FoundPosition(box, tuple(visits), 0.8, 2, k) for k, (box, visits) in enumerate(places))
    timeline = bx.Timeline(np.array([p[0] for p in places], np.float64), present, [int(r.sum()) for r in present])
    return Discovery(PictureArea.full(640, 360), positions, timeline, N, 0.1, len(places))


def detected(places: list[tuple[tuple, list[tuple[int, int]]]]) -> bx.Timeline:
    return discovery(places).timeline


def test_discoverys_box_is_widened_to_the_detectors_and_the_exit_frames_join_the_old_place():
    found = discovery([(TEXT_ONLY, [(0, 55)]), (OTHER, [(57, N)])])
    det = detected([(WHOLE, [(0, 57)]), (OTHER, [(57, N)])])
    fused = fuse(det, found, weights="demo")
    assert fused.leader == "discovery" and [p.source for p in fused.positions] == ["both", "both"]
    np.testing.assert_allclose(fused.timeline.positions[0], (556, 162, 640, 189))
    assert fused.positions[0].visits == ((0, 57),) and fused.positions[1].visits == ((57, N),)
    assert (fused.timeline.present.sum(0) == 1).all()  # one box per frame


def test_a_partial_box_inside_the_detectors_is_widened_to_it():
    found = discovery([((550.0, 174.0, 580.0, 192.0), [(0, N)])])  # a part of the mark
    fused = fuse(detected([(WHOLE, [(0, N)])]), found, weights="demo")
    np.testing.assert_allclose(fused.timeline.positions[0], (550, 163, 633, 192))


def test_a_box_far_larger_than_discoverys_is_not_joined():
    found = discovery([(OTHER, [(0, N)])])
    det = detected([((0.0, 250.0, 300.0, 360.0), [(0, N)])])  # holds discovery's place, 11x its size
    fused = fuse(det, found, weights="demo")
    np.testing.assert_allclose(fused.timeline.positions[0], OTHER)


def test_the_detector_adds_a_visit_discovery_missed_at_a_place_it_confirmed():
    # discovery saw the place's middle visit but not the video's last one (no departure to fit)
    found = discovery([(WHOLE, [(30, 58)]), (OTHER, [(0, 30), (60, 90)])])
    det = detected([(WHOLE, [(30, 60), (90, N)]), (OTHER, [(0, 30), (60, 90)])])
    fused = fuse(det, found, weights="demo")
    assert fused.positions[0].visits == ((30, 60), (90, N))  # and the cloud-only frames 58, 59
    assert fused.timeline.frames_with_boxes() == N and (fused.timeline.present.sum(0) == 1).all()


def test_two_detector_boxes_at_one_place_make_one_entry():
    found = discovery([(WHOLE, [(0, N)])])
    det = detected([(WHOLE, [(0, N)]), ((558.0, 160.0, 640.0, 192.0), [(0, 40)])])
    fused = fuse(det, found, weights="demo")
    assert len(fused.positions) == 1 and fused.timeline.present.shape == (1, N)


def test_a_mark_discovered_on_a_moment_of_the_video_and_never_detected_is_not_taken():
    # A face's features stepping twice (held-out clean_faces_text 8003): two small places of one
    # "mark" on frames 0-26 of 120, then nothing; the detector saw nothing there.
    brief = discovery([((481.0, 214.0, 505.0, 231.0), [(0, 10)]), ((495.0, 155.0, 514.0, 168.0), [(10, 26)])])
    brief = replace(brief, positions=tuple(replace(p, mark=0) for p in brief.positions))
    fused = fuse(None, brief, weights="demo")
    assert not fused.positions and not fused.timeline.present.any()
    # The same places holding the video (a mark that jumps once) are the mark.
    held = discovery([(WHOLE, [(0, 60)]), (OTHER, [(60, N)])])
    assert [p.source for p in fuse(None, held, weights="demo").positions] == ["discovery", "discovery"]
    # A brief overlay the detector saw too stays (the detector's evidence joins discovery's).
    seen = fuse(detected([(WHOLE, [(0, 20)])]), discovery([(WHOLE, [(0, 20)])]), weights="demo")
    assert [p.source for p in seen.positions] == ["both"]


def test_the_cloud_alone_a_little_taller_than_the_detectors_box_is_widened_to_it():
    # Held-out pillarbox 8003's first visit: discovery's box holds the cloud (with a margin), the
    # detector's the cloud and the text; together 1.6x the detector's box, 1.2x what they cover.
    cloud, whole = (742.5, 249.6, 780.0, 279.6), (751.1, 251.6, 818.5, 272.8)
    fused = fuse(detected([(whole, [(0, N)])]), discovery([(cloud, [(0, N)])]), weights="demo")
    np.testing.assert_allclose(fused.timeline.positions[0], (742.5, 249.6, 818.5, 279.6))


class _Client:
    def __init__(self, answer) -> None:
        self.answer = answer

    def model_parameters(self, model: str) -> dict[str, str]:
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


def test_detector_weights_failure_is_an_error_not_trust():
    """A metadata call that fails (Triton slow or gone) must not read as "trust the detector": the
    leader, and so the answer, would depend on whether Triton answered in time. It raises (the
    task is retried); a client without the call reads as unknown provenance."""
    assert detector_weights(_Client({"weights": "demo"})) == "demo"
    assert detector_weights(_Client({})) == ""
    assert detector_weights(object()) == ""
    with pytest.raises(TritonUnavailableError):
        detector_weights(_Client(TritonUnavailableError("model detector unavailable")))

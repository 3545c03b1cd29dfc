"""One mark's jump split at one frame (``discover.handover``): the cloud-only exit frames go to the
old place, an overlap of two places is settled by the detector's sightings."""

from __future__ import annotations

import numpy as np

from orchestrator.pipeline.discover.handover import Place, jumped_to, settle

A = np.array([20.0, 40, 110, 75])
B = np.array([300.0, 220, 390, 255])
N = 120


def rows(*visits_per_place):
    present = np.zeros((len(visits_per_place), N), bool)
    for k, visits in enumerate(visits_per_place):
        for a, b in visits:
            present[k, a:b] = True
    return present


def seen_at(box, frames):
    return {f: np.array([[*box, 0.8]], np.float32) for f in frames}


def test_cloud_only_exit_frames_go_to_the_old_place():
    present = rows([(0, 55)], [(57, 120)])  # discovery ended A where the text left (55), B arrives at 57
    places = [Place(A, 0), Place(B, 0)]
    assert settle(present, places, None) == 2
    assert present[0, :57].all() and not present[0, 57:].any()
    assert present[1, 57:].all() and not present[1, :57].any()


def test_a_longer_gap_is_not_closed_without_the_detector():
    present = rows([(0, 50)], [(57, 120)])
    assert settle(present, [Place(A, 0), Place(B, 0)], None) == 0
    assert not present[:, 50:57].any()


def test_an_overlap_is_split_where_the_detector_saw_the_mark_move():
    # B's visit was scored back over texture to frame 5 while the mark stayed at A until 22.
    present = rows([(0, 21)], [(5, 90)])
    obs = {**seen_at(A, [0, 8, 16, 20, 21]), **seen_at(B, [22, 24, 32, 40])}
    settle(present, [Place(A, 0), Place(B, 0)], obs)
    assert present[0, :22].all() and not present[0, 22:].any()
    assert present[1, 22:90].all() and not present[1, :22].any()


def test_the_detectors_first_sighting_of_the_new_place_decides():
    # The detector's fill gave both places the frames 58..59, where it saw nothing (the cloud only).
    present = rows([(0, 60)], [(58, 120)])
    obs = {**seen_at(A, [48, 56, 57]), 58: np.zeros((0, 5), np.float32), 59: np.zeros((0, 5), np.float32),
           **seen_at(B, [60, 64])}
    settle(present, [Place(A, 0), Place(B, 0)], obs)
    assert present[0, :60].all() and not present[0, 60:].any()
    assert present[1, 60:].all() and not present[1, :60].any()


def test_two_marks_at_once_are_left_alone():
    present = rows([(0, 55)], [(40, 120)])
    obs = seen_at(A, [0, 8, 16, 24, 32, 40, 48])  # the detector knows A's mark only
    before = present.copy()
    assert settle(present, [Place(A, 0), Place(B, 1)], obs) == 0  # discovery: two marks
    big = np.array([300.0, 150, 500, 300])  # no mark ids and another size: another overlay
    assert settle(present, [Place(A, None), Place(big, None)], obs) == 0
    assert (present == before).all()


def test_the_detector_seeing_the_move_joins_places_discovery_told_apart():
    present = rows([(0, 55)], [(40, 120)])
    obs = {**seen_at(A, [0, 8, 16, 24, 32, 40, 48]), **seen_at(B, [56, 64])}
    settle(present, [Place(A, 0), Place(B, 1)], obs)
    assert present[0, :56].all() and not present[0, 56:].any()  # unseen frames after A's last sighting: A's
    assert present[1, 56:].all() and not present[1, :56].any()


def test_a_detector_box_inside_a_larger_place_is_a_sighting_there():
    big_b = np.array([280.0, 180, 430, 280])  # discovery's extent took texture along
    present = rows([(0, 83)], [(70, 90)])
    obs = {**seen_at(A, [64, 72, 80, 82]), **seen_at(B, [83, 88])}  # the detector's box: the mark alone
    settle(present, [Place(A, 0), Place(big_b, 1)], obs)
    assert present[0, :83].all() and not present[0, 83:].any() and present[1, 83:90].all()
    assert not present[1, :83].any()


def test_a_place_the_confirmed_mark_jumps_to_is_confirmed():
    present = rows([(0, 52)], [(52, 119)], [(119, 120)], [(60, 70)])
    c = np.array([555.0, 160, 635, 188])
    far = np.array([400.0, 10, 480, 38])
    places = [Place(A, 0), Place(B, 0), Place(c, None), Place(far, None)]
    assert jumped_to(present, places, [True, True, False, False]) == [2]  # not the one in mid-visit
    assert jumped_to(present, places, [False, False, False, False]) == []


def test_a_place_the_mark_came_from_is_confirmed_too():
    present = rows([(0, 1)], [(1, 68)])  # a departure on the video's second frame
    c = np.array([555.0, 160, 635, 188])
    assert jumped_to(present, [Place(c, None), Place(B, 0)], [False, True]) == [0]


def test_a_visit_the_detector_saw_elsewhere_all_along_is_dropped():
    far = np.array([290.0, 300, 360, 330])
    present = rows([(113, 180)], [(180, 247)], [(178, 182)])  # a 4-frame place inside a jump
    obs = {**seen_at(A, [176, 178, 179]), **seen_at(B, [180, 181, 184])}
    settle(present, [Place(A, 0), Place(B, 0), Place(far, 0)], obs)
    assert not present[2].any() and present[0, 113:180].all() and present[1, 180:247].all()
    present = rows([(113, 180)], [(178, 182)])  # seen there once: kept
    settle(present, [Place(A, 0), Place(far, 0)], seen_at(A, [179]))
    assert present[1, 180:182].all()


def test_a_jump_on_the_frame_confirms_a_place_beside_a_loose_discovery_box():
    present = rows([(49, 116)], [(116, 120)])
    loose = np.array([10.0, 31, 100, 81])  # discovery's 90x50 extent of a 77x26 mark
    c = np.array([555.0, 162, 634, 189])
    assert jumped_to(present, [Place(loose, 1), Place(c, None)], [True, False]) == [1]


def test_a_jump_in_the_last_frames_is_split_where_the_detector_saw_it():
    # Discovery kept A to the video's end (its step 5 frames before the end has too few frames after
    # it); the detector saw A, then B from frame 115, and A no more: A ends there and B is confirmed.
    present = rows([(0, N)], [(115, N)])
    places = [Place(A, 0), Place(B, None)]
    obs = {**seen_at(A, [96, 104, 112, 114]), **seen_at(B, [115, 116, 119])}
    settle(present, places, obs)
    assert present[0, :115].all() and not present[0, 115:].any()
    assert present[1, 115:].all() and not present[1, :115].any()
    assert jumped_to(present, places, [True, False]) == [1]


def test_a_place_seen_to_the_end_keeps_its_frames_beside_a_late_detection():
    present = rows([(0, N)], [(115, N)])
    obs = {**seen_at(A, [96, 104, 112, 114, 117]), **seen_at(B, [115, 116])}  # A seen again at 117
    settle(present, [Place(A, 0), Place(B, None)], obs)
    assert present[0].all() and present[1, 115:].all()


def test_a_first_frame_place_is_measured_against_the_detectors_size_of_the_mark():
    # Pillarbox 9101: the mark left its first place after frame 0. Discovery's extent of the next
    # place took texture along (85x45); the detector saw the mark there at 63x21, as at frame 0.
    present = rows([(0, 1)], [(1, 68)])
    first = np.array([750.6, 251.9, 813.5, 273.2])
    loose = np.array([452.5, 434.4, 537.5, 479.3])
    mark = np.array([463.0, 446.0, 526.0, 467.0])
    places = [Place(first, None), Place(loose, 0)]
    assert jumped_to(present, places, [False, True]) == []  # by the places' boxes: not one size
    obs = {**seen_at(first, [0]), **seen_at(mark, [8, 16, 24, 32])}
    assert jumped_to(present, places, [False, True], obs) == [0]
    big = np.array([440.0, 420, 550, 495])  # the detector's own boxes of another size: not the mark
    assert jumped_to(present, places, [False, True], {**seen_at(first, [0]), **seen_at(big, [8, 16])}) == []

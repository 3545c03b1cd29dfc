"""Discovery's cost work keeps its answers: a track scored over many frames at once gives the
scores frame by frame does, the 80th percentile of a step's α is numpy's bit for bit, jump events
from frame differences computed once are the ones from the frames (and a still frame pair is
skipped), one pass of ``step_extent`` gives what its two calls gave, and discovery can be off."""

from __future__ import annotations

import numpy as np
import pytest

from orchestrator.pipeline.discover.events import find_events, step_events
from orchestrator.pipeline.discover.features import ChunkStats, gradients, grey, luma
from orchestrator.pipeline.discover.tracks import Track, _p80, step_extent
from orchestrator.settings import Settings

BOX = (60, 40, 100, 56)  # x0, y0, x1, y1 of a mark in a 200x120 small frame


def _scene(k: int, rng: np.random.Generator) -> np.ndarray:
    """Texture that moves 3 px a frame (the picture under a mark)."""
    base = rng.integers(30, 160, (120, 260, 3)).astype(np.float32)
    return np.ascontiguousarray(base[:, 3 * k : 3 * k + 200])


def _with_mark(img: np.ndarray, alpha: float = 0.8) -> np.ndarray:
    out = img.astype(np.float32).copy()
    x0, y0, x1, y1 = BOX
    out[y0:y1, x0:x1:2] = alpha * 255 + (1 - alpha) * out[y0:y1, x0:x1:2]  # vertical bars: edges
    return np.clip(out, 0, 255).astype(np.uint8)


def _track(frames: list[np.ndarray]) -> Track:
    stats = ChunkStats.empty(120, 200)
    for f in frames:
        stats.add(*gradients(grey(f)))
    mask = np.ones((BOX[3] - BOX[1], BOX[2] - BOX[0]), bool)
    return Track.from_blob(BOX, stats.mean(), mask, 2, (120, 200), 0)


def test_a_track_scored_over_many_frames_at_once_scores_as_frame_by_frame():
    rng = np.random.default_rng(3)
    static = rng.integers(30, 160, (120, 260, 3)).astype(np.float32)
    marked = [_with_mark(np.ascontiguousarray(static[:, 3 * k : 3 * k + 200])) for k in range(12)]
    track = _track(marked)
    frames = marked[:4] + [_scene(k, rng).astype(np.uint8) for k in range(4)]
    one_by_one = np.array([track.score(f) for f in frames])
    at_once = track.score_many([luma(f) for f in frames])
    np.testing.assert_allclose(at_once, one_by_one, atol=1e-5)
    assert at_once[:4].min() > 0.45 > at_once[4:].max()  # the mark is there, then it is not


def test_the_80th_percentile_is_numpys_bit_for_bit():
    rng = np.random.default_rng(0)
    for n in (1, 2, 5, 6, 11, 97, 510):
        for scale in (1.0, 3.0, 100.0):
            x = (rng.random(n) * scale).astype(np.float32)
            assert _p80(x) == float(np.percentile(x, 80))
            q = np.round(x * 4) / 4  # ties
            assert _p80(q) == float(np.percentile(q, 80))


def test_a_jump_passes_the_screen_and_a_still_pair_does_not():
    rng = np.random.default_rng(5)
    still = rng.integers(30, 160, (120, 200, 3)).astype(np.uint8)  # a still picture
    frames = [still, still, _with_mark(still), _with_mark(still)]  # the mark arrives at frame 2
    g = [grey(f) for f in frames]
    area = (0, 0, 200, 120)
    events = find_events(*g, 2, area)
    assert [e.arrive for e in events] == [True]
    x0, y0, x1, y1 = events[0].box
    assert abs(x0 - BOX[0]) <= 2 and abs(y0 - BOX[1]) <= 1 and abs(x1 - BOX[2]) <= 2 and abs(y1 - BOX[3]) <= 1
    d = [b - a for a, b in zip(g, g[1:])]
    again = step_events(np.abs(d[0]), d[1], np.abs(d[2]), 2, area)
    assert [(e.box, e.arrive) for e in again] == [(e.box, e.arrive) for e in events]
    assert step_events(np.abs(d[0]), d[0], np.abs(d[2]), 1, area) == []  # nothing changed: no event


def _sky(k: int) -> np.ndarray:
    """A bright sky with a soft cloud above the mark thinning by 5 levels a frame."""
    out = np.full((120, 200, 3), 200.0, np.float32)
    out[28:40, 50:100] += 40 - 5 * k
    return out


@pytest.mark.parametrize("with_between", [True, False])
def test_one_pass_of_step_extent_gives_what_its_two_calls_gave(with_between):
    icon, text = (60, 40, 80, 60), (84, 46, 104, 56)

    def marked(img, *boxes):
        out = img.copy()
        for x0, y0, x1, y1 in boxes:
            out[y0:y1, x0:x1] = 0.8 * 255 + 0.2 * out[y0:y1, x0:x1]
        return np.clip(out, 0, 255).astype(np.uint8)

    frames = [marked(_sky(0), icon, text), marked(_sky(1), icon, text), marked(_sky(2), icon), marked(_sky(3), icon),
              _sky(4).astype(np.uint8)]
    track = Track(icon, np.zeros(0), np.zeros(0), 0, 0)
    between = tuple(frames[1:4]) if with_between else ()
    plain = step_extent(track, frames[0], frames[4])
    expected = (step_extent(track, frames[0], frames[4], between) or plain) if plain is not None and between else plain
    got = step_extent(track, frames[0], frames[4], between, fallback=True)
    assert got is not None and got[0] == expected[0]
    np.testing.assert_array_equal(got[1], expected[1])


def test_discovery_can_be_switched_off():
    assert Settings().discover is True
    assert Settings.from_env({"DISCOVER": "0"}).discover is False

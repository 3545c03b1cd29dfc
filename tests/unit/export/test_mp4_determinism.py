"""The synthetic clips are a function of their frames: writing the same frames twice gives the same
file, whatever else the process allocated meanwhile. (x264's AVX-512 routines did not: the same
clip came out as different encodes, and a benchmark run saw a false mark on one of them that
nine reruns on another could not reproduce; bench/README.md, Discovery, "Determinism".)"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parents[1] / "pipeline"))
from overlay_clips import OverlayClip  # noqa: E402

from export.mp4 import write_video  # noqa: E402


def _write(path: Path, frames, clip: OverlayClip) -> str:
    write_video(path, frames, clip.n_frames, width=clip.width, height=clip.height, fps=clip.fps, audio=False)
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_same_frames_write_the_same_file(tmp_path):
    clip = OverlayClip(360, 640, 40, seed=2, background="sky")
    frames = [clip.frame(i) for i in range(clip.n_frames)]
    once = _write(tmp_path / "a.mp4", iter(frames), clip)
    again = _write(tmp_path / "b.mp4", iter(frames), clip)
    # Fresh copies and other allocations between frames: the encoder's buffers land elsewhere.
    churned = _write(tmp_path / "c.mp4", ((f.copy(), np.full((1500, 1500), k % 251, np.uint8))[0]
                                          for k, f in enumerate(frames)), clip)
    assert once == again == churned


def test_the_pipeline_encodes_the_same_frames_to_the_same_file(tmp_path):
    """The task's own encoder too: a re-encode of one input is one file (the do-no-harm check
    compares against a plain re-encode, whose worst tile moved by 1.4 dB between runs)."""
    from orchestrator.pipeline.decode import iter_frames, probe
    from orchestrator.pipeline.encode import Encoder

    clip = OverlayClip(360, 640, 40, seed=2, background="sky")
    source = tmp_path / "in.mp4"
    _write(source, (clip.frame(i) for i in range(clip.n_frames)), clip)
    info = probe(source, max_width=4096, max_height=4096, max_duration_s=60)
    digests = []
    for k, churn in enumerate((False, False, True)):
        out = tmp_path / f"out{k}.mp4"
        enc = Encoder(out, info, input_path=source)
        held: list = []  # allocations that live while the next frames are encoded
        for d in iter_frames(source):
            if churn:
                held[:] = [np.full((1500, 1500), d.index % 251, np.uint8), d.frame.to_ndarray()]
            enc.write(d.frame, d.pts)
        enc.close()
        digests.append(hashlib.sha256(out.read_bytes()).hexdigest())
    assert digests[0] == digests[1] == digests[2]

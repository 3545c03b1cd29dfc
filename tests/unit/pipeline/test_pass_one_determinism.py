"""Pass 1's answer is a function of the frames alone: the same clip, decoded and detected with
different thread timing (a slow, stalling decode; a consumer that lags; detector batches that
come back late and out of order), gives the same timeline, marks, plans and discovery summary.

The detector stands in for Triton (its futures complete on a thread pool after random delays);
everything else is pass 1's own code: ``pass_one`` with its decode thread, discovery's tap, the
strided scan with bisection, the matte's crop sampler, fusion and planning.
"""

from __future__ import annotations

import dataclasses
import hashlib
import random
import sys
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from overlay_clips import OverlayClip  # noqa: E402

from export.mp4 import write_video  # noqa: E402
from orchestrator.pipeline import job as job_module  # noqa: E402
from orchestrator.pipeline.decode import probe  # noqa: E402
from orchestrator.pipeline.detector import DETECTOR_SIZE  # noqa: E402
from orchestrator.pipeline.job import Job  # noqa: E402
from orchestrator.pipeline.marks import marks_details  # noqa: E402
from orchestrator.pipeline.options import TaskOptions  # noqa: E402
from orchestrator.pipeline.pass_one import pass_one  # noqa: E402
from orchestrator.pipeline.progress import Reporter  # noqa: E402
from orchestrator.settings import Settings  # noqa: E402

CELL = 32  # the stand-in detector's grid (letterbox pixels)


class BrightestCell:
    """A Triton client whose "detector" reports the brightest ``CELL`` square of each image (a
    white overlay is it, where it is), scored by its brightness; with ``delays`` each batch's
    result comes back after a random wait, so batches finish out of order."""

    def __init__(self, delays: random.Random | None = None) -> None:
        self.delays = delays
        self.lock = threading.Lock()
        self.pool = ThreadPoolExecutor(3)

    def model_parameters(self, model: str) -> dict[str, str]:
        return {"weights": "demo"}  # discovery leads; the detector's crops feed the matte too

    def submit(self, model: str, inputs: dict, outputs: list) -> Future:
        images = np.array(inputs["images"])
        with self.lock:
            wait = self.delays.uniform(0.0, 0.03) if self.delays is not None else 0.0
        return self.pool.submit(self._run, images, wait)

    @staticmethod
    def _run(images: np.ndarray, wait: float) -> dict:
        time.sleep(wait)
        out = np.zeros((len(images), 5, 8400), np.float32)
        grey = images.astype(np.float32).mean(3)
        cells = grey.reshape(len(images), DETECTOR_SIZE // CELL, CELL, DETECTOR_SIZE // CELL, CELL).mean((2, 4))
        for k, c in enumerate(cells):
            y, x = np.unravel_index(int(np.argmax(c)), c.shape)
            out[k, :, 0] = ((x + 0.5) * CELL, (y + 0.5) * CELL, CELL, CELL, c[y, x] / 255.0)
        return {"output0": out}


def _stalling(items, rng: random.Random, longest: float):
    """The frames, with random stalls (a decode or consumer under load)."""
    for item in items:
        if rng.random() < 0.3:
            time.sleep(rng.uniform(0.0, longest))
        yield item


class _Perturbed(Job):
    """A job whose decode thread stalls at random and whose consumer lags behind it."""

    def frames(self):
        rng = random.Random(7)
        decode = job_module.iter_frames(self.input_path, max_duration_s=self.settings.max_duration_s)
        return _Closing(_stalling(job_module.threaded(_stalling(decode, rng, 0.02), 8, "decode", self.timer),
                                  random.Random(8), 0.02))


class _Closing:
    """An iterator with ``close`` (``pass_one`` closes its frames), closing the inner one."""

    def __init__(self, inner) -> None:
        self.inner = inner

    def __iter__(self):
        return self

    def __next__(self):
        return next(self.inner)

    def close(self) -> None:
        self.inner.close()


def _fingerprint(value, h) -> None:
    """Feed everything a value holds (dataclasses, arrays, containers) into the hash ``h``."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        h.update(type(value).__name__.encode())
        for f in dataclasses.fields(value):
            h.update(f.name.encode())
            _fingerprint(getattr(value, f.name), h)
    elif isinstance(value, np.ndarray):
        h.update(str((value.dtype, value.shape)).encode())
        h.update(np.ascontiguousarray(value).tobytes())
    elif isinstance(value, dict):
        for k in sorted(value, key=repr):
            h.update(repr(k).encode())
            _fingerprint(value[k], h)
    elif isinstance(value, (list, tuple)):
        h.update(b"[")
        for v in value:
            _fingerprint(v, h)
        h.update(b"]")
    else:
        h.update(repr(value).encode())


def _answer(result) -> dict:
    """What pass 1 hands on, without its timings."""
    summary = dict(result.discovery or {})
    for timing in ("ms_per_frame", "cpu_ms_per_frame"):
        summary.pop(timing, None)
    plans = hashlib.sha256()
    _fingerprint(result.plans, plans)
    return {"frames": result.n_frames, "detector_frames": result.detector_frames,
            "positions": result.timeline.positions.tolist(), "present": result.timeline.present.tolist(),
            "marks": marks_details(result.marks, result.reports, detect=True), "plans": plans.hexdigest(),
            "picture": result.picture, "discovery": summary}


@pytest.fixture(scope="module")
def clip_path(tmp_path_factory) -> Path:
    """A short clip with a white overlay that jumps once (so the detector bisects, discovery
    fits steps and both feed the matte's sampler)."""
    clip = OverlayClip(480, 270, 96, seed=4)
    path = tmp_path_factory.mktemp("determinism") / "jump.mp4"
    write_video(path, (clip.frame(i) for i in range(clip.n_frames)), clip.n_frames, width=clip.width,
                height=clip.height, fps=clip.fps, audio=False)
    return path


def _run(path: Path, job_class: type[Job], client: BrightestCell) -> dict:
    settings = Settings()
    info = probe(path, max_width=4096, max_height=4096, max_duration_s=600)
    job = job_class(path, path.with_suffix(".out.mp4"), TaskOptions(), settings, info, client, {}, lambda: None,
                    Reporter(None), {})
    return _answer(pass_one(job))


def test_pass_one_does_not_depend_on_thread_timing(clip_path):
    calm = _run(clip_path, Job, BrightestCell())
    assert calm["marks"]["marks"], "the clip's overlay was found (else the test compares nothing)"
    assert calm["frames"] == 96 and calm["detector_frames"] < 96  # strided, with bisection
    perturbed = _run(clip_path, _Perturbed, BrightestCell(random.Random(3)))
    for key in calm:
        assert perturbed[key] == calm[key], key

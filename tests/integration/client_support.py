"""Shared by the CLI and browser tests: a live service (real Triton + the app) and a marked clip."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

import av
import httpx
import pytest

from service_support import running_app, test_settings
from media import make_clip

# A white mark on frames of a 192x108 clip, and the region the client passes for it.
CLIP_SIZE = (192, 108)
CLIP_FRAMES = 24
MARK_BOX = (24, 16, 88, 40)
REGIONS = "[[20,12,92,44]]"


def make_marked_clip(path: Path, *, frames: int = CLIP_FRAMES, fps: int = 12) -> Path:
    """~2 s of moving gradients with the same mark on every frame (regions make the run deterministic)."""
    width, height = CLIP_SIZE
    make_clip(path, width=width, height=height, frames=frames, fps=fps,
              marks={i: MARK_BOX for i in range(frames)})
    return path


def frame_count(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


def repository_for_tests(request, tmp_path: Path) -> Path:
    """The shared ``model_repository`` fixture when tests/conftest.py has one, else the pipeline
    tests' CPU repository (committed weight-free inpainters + demo detector)."""
    try:
        return request.getfixturevalue("model_repository")
    except pytest.FixtureLookupError:
        from pipeline_support import make_pipeline_repository

        return make_pipeline_repository(tmp_path / "model_repository")


@contextlib.asynccontextmanager
async def live_service(tmp_path: Path, triton_factory, repository: Path, *, ready_timeout_s: float = 180.0,
                       **overrides):
    """Real Triton on the repository + the app (uvicorn in this loop); yields once /ping is 200."""
    triton = triton_factory(repository, timeout_s=120.0)
    settings = test_settings(tmp_path, triton_grpc_url=triton.grpc_url, **overrides)
    async with running_app(settings) as app:
        async with httpx.AsyncClient(base_url=app.url, timeout=10) as client:
            deadline = time.monotonic() + ready_timeout_s
            while (response := await client.get("/ping")).status_code != 200:
                assert response.status_code != 503, f"models failed to load: {response.text}"
                assert time.monotonic() < deadline, "models not ready in time"
                await _sleep(0.5)
        yield app


async def _sleep(seconds: float) -> None:
    import asyncio

    await asyncio.sleep(seconds)

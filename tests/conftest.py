"""Shared fixtures. Integration tests start the REAL tritonserver binary from the pytriton wheel."""

from __future__ import annotations

import os

# Ultralytics must never pip-install at run time (CI is offline apart from the registries, and an
# install could pull numpy 2, which breaks the Triton python backend).
os.environ.setdefault("YOLO_AUTOINSTALL", "false")
os.environ.setdefault("YOLO_OFFLINE", "1")

import shutil
from pathlib import Path

import pytest

from orchestrator.triton.local import LocalTriton, free_port

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"


@pytest.fixture
def triton_factory(tmp_path_factory, request):
    """Start Triton servers on free ports; stop them afterwards and keep logs of failed tests."""
    started: list[LocalTriton] = []

    def start(repository: Path, *, load_models: tuple[str, ...] = (), timeout_s: float = 60.0,
              ports: tuple[int, int, int] | None = None) -> LocalTriton:
        runtime = tmp_path_factory.mktemp("triton-runtime")
        http, grpc, metrics = ports or (free_port(), free_port(), free_port())
        server = LocalTriton(
            repository, http_port=http, grpc_port=grpc, metrics_port=metrics,
            runtime_dir=runtime, load_models=load_models,
        )
        started.append(server)
        return server.start(timeout_s)

    yield start

    failed = getattr(request.node, "rep_call", None)
    for server in started:
        server.stop()
        if failed is not None and failed.failed and server.log_path.exists():
            ARTIFACTS.mkdir(exist_ok=True)
            shutil.copy(server.log_path, ARTIFACTS / f"{request.node.name}-triton-{server.grpc_port}.log")


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


@pytest.fixture(scope="session")
def model_repository(tmp_path_factory) -> Path:
    """A CPU model repository built by ``export.prepare`` (offline, as on a fresh machine): the
    committed demo detector (or, until it exists, a random-init export cached under data/weights)
    and the committed weight-free inpainters (512 and 256)."""
    from export.prepare import prepare
    from export.weights import WeightSettings

    root = Path(__file__).resolve().parent.parent
    repo = tmp_path_factory.mktemp("model_repository")
    prepare(repo, offline=True, settings=WeightSettings(weights_dir=root / "data" / "weights"))
    return repo

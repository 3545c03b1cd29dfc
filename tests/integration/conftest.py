"""Fixtures shared by the integration tests."""

from __future__ import annotations

import pytest

from pipeline_support import make_pipeline_repository


@pytest.fixture(scope="session")
def pipeline_repo(tmp_path_factory):
    """One CPU repository for the service/reliability tests: a detector that finds nothing (removal
    is driven by regions, so results do not depend on detector quality) and the weight-free
    inpainters (512 and 256). Read-only for every Triton started on it."""
    return make_pipeline_repository(tmp_path_factory.mktemp("pipeline-repo") / "repo")

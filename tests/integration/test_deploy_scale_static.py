"""The compose scale-out overlay (docker-compose.scale.yml), checked statically with Debian's
docker-compose (no engine here): Postgres + an S3 store, the API and scalable workers sharing them."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def merged() -> dict:
    tool = shutil.which("docker-compose")
    assert tool, "docker-compose missing (apt-get install docker-compose; make test installs it)"
    result = subprocess.run([tool, "-f", "docker-compose.yml", "-f", "docker-compose.scale.yml", "config"], cwd=ROOT,
                            capture_output=True, text=True, timeout=120,
                            env={**{k: v for k, v in os.environ.items() if not k.startswith(("COMPOSE_", "POSTGRES_", "S3_"))},
                                 "GRAFANA_ADMIN_PASSWORD": "g", "POSTGRES_PASSWORD": "pg-secret", "S3_SECRET_KEY": "s3-secret"})
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)["services"]


def test_the_secrets_are_required():
    result = subprocess.run([shutil.which("docker-compose"), "-f", "docker-compose.yml", "-f", "docker-compose.scale.yml",
                             "config"], cwd=ROOT, capture_output=True, text=True, timeout=120,
                            env={"PATH": os.environ["PATH"], "GRAFANA_ADMIN_PASSWORD": "g", "S3_SECRET_KEY": "s"})
    assert result.returncode != 0 and "POSTGRES_PASSWORD" in result.stderr


def test_workers_scale_without_port_clashes(merged):
    worker = merged["worker"]
    assert "ports" not in worker and "container_name" not in worker  # --scale worker=N works
    assert worker["command"][-2:] == ["--role", "worker"]
    assert merged["orchestrator"]["command"][-2:] == ["--role", "api"]


def test_api_and_workers_share_the_queue_and_the_bucket(merged):
    api, worker = merged["orchestrator"]["environment"], merged["worker"]["environment"]
    for key in ("DATABASE_URL", "S3_ENDPOINT", "S3_BUCKET", "S3_ACCESS_KEY", "S3_SECRET_KEY"):
        assert api[key] == worker[key], key
    pg = merged["postgres"]["environment"]
    assert api["DATABASE_URL"] == (f"postgresql+asyncpg://{pg['POSTGRES_USER']}:{pg['POSTGRES_PASSWORD']}"
                                   f"@postgres:5432/{pg['POSTGRES_DB']}")
    assert api["S3_ENDPOINT"] == "http://s3:8333" and "-s3.port=8333" in " ".join(merged["s3"]["command"])
    assert merged["s3"]["environment"]["S3_SECRET_KEY"] == api["S3_SECRET_KEY"] == "s3-secret"
    assert pg["POSTGRES_PASSWORD"] == "pg-secret"
    assert merged["worker"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert "pg_isready" in merged["postgres"]["healthcheck"]["test"]


@pytest.mark.parametrize("extra, node, warns", [
    ({"DATABASE_URL": "postgresql+asyncpg://u:p@db/sora", "S3_BUCKET": "b", "RUNPOD_POD_ID": "pod-7"}, "pod-7", False),
    ({"DATABASE_URL": "postgresql+asyncpg://u:p@db/sora", "RUNPOD_POD_ID": "pod-8"}, "pod-8", True),
    ({}, "", False),
])
def test_runpod_workers_share_postgres_and_s3_when_given(tmp_path, extra, node, warns):
    """start.sh with DATABASE_URL: each worker a node of its own (RUNPOD_POD_ID), scratch DATA_DIR;
    a queue without a bucket is said to leave results on one worker's disk."""
    triton = tmp_path / "triton.sh"
    triton.write_text("#!/usr/bin/env bash\nexec sleep 30\n")
    orchestrator = tmp_path / "python"
    orchestrator.write_text('#!/usr/bin/env bash\necho "node=${NODE_ID:-} db=${DATABASE_URL:-} data=$DATA_DIR"\nexit 4\n')
    for script in (triton, orchestrator):
        script.chmod(0o755)
    env = {"PATH": os.environ["PATH"], "TRITON_ENTRYPOINT": str(triton), "ORCHESTRATOR_PYTHON": str(orchestrator),
           "DATA_DIR": str(tmp_path / "data"), **extra}
    result = subprocess.run(["bash", str(ROOT / "deploy" / "runpod" / "start.sh")], env=env, capture_output=True,
                            text=True, timeout=30)
    assert result.returncode == 4, result.stderr
    assert f"node={node} db={extra.get('DATABASE_URL', '')} data={tmp_path / 'data'}" in result.stdout
    assert ("results stay on this worker's disk" in result.stderr) is warns

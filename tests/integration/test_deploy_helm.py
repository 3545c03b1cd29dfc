"""The Helm chart (deploy/helm/sora-unmark) without a cluster: ``helm lint``, every rendered
manifest valid for Kubernetes 1.33 (``kubernetes-validate --strict``), and the custom resources
(KEDA, Prometheus Operator), which the validator only warns about, checked field by field."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "sora-unmark"
HELM = str(Path(sys.executable).parent / "helm") if (Path(sys.executable).parent / "helm").exists() else shutil.which("helm")
VALIDATE = shutil.which("kubernetes-validate") or str(Path(sys.executable).parent / "kubernetes-validate")

pytestmark = pytest.mark.skipif(HELM is None, reason="helm missing: bash scripts/get-helm.sh (make test does)")


def _render(tmp_path: Path, *values: str) -> tuple[Path, dict[tuple[str, str], dict]]:
    out = subprocess.run([HELM, "template", "rel", str(CHART), *values], check=True, capture_output=True, text=True).stdout
    path = tmp_path / "chart.yaml"
    path.write_text(out)
    docs = [d for d in yaml.safe_load_all(out) if d]
    return path, {(d["kind"], d["metadata"]["name"]): d for d in docs}


def test_lint_passes():
    result = subprocess.run([HELM, "lint", "--strict", str(CHART)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_manifest_validates_against_kubernetes(tmp_path):
    path, docs = _render(tmp_path)
    result = subprocess.run([VALIDATE, "-k", "1.33.0", "--strict", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    passed = result.stdout.count(" passed for resource ")
    builtin = [k for k in docs if k[0] not in ("ScaledObject", "TriggerAuthentication", "ServiceMonitor")]
    assert passed == len(builtin) >= 8


def test_workers_scale_on_queue_depth_with_keda(tmp_path):
    _, docs = _render(tmp_path)
    scaled = docs[("ScaledObject", "rel-sora-worker")]
    assert scaled["apiVersion"] == "keda.sh/v1alpha1"
    assert ("Deployment", scaled["spec"]["scaleTargetRef"]["name"]) in docs
    (trigger,) = scaled["spec"]["triggers"]
    assert trigger["type"] == "postgresql"
    query = trigger["metadata"]["query"]
    assert "FROM tasks" in query and "'queued'" in query and "'processing'" in query
    assert int(trigger["metadata"]["targetQueryValue"]) >= 1
    auth = docs[("TriggerAuthentication", trigger["authenticationRef"]["name"])]
    (ref,) = auth["spec"]["secretTargetRef"]
    assert ref["parameter"] == "connection"
    secret = docs[("Secret", ref["name"])]
    assert secret["stringData"][ref["key"]].startswith("postgresql://")  # libpq form for KEDA
    assert secret["stringData"]["DATABASE_URL"].startswith("postgresql+asyncpg://")


def test_workers_reach_triton_replicas_through_the_headless_service(tmp_path):
    _, docs = _render(tmp_path)
    headless = docs[("Service", "rel-sora-triton-headless")]
    assert headless["spec"]["clusterIP"] == "None"
    worker = docs[("Deployment", "rel-sora-worker")]["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in worker["env"]}
    assert env["TRITON_GRPC_URL"] == "dns:///rel-sora-triton-headless:8001"
    assert worker["args"][-2:] == ["--role", "worker"]
    api = docs[("Deployment", "rel-sora-api")]["spec"]["template"]["spec"]["containers"][0]
    assert api["args"][-2:] == ["--role", "api"] and "TRITON_GRPC_URL" not in {e["name"] for e in api["env"]}
    hpa = docs[("HorizontalPodAutoscaler", "rel-sora-triton")]
    assert hpa["spec"]["scaleTargetRef"]["name"] == "rel-sora-triton"
    assert hpa["spec"]["metrics"][0]["type"] == "Pods"
    monitor = docs[("ServiceMonitor", "rel-sora")]
    assert {e["port"] for e in monitor["spec"]["endpoints"]} == {"http", "metrics"}


def test_an_existing_secret_replaces_the_generated_one(tmp_path):
    _, docs = _render(tmp_path, "--set", "secrets.existingSecret=prod-sora", "--set", "keda.enabled=false")
    assert not [k for k in docs if k[0] in ("Secret", "ScaledObject")]
    worker = docs[("Deployment", "rel-sora-worker")]["spec"]["template"]["spec"]["containers"][0]
    refs = {e["valueFrom"]["secretKeyRef"]["name"] for e in worker["env"] if "valueFrom" in e and "secretKeyRef" in e["valueFrom"]}
    assert refs == {"prod-sora"}

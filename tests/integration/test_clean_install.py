"""The exact `make run` environment, built from a clean clone, processes the README's demo clip.

A bare `make run` once failed every task on a module only the test extra installed, while `make
test` (which installs every extra into one venv) stayed green. This test clones HEAD into a
temporary folder, runs `make run` there (its own `.venv` with `pip install -e '.[triton]'` and
nothing else; pip's download cache is shared), makes the demo clip with that venv's
`python -m export.watermark` as the README does, and runs it through the service to a result.
The dev venv is kept out of reach: PATH, VIRTUAL_ENV and PYTHONPATH are cleaned, and the new venv is
made from the base interpreter. It also runs the images' smoke check (`python -m orchestrator.smoke`)
in that environment. Note: it tests what is committed (a clone of HEAD), as CI does.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import httpx
import pytest

from service_support import ROOT

from orchestrator.triton.local import free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _clean_env(**extra: str) -> dict[str, str]:
    """The caller's environment without any trace of the dev venv."""
    env = {k: v for k, v in os.environ.items()
           if k not in {"VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "PIP_USER"}
           and not k.startswith("PYTEST")}
    keep = [d for d in env.get("PATH", "").split(os.pathsep)
            if d and not (Path(d).parent / "pyvenv.cfg").exists()]
    env["PATH"] = os.pathsep.join(keep or ["/usr/local/bin", "/usr/bin", "/bin"])
    env.update(extra)
    return env


def _frames(path: Path) -> tuple[int, int, int]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return sum(1 for _ in container.decode(stream)), stream.width, stream.height


def _wait_ready(url: str, proc: subprocess.Popen, log: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"`make run` exited {proc.returncode}:\n{log.read_text()[-4000:]}")
        try:
            if httpx.get(f"{url}/ping", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(1)
    raise AssertionError(f"/ping never said 200 within {timeout_s} s:\n{log.read_text()[-4000:]}")


def _process(url: str, clip: Path, out: Path, timeout_s: float) -> dict:
    with clip.open("rb") as f:
        created = httpx.post(f"{url}/v1/tasks", files={"video": (clip.name, f, "video/mp4")}, timeout=60)
    assert created.status_code == 202, created.text
    task_id = created.json()["task_id"]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status = httpx.get(f"{url}/v1/tasks/{task_id}", timeout=10).json()
        if status["status"] in {"finished", "failed", "cancelled"}:
            break
        time.sleep(1)
    assert status["status"] == "finished", status
    result = httpx.get(f"{url}/v1/tasks/{task_id}/result", timeout=60)
    assert result.status_code == 200
    out.write_bytes(result.content)
    return status


def test_make_run_environment_from_a_clean_clone_processes_the_demo_clip(tmp_path):
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True)
    port = free_port()
    env = _clean_env(TRITON_HTTP_PORT=str(free_port()), TRITON_GRPC_PORT=str(free_port()),
                     TRITON_METRICS_PORT=str(free_port()), LOG_LEVEL="info")
    log = tmp_path / "make-run.log"
    started = time.perf_counter()
    with log.open("wb") as sink:
        proc = subprocess.Popen(["make", "run", f"PORT={port}", f"PYTHON={sys._base_executable}"],
                                cwd=clone, env=env, stdout=sink, stderr=subprocess.STDOUT,
                                start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, proc, log, timeout_s=900)
        ready_s = time.perf_counter() - started
        venv_python = clone / ".venv" / "bin" / "python"
        # Nothing beyond the serving stack was installed (torch, ultralytics, pytest stay out).
        missing = subprocess.run([str(venv_python), "-c", "import torch"], env=env, capture_output=True)
        assert missing.returncode != 0, "the `make run` venv sees torch: it is not the bare environment"
        clip = clone / "sample.mp4"
        subprocess.run([str(venv_python), "-m", "export.watermark", "--out", str(clip)],
                       cwd=clone, env=env, check=True, capture_output=True)
        status = _process(url, clip, tmp_path / "clean.mp4", timeout_s=600)
        assert _frames(tmp_path / "clean.mp4") == _frames(clip)
        smoke = subprocess.run([str(venv_python), "-m", "orchestrator.smoke"], cwd=clone, env=env,
                               capture_output=True, text=True, timeout=300)
        assert smoke.returncode == 0, smoke.stderr[-3000:]
        print(f"clean clone: ready in {ready_s:.0f} s (install + models + Triton); task "
              f"{status.get('progress')}% ; {smoke.stdout.strip()}")
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)

"""Helpers for the service tests: a tiny model repository and the app run by uvicorn in-process."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import time
import urllib.error
import urllib.request
from pathlib import Path

import httpx
import onnx
import uvicorn
from onnx import TensorProto, helper

from orchestrator.app import create_app
from orchestrator.settings import Settings
from orchestrator.triton.local import free_port

ROOT = Path(__file__).resolve().parents[2]
RUNNER = ROOT / "export" / "python_backend_model.py"


def ping_port(port: int) -> int | None:
    """The status of a local service's ``/ping``; None when nothing answers."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2) as r:
            return r.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return None


_CONFIGS = {
    "detector": ("images", "TYPE_UINT8", ["output0"]),
    "inpainter": ("image", "TYPE_UINT8", ["output"]),
}


def _identity_onnx(path: Path, inputs: list[str], output: str, cast_to_float: bool) -> None:
    nodes = [helper.make_node("Cast" if cast_to_float else "Identity", [inputs[0]], [output],
                              **({"to": TensorProto.FLOAT} if cast_to_float else {}))]
    graph = helper.make_graph(
        nodes, "tiny",
        [helper.make_tensor_value_info(name, TensorProto.UINT8, None) for name in inputs],
        [helper.make_tensor_value_info(output, TensorProto.FLOAT if cast_to_float else TensorProto.UINT8, None)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))


def make_tiny_repository(root: Path, *, broken: tuple[str, ...] = ()) -> Path:
    """``detector`` and ``inpainter`` as python-backend models running identity-like ONNX graphs.

    A model named in ``broken`` gets garbage instead of ONNX, so its load fails in Triton.
    """
    specs = {
        "detector": (["images"], "output0", True, "TYPE_FP32"),
        "inpainter": (["image", "mask"], "output", False, "TYPE_UINT8"),
    }
    for name, (inputs, output, cast, out_type) in specs.items():
        version = root / name / "1"
        version.mkdir(parents=True, exist_ok=True)
        shutil.copy(RUNNER, version / "model.py")
        if name in broken:
            (version / "model.onnx").write_bytes(b"this is not an onnx model")
        else:
            _identity_onnx(version / "model.onnx", inputs, output, cast)
        ins = "\n".join(
            f'  {{ name: "{i}" data_type: TYPE_UINT8 dims: [ -1 ] }},' for i in inputs
        ).rstrip(",")
        (root / name / "config.pbtxt").write_text(
            f'name: "{name}"\nbackend: "python"\nmax_batch_size: 16\n'
            f"input [\n{ins}\n]\n"
            f'output [ {{ name: "{output}" data_type: {out_type} dims: [ -1 ] }} ]\n'
            'instance_group [ { kind: KIND_CPU count: 1 } ]\n'
            'parameters { key: "intra_op_threads" value: { string_value: "1" } }\n'
        )
    return root


def test_settings(tmp_path: Path, **overrides) -> Settings:
    """Settings for a test: data under tmp, short deadlines, no Triton unless told."""
    base = dict(
        host="127.0.0.1", port=free_port(), data_dir=tmp_path / "data",
        triton_grpc_url=f"127.0.0.1:{free_port()}", triton_live_deadline_s=30.0,
        model_load_retries=2, model_retry_interval_s=600.0, model_poll_interval_s=0.5,
        janitor_interval_s=3600.0, progress_interval_s=0.2, task_retry_backoff_s=0.5,
        required_models=("detector", "inpainter"), optional_models=(),
    )
    base.update(overrides)
    return Settings(**base)


test_settings.__test__ = False  # a helper, not a test


class RunningApp:
    """The orchestrator served by a real uvicorn on a free port, in this event loop."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.app = create_app(settings)
        self.url = f"http://127.0.0.1:{settings.port}"
        self.server = uvicorn.Server(uvicorn.Config(self.app, host="127.0.0.1", port=settings.port,
                                                    log_level="warning", lifespan="on"))
        self.server.install_signal_handlers = lambda: None  # uvicorn < 0.29 style; harmless
        self._task: asyncio.Task | None = None
        self.started_in_s: float | None = None

    @property
    def services(self):
        return self.app.state.services

    async def start(self) -> "RunningApp":
        t0 = time.perf_counter()
        self._task = asyncio.create_task(self.server.serve())
        while not self.server.started:
            if self._task.done():
                self._task.result()
                raise RuntimeError("uvicorn exited during startup")
            await asyncio.sleep(0.01)
        self.started_in_s = time.perf_counter() - t0
        return self

    async def stop(self) -> None:
        if self._task is not None:
            self.server.should_exit = True
            await asyncio.wait_for(self._task, 30)
            self._task = None

    def client(self, **kwargs) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url, timeout=30, **kwargs)


@contextlib.asynccontextmanager
async def running_app(settings: Settings):
    app = await RunningApp(settings).start()
    try:
        yield app
    finally:
        await app.stop()


async def wait_for(predicate, timeout_s: float, interval_s: float = 0.2, what: str = "condition"):
    """Poll an async predicate until it returns a truthy value; returns that value."""
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        last = await predicate()
        if last:
            return last
        await asyncio.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what} (last: {last!r})")


async def ping_status(client: httpx.AsyncClient) -> int:
    return (await client.get("/ping")).status_code

"""The real Triton (pytriton's tritonserver, explicit mode, gRPC) serving the prepared repository;
every output is compared with onnxruntime run directly on the same .onnx files."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from export.repository import inpainter_spec, write_model

pytestmark = pytest.mark.integration

MODELS = ("detector", "inpainter", "inpainter_256")


def _reference(path: Path, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"]).run(None, feeds)


def _inputs(model: str, batch: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    if model == "detector":
        return {"images": rng.integers(0, 256, (batch, 640, 640, 3), dtype=np.uint8)}
    crop = 512 if model == "inpainter" else int(model.rsplit("_", 1)[1])
    image = rng.integers(0, 256, (batch, 3, crop, crop), dtype=np.uint8)
    mask = np.zeros((batch, 1, crop, crop), np.uint8)
    for i in range(batch):  # a different hole per item, so a mix-up between items would show
        top, left = rng.integers(0, crop // 2, 2)
        mask[i, :, top : top + crop // 8, left : left + crop // 3] = 255
    return {"image": image, "mask": mask}


def _infer(client, model: str, feeds: dict[str, np.ndarray], output: str):
    inputs = []
    for name, value in feeds.items():
        tensor = grpcclient.InferInput(name, list(value.shape), "UINT8")
        tensor.set_data_from_numpy(value)
        inputs.append(tensor)
    result = client.infer(model, inputs, outputs=[grpcclient.InferRequestedOutput(output)], client_timeout=120)
    return result.as_numpy(output)


def _assert_same(model: str, got: np.ndarray, want: np.ndarray) -> None:
    assert got.shape == want.shape and got.dtype == want.dtype
    if want.dtype == np.uint8:
        assert np.abs(got.astype(int) - want.astype(int)).max() <= 1, model
    else:
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-3, err_msg=model)


@pytest.fixture(scope="module")
def served(model_repository, tmp_path_factory):
    """One Triton for this module (starting it per test would triple the runtime)."""
    from orchestrator.triton.local import LocalTriton, free_port

    runtime = tmp_path_factory.mktemp("triton-models")
    server = LocalTriton(model_repository, http_port=free_port(), grpc_port=free_port(),
                         metrics_port=free_port(), runtime_dir=runtime)
    server.start(60)
    client = grpcclient.InferenceServerClient(server.grpc_url)
    try:
        yield server, client
    finally:
        client.close()
        server.stop()


def test_explicit_load_warms_up_then_serves_batches(served, model_repository):
    server, client = served
    assert client.is_server_ready()  # explicit mode: ready even with nothing loaded...
    assert not any(client.is_model_ready(m) for m in MODELS)  # ...so readiness is per model
    for model in MODELS:
        client.load_model(model)
        assert client.is_model_ready(model), server.log_tail()
        # model_warmup ran inside the load, before "ready" and before any request of ours.
        stats = client.get_inference_statistics(model, as_json=True)["model_stats"][0]
        assert int(stats["execution_count"]) >= 1, stats
    for model in MODELS:
        onnx_file = model_repository / model / "1" / "model.onnx"
        output = "output0" if model == "detector" else "output"
        for batch in (1, 4):
            feeds = _inputs(model, batch, seed=batch)
            got = _infer(client, model, feeds, output)
            (want,) = _reference(onnx_file, feeds)
            _assert_same(model, got, want)
            if model != "detector":
                keep = np.broadcast_to(feeds["mask"] <= 127, got.shape)
                assert np.array_equal(got[keep], feeds["image"][keep])


def test_concurrent_requests_are_batched_and_split_back_correctly(served, model_repository):
    _, client = served
    model = "inpainter_256"
    client.load_model(model)
    requests = [_inputs(model, batch, seed=100 + i) for i, batch in enumerate((1, 2, 1, 3, 1, 2))]
    results: dict[int, object] = {}

    def callback(index):
        return lambda result, error: results.__setitem__(index, error or result.as_numpy("output"))

    for index, feeds in enumerate(requests):
        inputs = []
        for name, value in feeds.items():
            tensor = grpcclient.InferInput(name, list(value.shape), "UINT8")
            tensor.set_data_from_numpy(value)
            inputs.append(tensor)
        client.async_infer(model, inputs, callback(index))
    deadline = time.monotonic() + 120
    while len(results) < len(requests) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(results) == len(requests)
    onnx_file = model_repository / model / "1" / "model.onnx"
    for index, feeds in enumerate(requests):
        assert isinstance(results[index], np.ndarray), results[index]
        _assert_same(model, results[index], _reference(onnx_file, feeds)[0])


def test_bad_requests_get_clear_errors_and_the_server_survives(served):
    _, client = served
    client.load_model("inpainter_256")
    wrong = np.zeros((1, 3, 128, 128), np.uint8)
    tensor = grpcclient.InferInput("image", list(wrong.shape), "UINT8")
    tensor.set_data_from_numpy(wrong)
    mask = grpcclient.InferInput("mask", [1, 1, 128, 128], "UINT8")
    mask.set_data_from_numpy(np.zeros((1, 1, 128, 128), np.uint8))
    with pytest.raises(InferenceServerException, match="unexpected shape"):
        client.infer("inpainter_256", [tensor, mask])
    too_big = _inputs("inpainter_256", 17, seed=0)  # max_batch_size is 16
    with pytest.raises(InferenceServerException, match="batch"):
        _infer(client, "inpainter_256", too_big, "output")
    with pytest.raises(InferenceServerException):
        client.load_model("no_such_model")
    assert client.is_model_ready("inpainter_256")


def test_lama_onnx_serves_through_the_python_backend(tmp_path, triton_factory):
    """The LaMa export (narrow, random init: the same graph as big-lama, fewer channels) in Triton."""
    pytest.importorskip("torch")
    from export.inpainter import export_lama
    from export.lama import LamaConfig

    onnx_file = export_lama(tmp_path / "lama_256.onnx", weights=None, random_init=True, crop=256,
                            config=LamaConfig(ngf=8, n_blocks=2))
    repo = tmp_path / "repo"
    write_model(repo, inpainter_spec(256), onnx_file)
    server = triton_factory(repo, load_models=("inpainter_256",))
    client = grpcclient.InferenceServerClient(server.grpc_url)
    deadline = time.monotonic() + 60
    while not client.is_model_ready("inpainter_256"):
        assert time.monotonic() < deadline, server.log_tail()
        time.sleep(0.2)
    for batch in (1, 3):
        feeds = _inputs("inpainter_256", batch, seed=7 + batch)
        _assert_same("lama", _infer(client, "inpainter_256", feeds, "output"), _reference(onnx_file, feeds)[0])


def test_gpu_check_steps_run_against_the_cpu_triton(tmp_path, triton_factory, pipeline_repo):
    """scripts/gpu-check.sh has never met a GPU here: its load, end-to-end and table steps are run
    against the embedded CPU Triton so that at least its plumbing is known to work (timings meaningless)."""
    from perf.gpu_check import Report, end_to_end, load_models, table

    triton = triton_factory(pipeline_repo)
    report = Report(gpu="CPU (plumbing check)")
    load_models(triton.http_port, report, models=("detector", "inpainter"))
    assert set(report.builds) == {"TRT EP engine + warmup detector", "TRT EP engine + warmup inpainter"}
    assert not report.notes
    end_to_end(triton.grpc_port, tmp_path, report, width=128, height=224, seconds=1.0)
    assert report.e2e["frames"] == 30 and report.e2e["fps"] > 0
    assert "| frames | 30 |" in table(report)

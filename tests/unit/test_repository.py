"""Model-repository writer and the prepare command (no Triton here; see tests/integration)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import onnx
import pytest
from google.protobuf import text_format
from onnx import TensorProto, helper
from tritonclient.grpc import model_config_pb2 as mc

from export.prepare import PrepareError, prepare
from export.repository import (
    COMMITTED_DETECTOR_WEIGHTS,
    PYTHON_MODEL,
    RepositoryError,
    config_text,
    detector_spec,
    inpainter_spec,
    model_config,
    parse_config,
    write_model,
    write_repository,
)
from export.weights import WeightSettings

ROOT = Path(__file__).resolve().parents[2]
ASSETS = ROOT / "export" / "assets"


def tiny_detector(path: Path) -> Path:
    """An ONNX file with the detector contract's tensors (uint8 [B,640,640,3] -> fp32 [B,5,8400])."""
    nodes = [
        helper.make_node("Cast", ["images"], ["f"], to=TensorProto.FLOAT),
        helper.make_node("ReduceMean", ["f"], ["m"], keepdims=1),  # [B,1,1,1]
        helper.make_node("Reshape", ["m", "shape3"], ["m3"]),  # [B,1,1]
        helper.make_node("Shape", ["images"], ["s"]),
        helper.make_node("Slice", ["s", "zero", "one"], ["b"]),
        helper.make_node("Concat", ["b", "tail"], ["target"], axis=0),
        helper.make_node("Expand", ["m3", "target"], ["output0"]),
    ]
    inits = [
        helper.make_tensor("shape3", TensorProto.INT64, [3], [-1, 1, 1]),
        helper.make_tensor("zero", TensorProto.INT64, [1], [0]),
        helper.make_tensor("one", TensorProto.INT64, [1], [1]),
        helper.make_tensor("tail", TensorProto.INT64, [2], [5, 8400]),
    ]
    graph = helper.make_graph(
        nodes, "tiny_detector",
        [helper.make_tensor_value_info("images", TensorProto.UINT8, ["batch", 640, 640, 3])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, ["batch", 5, 8400])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


@pytest.mark.parametrize("repo,target", [("model_repository", "cpu"), ("deploy/gpu/model_repository", "gpu")])
def test_committed_configs_parse_and_match_the_generator(repo, target):
    for spec in (detector_spec(), inpainter_spec(512), inpainter_spec(256)):
        text = (ROOT / repo / spec.name / "config.pbtxt").read_text()
        cfg = parse_config(text)  # Triton's schema: unknown fields/enums raise
        # The committed detector config carries the provenance `make run` writes on a fresh clone.
        weights = COMMITTED_DETECTOR_WEIGHTS.get(target) if spec.name == "detector" else None
        assert text == config_text(model_config(spec, target, weights=weights)), f"{repo}/{spec.name} is stale: regenerate it"
        assert cfg.name == spec.name and cfg.max_batch_size == 16
        assert [i.name for i in cfg.input] == [t.name for t in spec.inputs]
        assert list(cfg.dynamic_batching.preferred_batch_size)
        assert cfg.model_warmup and cfg.model_warmup[0].batch_size == 1
        assert set(cfg.model_warmup[0].inputs) == {t.name for t in spec.inputs}
        group = cfg.instance_group[0]
        if target == "cpu":
            assert cfg.backend == "python" and group.kind == mc.ModelInstanceGroup.KIND_CPU
            assert cfg.parameters["onnx_file"].string_value == "model.onnx"
            assert cfg.parameters["intra_op_threads"].string_value == "0"
        else:
            assert cfg.backend == "onnxruntime" and group.kind == mc.ModelInstanceGroup.KIND_GPU
            trt = cfg.optimization.execution_accelerators.gpu_execution_accelerator[0]
            assert trt.name == "tensorrt" and trt.parameters["precision_mode"] == "FP16"
            assert max(w.batch_size for w in cfg.model_warmup) == cfg.max_batch_size


def test_contract_tensors():
    det, inp = detector_spec(), inpainter_spec(256)
    assert [(t.name, t.dtype, t.dims) for t in det.inputs] == [("images", "uint8", (640, 640, 3))]
    assert [(t.name, t.dtype, t.dims) for t in det.outputs] == [("output0", "float32", (5, 8400))]
    assert inp.name == "inpainter_256" and inpainter_spec(512).name == "inpainter"
    assert [t.name for t in inp.inputs] == ["image", "mask"] and inp.outputs[0].dims == (3, 256, 256)
    plan = model_config(inp, "gpu-plan")
    assert plan.platform == "tensorrt_plan" and plan.default_model_filename == "model.plan"
    with pytest.raises(text_format.ParseError):
        parse_config('name: "x"\nbackend: "python"\nmax_batch_sise: 4\n')  # typo'd field
    with pytest.raises(RepositoryError, match="target"):
        model_config(inp, "tpu")


def test_write_repository_is_idempotent_and_checks_models(tmp_path):
    detector = tiny_detector(tmp_path / "det.onnx")
    inpainters = {512: ASSETS / "inpainter_fallback_512.onnx", 256: ASSETS / "inpainter_fallback_256.onnx"}
    repo = tmp_path / "repo"
    assert write_repository(repo, detector_onnx=detector, inpainter_onnx=inpainters) == {
        "detector": True, "inpainter": True, "inpainter_256": True}
    for name in ("detector", "inpainter", "inpainter_256"):
        assert (repo / name / "1" / "model.onnx").is_file()
        assert (repo / name / "1" / "model.py").read_bytes() == PYTHON_MODEL.read_bytes()
    mtime = (repo / "inpainter" / "1" / "model.onnx").stat().st_mtime_ns
    assert not any(write_repository(repo, detector_onnx=detector, inpainter_onnx=inpainters).values())
    assert (repo / "inpainter" / "1" / "model.onnx").stat().st_mtime_ns == mtime
    # A model whose tensors do not fit the name it is written under: clear error, nothing copied.
    with pytest.raises(RepositoryError, match="do not match the 'inpainter' contract"):
        write_model(tmp_path / "bad", inpainter_spec(512), ASSETS / "inpainter_fallback_256.onnx")
    assert not (tmp_path / "bad" / "inpainter" / "1" / "model.onnx").exists()
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not a model")
    with pytest.raises(RepositoryError, match="not a loadable ONNX model"):
        write_model(tmp_path / "bad", detector_spec(), garbage)
    with pytest.raises(RepositoryError, match="not found"):
        write_model(tmp_path / "bad", detector_spec(), tmp_path / "absent.onnx")


def test_prepare_offline_uses_demo_detector_and_fallback(tmp_path):
    demo = tiny_detector(tmp_path / "detector_demo.onnx")
    settings = WeightSettings(weights_dir=tmp_path / "weights")
    report = prepare(tmp_path / "repo", settings=settings, offline=True, detector_demo=demo)
    assert [(c.model, c.kind) for c in report.choices] == [
        ("detector", "demo"), ("inpainter", "fallback"), ("inpainter_256", "fallback")]
    assert all(report.changed.values())
    start = time.monotonic()
    again = prepare(tmp_path / "repo", settings=settings, offline=True, detector_demo=demo)
    assert not any(again.changed.values()) and time.monotonic() - start < 5


def test_prepare_on_a_fresh_clone_leaves_the_committed_configs_unchanged(tmp_path):
    """`make run` on a fresh clone (no weights at hand: the committed demo detector) must leave git clean."""
    repo = shutil.copytree(ROOT / "model_repository", tmp_path / "repo")
    committed = {p.relative_to(repo): p.read_bytes() for p in repo.rglob("config.pbtxt")}
    report = prepare(repo, settings=WeightSettings(weights_dir=tmp_path / "weights"), offline=True,
                     detector_demo=tiny_detector(tmp_path / "detector_demo.onnx"))
    assert report.choices[0].kind == "demo"
    assert {p.relative_to(repo): p.read_bytes() for p in repo.rglob("config.pbtxt")} == committed


def test_prepare_errors_are_clear(tmp_path, http_unreachable_url):
    demo = tiny_detector(tmp_path / "detector_demo.onnx")
    offline = WeightSettings(weights_dir=tmp_path / "w", lama_url=http_unreachable_url,
                             detector_url=http_unreachable_url, lama_hf_repo=None)
    with pytest.raises(PrepareError, match="detector: real weights required but unavailable"):
        prepare(tmp_path / "repo", settings=offline, require_real=True, detector_demo=demo)
    # A failed download falls back (and says so); an explicit path that is unusable is an error.
    report = prepare(tmp_path / "repo", settings=offline, detector_demo=demo)
    assert [c.kind for c in report.choices] == ["demo", "fallback", "fallback"]
    bad = tmp_path / "best.ckpt"
    bad.write_bytes(b"garbage")
    explicit = WeightSettings(weights_dir=tmp_path / "w", lama_weights=bad, lama_hf_repo=None)
    with pytest.raises(PrepareError, match="inpainter: cannot export LaMa from .*best.ckpt"):
        prepare(tmp_path / "repo2", settings=explicit, offline=True, detector_demo=demo)
    missing = WeightSettings(weights_dir=tmp_path / "w", detector_weights=tmp_path / "none.pt")
    with pytest.raises(PrepareError, match="detector: weights file not found"):
        prepare(tmp_path / "repo3", settings=missing, offline=True, detector_demo=demo)


@pytest.fixture
def http_unreachable_url():
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/weights.pt"


def test_prepare_cli_does_not_import_torch(tmp_path):
    """The serving install has no torch: preparing from committed/cached models must not need it."""
    demo = tiny_detector(tmp_path / "detector_demo.onnx")
    code = (
        "import sys, pathlib\n"
        "from export.prepare import prepare\n"
        "from export.weights import WeightSettings\n"
        f"r = prepare(pathlib.Path({str(tmp_path / 'repo')!r}), offline=True, "
        f"settings=WeightSettings(weights_dir=pathlib.Path({str(tmp_path / 'w')!r})), "
        f"detector_demo=pathlib.Path({str(demo)!r}))\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
        "print([c.kind for c in r.choices])\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 0, result.stderr
    assert "['demo', 'fallback', 'fallback']" in result.stdout
    cli = subprocess.run([sys.executable, "-m", "export.prepare", "--target", "tpu"], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert cli.returncode == 2 and "invalid choice" in cli.stderr


def test_gpu_target_copies_onnx_without_python_model(tmp_path):
    detector = tiny_detector(tmp_path / "det.onnx")
    repo = tmp_path / "gpu"
    write_repository(repo, target="gpu", detector_onnx=detector,
                     inpainter_onnx={256: ASSETS / "inpainter_fallback_256.onnx"})
    for name in ("detector", "inpainter_256"):
        assert (repo / name / "1" / "model.onnx").is_file()
        assert not (repo / name / "1" / "model.py").exists()
        assert parse_config((repo / name / "config.pbtxt").read_text()).backend == "onnxruntime"
    with pytest.raises(RepositoryError, match="export.tensorrt"):
        write_repository(repo, target="gpu-plan", detector_onnx=detector, inpainter_onnx={})


def test_prepare_without_torch_never_downloads_and_falls_back(tmp_path, monkeypatch, http_unreachable_url):
    """Serving install (no torch): downloads are skipped (they could not be exported); an earlier
    download whose export is missing falls back too, with the reason in the note."""
    import export.prepare as prep
    from export.weights import Checksum, cached_download

    monkeypatch.setattr(prep, "_has_torch", lambda: False)
    demo = tiny_detector(tmp_path / "detector_demo.onnx")
    settings = WeightSettings(weights_dir=tmp_path / "w", lama_url=http_unreachable_url,
                              detector_url=http_unreachable_url, lama_md5=None, lama_hf_repo=None)
    report = prepare(tmp_path / "repo", settings=settings, detector_demo=demo)
    assert [c.kind for c in report.choices] == ["demo", "fallback", "fallback"]
    with pytest.raises(PrepareError, match="torch is not installed"):
        prepare(tmp_path / "repo", settings=settings, detector_demo=demo, require_real=True)
    # An earlier download is found without network, but cannot be exported here.
    (tmp_path / "w").mkdir()
    from export.weights import _cache_name

    (tmp_path / "w" / _cache_name(http_unreachable_url, None)).write_bytes(b"weights")
    assert cached_download(http_unreachable_url, None, tmp_path / "w") is not None
    report = prepare(tmp_path / "repo", settings=settings, detector_demo=demo)
    assert [c.kind for c in report.choices] == ["demo", "fallback", "fallback"]
    assert Checksum.pick(md5="AB") == Checksum("md5", "ab")


def test_gpu_profiles_cover_the_batches_the_pipeline_sends():
    from orchestrator.settings import Settings

    from export.repository import TRT_PROFILE, TRT_CACHE_DEFAULT

    settings = Settings()
    low, opt, high = TRT_PROFILE
    assert low == 1 and opt == max(settings.detect_batch, settings.inpaint_batch)
    for spec in (detector_spec(), inpainter_spec(512), inpainter_spec(256)):
        trt = model_config(spec, "gpu").optimization.execution_accelerators.gpu_execution_accelerator[0]
        assert high == spec.max_batch_size
        for key, batch in zip(("min", "opt", "max"), TRT_PROFILE):
            shapes = dict(item.split(":") for item in trt.parameters[f"trt_profile_{key}_shapes"].split(","))
            assert set(shapes) == {t.name for t in spec.inputs}
            assert all(s.split("x")[0] == str(batch) for s in shapes.values())
        assert trt.parameters["trt_engine_cache_path"] == f"{TRT_CACHE_DEFAULT}/{spec.name}"


def test_the_detector_config_records_its_weights_provenance(tmp_path):
    write_model(tmp_path, detector_spec(), None, target="cpu", weights="demo")
    cfg = parse_config((tmp_path / "detector" / "config.pbtxt").read_text())
    assert cfg.parameters["weights"].string_value == "demo"

"""big-lama architecture: upstream state-dict names, matmul DFT == torch.fft, ONNX == PyTorch."""

from __future__ import annotations

import sys
import types

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from export.inpainter import example_inputs, export_lama, lama_module
from export.lama import (
    CheckpointError,
    FFCResNetGenerator,
    LamaConfig,
    build_generator,
    count_parameters,
    generator_state_dict,
    irfft2_matmul,
    rfft2_matmul,
)

SMALL = LamaConfig(ngf=8, n_blocks=2)


@pytest.mark.parametrize("shape", [(2, 3, 16, 16), (1, 4, 12, 20), (2, 2, 8, 9)])
def test_matmul_dft_equals_torch_fft(shape):
    x = torch.randn(shape, generator=torch.Generator().manual_seed(0))
    real, imag = rfft2_matmul(x)
    ref = torch.fft.rfft2(x, norm="ortho")
    torch.testing.assert_close(real, ref.real, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(imag, ref.imag, atol=1e-5, rtol=1e-5)
    # Inverse on a spectrum that is NOT Hermitian-consistent (c2r must drop the same parts).
    spec_r, spec_i = torch.randn_like(real), torch.randn_like(imag)
    ref_inv = torch.fft.irfft2(torch.complex(spec_r, spec_i), s=shape[-2:], norm="ortho")
    torch.testing.assert_close(irfft2_matmul(spec_r, spec_i, shape[-1]), ref_inv, atol=1e-5, rtol=1e-5)


def test_generator_matmul_fft_equals_torch_fft():
    generator = build_generator(config=SMALL, seed=3)
    x = torch.rand(2, 4, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        out_matmul = generator(x)
        out_torch = generator.set_fft_impl("torch")(x)
    assert out_matmul.shape == (2, 3, 64, 64)
    torch.testing.assert_close(out_matmul, out_torch, atol=1e-5, rtol=1e-5)
    assert out_matmul.std() > 1e-3  # not a saturated, constant output


def test_big_lama_names_shapes_and_size_match_upstream():
    state = FFCResNetGenerator().state_dict()
    expected = {  # keys and shapes of the official best.ckpt generator (without "generator.")
        "model.1.ffc.convl2l.weight": (64, 4, 7, 7),
        "model.1.bn_l.running_var": (64,),
        "model.4.ffc.convl2l.weight": (128, 256, 3, 3),
        "model.4.ffc.convl2g.weight": (384, 256, 3, 3),
        "model.4.bn_g.weight": (384,),
        "model.5.conv1.ffc.convl2l.weight": (128, 128, 3, 3),
        "model.5.conv1.ffc.convg2l.weight": (128, 384, 3, 3),
        "model.5.conv1.ffc.convg2g.conv1.0.weight": (192, 384, 1, 1),
        "model.5.conv1.ffc.convg2g.conv1.1.running_mean": (192,),
        "model.5.conv1.ffc.convg2g.fu.conv_layer.weight": (384, 384, 1, 1),
        "model.5.conv1.ffc.convg2g.fu.bn.weight": (384,),
        "model.5.conv1.ffc.convg2g.conv2.weight": (384, 192, 1, 1),
        "model.22.conv2.bn_g.num_batches_tracked": (),
        "model.24.weight": (512, 256, 3, 3),
        "model.25.running_mean": (256,),
        "model.30.weight": (128, 64, 3, 3),
        "model.34.weight": (3, 64, 7, 7),
        "model.34.bias": (3,),
    }
    for key, shape in expected.items():
        assert tuple(state[key].shape) == shape, key
    assert "model.23.weight" not in state and not any(k.startswith("model.35.") for k in state)
    assert not any("lfu" in k for k in state)
    assert 50.5e6 < count_parameters(FFCResNetGenerator()) < 51.5e6


def _fake_omegaconf() -> types.ModuleType:
    module = types.ModuleType("fake_omegaconf_for_test")

    class DictConfig:  # pickled by reference, then made unimportable
        def __init__(self, content):
            self.content = content

    DictConfig.__module__ = module.__name__
    DictConfig.__qualname__ = "DictConfig"
    module.DictConfig = DictConfig
    return module


def test_lightning_checkpoint_and_torchscript_layouts_load(tmp_path):
    source = build_generator(config=SMALL, seed=7)
    x = torch.rand(1, 4, 32, 32)
    with torch.no_grad():
        expected = source(x)

    # 1. LaMa best.ckpt: Lightning dict, "generator." prefix, other modules, a config object
    #    of a class that is not installed when loading.
    fake = _fake_omegaconf()
    sys.modules[fake.__name__] = fake
    try:
        ckpt = {
            "state_dict": {**{f"generator.{k}": v for k, v in source.state_dict().items()},
                           "discriminator.model0.0.weight": torch.zeros(3)},
            "hyper_parameters": fake.DictConfig({"generator": {"kind": "ffc_resnet"}}),
            "epoch": 40,
        }
        torch.save(ckpt, tmp_path / "best.ckpt")
    finally:
        del sys.modules[fake.__name__]
    loaded = build_generator(tmp_path / "best.ckpt", config=SMALL, seed=99)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), expected)

    # 2. IOPaint big-lama.pt: TorchScript of a wrapper whose .model holds .generator.
    class Trainer(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.generator = source

    class JITWrapper(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = Trainer()

        def forward(self, image, mask):
            return self.model.generator(torch.cat([image * (1 - mask), mask], 1))

    traced = torch.jit.trace(JITWrapper().eval(), (x[:, :3], x[:, 3:]), check_trace=False)
    traced.save(str(tmp_path / "big-lama.pt"))
    keys = set(torch.jit.load(str(tmp_path / "big-lama.pt")).state_dict())
    assert "model.generator.model.5.conv1.ffc.convl2l.weight" in keys
    loaded = build_generator(tmp_path / "big-lama.pt", config=SMALL, seed=99)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), expected)


def test_wrong_checkpoints_give_clear_errors(tmp_path):
    with pytest.raises(CheckpointError, match="not a LaMa"):
        generator_state_dict({"backbone.conv.weight": torch.zeros(1)})
    torch.save(build_generator(config=LamaConfig(ngf=8, n_blocks=3)).state_dict(), tmp_path / "other.pth")
    with pytest.raises(CheckpointError, match="does not fit big-lama"):
        build_generator(tmp_path / "other.pth", config=SMALL)  # one resnet block too many
    torch.save(build_generator(config=LamaConfig(ngf=16, n_blocks=2)).state_dict(), tmp_path / "wide.pth")
    with pytest.raises(CheckpointError, match="does not fit big-lama"):
        build_generator(tmp_path / "wide.pth", config=SMALL)  # other widths
    with pytest.raises(CheckpointError, match="not found"):
        build_generator(tmp_path / "missing.ckpt", config=SMALL)
    with pytest.raises(ValueError, match="random_init"):
        lama_module(None)


def test_onnx_export_has_no_dft_and_equals_pytorch(tmp_path):
    crop = 64
    path = export_lama(tmp_path / "lama.onnx", weights=None, random_init=True, crop=crop, config=SMALL)
    model = onnx.load(str(path))
    ops = {node.op_type for node in model.graph.node}
    assert not ops & {"DFT", "STFT"}, ops
    assert [i.name for i in model.graph.input] == ["image", "mask"]
    assert [o.name for o in model.graph.output] == ["output"]
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.UINT8
    assert model.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.UINT8

    module = lama_module(None, random_init=True, config=SMALL)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for batch in (1, 3):
        image, mask = example_inputs(crop, batch=batch, seed=batch)
        with torch.no_grad():
            expected = module(image, mask).numpy()
        got = session.run(None, {"image": image.numpy(), "mask": mask.numpy()})[0]
        assert got.shape == (batch, 3, crop, crop) and got.dtype == np.uint8
        assert np.abs(got.astype(int) - expected.astype(int)).max() <= 1
        keep = np.broadcast_to(mask.numpy() <= 127, got.shape)
        assert np.array_equal(got[keep], image.numpy()[keep])  # composited
        assert not np.array_equal(got[~keep], image.numpy()[~keep])  # the hole was filled

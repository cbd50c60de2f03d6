"""The int8 export (models/export.py): the weights as the SRAM holds them, evaluating exactly like the
checkpoint they came from, clean and under bit errors."""
from __future__ import annotations

import pytest
import torch

from bitflip import FaultConfig
from bitflip.apply import perturbed
from common.ckpt import CheckpointError, load_checkpoint, save_checkpoint
from models import base_checkpoint_meta, get_model, quant_layers
from models.export import export_int8, float_state_dict


def _trained_like(arch: str, bits: int = 8) -> torch.nn.Module:
    torch.manual_seed(0)
    model = get_model(arch, 10, bits)
    with torch.no_grad():                       # BatchNorm statistics that are not the defaults
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    return model.eval()


def _reloaded(path, arch: str, bits: int = 8) -> torch.nn.Module:
    model = get_model(arch, 10, bits)
    model.load_state_dict(float_state_dict(load_checkpoint(path, kind="base"), bits, path))
    return model.eval()


@pytest.mark.parametrize("arch, bits", [("vgg11", 8), ("resnet18", 8), ("vgg11", 4)])
def test_export_reloads_to_the_same_codes_and_outputs(tmp_path, arch, bits):
    model = _trained_like(arch, bits)
    path = tmp_path / "m.int8.pt"
    save_checkpoint(export_int8(model, base_checkpoint_meta(arch, "cifar10", 10, bits)), path)
    again = _reloaded(path, arch, bits)
    for (name, a), (_, b) in zip(quant_layers(model), quant_layers(again)):
        qa, da = a.int8_weight()
        qb, db = b.int8_weight()
        assert torch.equal(qa, qb) and torch.equal(da, db), name
    x = torch.rand(4, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        assert torch.equal(model(x), again(x))
        cfg = FaultConfig(ber=0.01, bits=bits)
        with perturbed(model, cfg, 50000):
            faulty = model(x)
        with perturbed(again, cfg, 50000):
            assert torch.equal(faulty, again(x))


def test_export_is_about_a_quarter_of_the_float_checkpoint(tmp_path):
    model = _trained_like("resnet18")
    meta = base_checkpoint_meta("resnet18", "cifar10", 10, 8)
    save_checkpoint({**meta, "state_dict": model.state_dict()}, tmp_path / "float.pt")
    save_checkpoint(export_int8(model, meta), tmp_path / "int8.pt")
    ratio = (tmp_path / "int8.pt").stat().st_size / (tmp_path / "float.pt").stat().st_size
    assert 0.24 < ratio < 0.28, ratio            # int8 weights, float BatchNorm and biases


def test_export_at_other_precision_is_refused(tmp_path):
    model = _trained_like("vgg11", bits=4)
    path = tmp_path / "m4.int8.pt"
    save_checkpoint(export_int8(model, base_checkpoint_meta("vgg11", "cifar10", 10, 4)), path)
    with pytest.raises(CheckpointError, match="re-quantize"):
        float_state_dict(load_checkpoint(path), 8, path)

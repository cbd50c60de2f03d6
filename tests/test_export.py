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


@pytest.mark.slow
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


TINY = ["--train-limit", "100", "--test-limit", "50", "-BS", "25", "-TBS", "25", "--no-download",
        "--device", "cpu"]


def _cli(*args) -> int:
    import zs_main
    return zs_main.main([str(a) for a in args])


def _numbers(run_dir):
    import json
    res = json.loads((run_dir / "results.json").read_text())
    return {k: v for k, v in res.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


@pytest.mark.slow
def test_export_mode_evaluates_like_its_checkpoint(cifar_root, tmp_path):
    data = ["--data-root", cifar_root, *TINY]
    assert _cli("vgg11", "train", "cifar10", "-E", 1, "-LR", 0.01, "--run-dir", tmp_path / "base", *data) == 0
    best, out = tmp_path / "base" / "best.pt", tmp_path / "m.int8.pt"
    assert _cli("vgg11", "export", "cifar10", "-cp", best, "--out", out, *data) == 0
    assert load_checkpoint(out, kind="base")["format"] == "int8"
    assert out.stat().st_size < 0.3 * best.stat().st_size
    assert _cli("vgg11", "export", "cifar10", "-cp", best, "--out", out, *data) == 2    # exists, no -F
    numbers = []
    for name, cp in (("float", best), ("int8", out)):
        assert _cli("vgg11", "transform_eval", "cifar10", "-cp", cp, "--testing-mode", "clean",
                    "--run-dir", tmp_path / f"eval_{name}", *data) == 0
        numbers.append(_numbers(tmp_path / f"eval_{name}"))
    assert numbers[0] and numbers[0] == numbers[1]
    eopm = ["vgg11", "transform_eopm_gen", "cifar10", "-G", "ConvS", "-N", 2, "-E", 1, "--eval-seeds", "1"]
    for name, cp in (("float", best), ("int8", out)):
        assert _cli(*eopm, "-cp", cp, "--run-dir", tmp_path / f"eopm_{name}", *data) == 0
    a, b = (load_checkpoint(tmp_path / f"eopm_{r}" / "last.pt") for r in ("float", "int8"))
    assert a["state_dict"].keys() == b["state_dict"].keys()
    assert all(torch.equal(a["state_dict"][k], b["state_dict"][k]) for k in a["state_dict"])
    assert _numbers(tmp_path / "eopm_float") and _numbers(tmp_path / "eopm_float") == _numbers(tmp_path / "eopm_int8")


def test_export_without_out_is_a_usage_error(tmp_path):
    from common.runs import UsageError
    from eval import export_mode
    import zs_main
    args = zs_main.build_parser().parse_args(["vgg11", "export", "cifar10", "-cp", str(tmp_path / "x.pt")])
    with pytest.raises(UsageError, match="--out"):
        export_mode.run(zs_main.build_configs(args))

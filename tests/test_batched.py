"""All N seeds' faulty weights at once (bitflip/batched.py) = the per-seed path, byte for byte, for every
fault model; and the EOPM step built on them (train/eopm_fast.py) = `eopm_step`'s generator gradient.
CUDA variants run with -m cuda."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn

from bitflip import FaultConfig, list_fault_models
from bitflip.apply import faulty_int8
from bitflip.batched import BatchedFaults
from bitflip.chipmap import export_official, resolve_maps, write_map
from bitflip.ensemble import StackedForward
from bitflip.official import MAP_COLS, MAP_ROWS, official_cells
from generators import get_generator
from models import get_model
from models.quant import quant_layers, quantize_
from train.eopm import eopm_step
from train.eopm_fast import BatchedEOPMStep

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
SEEDS = [3, 4, 29999]
VARIANTS = [(-1, 8), (5, 8), (-1, 4), (2, 4)]        # (-pos, --bits)


def _model(arch: str, bits: int = 8, dtype=torch.float32, device="cpu") -> nn.Module:
    torch.manual_seed(0)
    if arch == "small":                                 # every layer type the fault models touch, in seconds
        model = quantize_(nn.Sequential(
            nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
            nn.ConvTranspose2d(16, 8, 2, stride=2), nn.ReLU(), nn.Conv2d(8, 32, 3, stride=4, padding=1),
            nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(128, 600), nn.ReLU(), nn.Linear(600, 10)), bits)
    else:
        model = get_model(arch, 10, bits=bits)
    return model.to(device, dtype).eval().requires_grad_(False)


def assert_same_as_per_seed(model: nn.Module, cfg: FaultConfig, seeds):
    """int8 copies and their q'·Δ equal `faulty_int8` / `faulty_weights` for each seed, every layer."""
    batched = BatchedFaults(model, cfg)
    got, got_w = batched.int8(seeds), batched.weights(seeds)
    faults = 0
    for k, seed in enumerate(seeds):
        want = faulty_int8(model, cfg, seed)
        assert len(got) == len(want) == len(list(quant_layers(model)))
        for (name, layer, g), (_, _, w) in zip(got, want):
            assert g.shape == (len(seeds), *w.shape) and torch.equal(g[k], w), (cfg, seed, name)
            deq = layer.dequantize(w)                  # what `perturb` sets / `faulty_weights` gives
            assert got_w[f"{name}.weight"].dtype == deq.dtype and torch.equal(got_w[f"{name}.weight"][k], deq)
            faults += int((w != layer.int8_weight()[0]).sum())
    assert faults                                      # the faults did change weights: a real check


def test_every_fault_model_is_covered():
    assert set(list_fault_models()) == {"official", "stuckat", "flip", "chipmap"}   # chipmap: below


@pytest.mark.parametrize("fault_model", ["official", "stuckat", "flip"])
def test_batched_equals_per_seed(fault_model):
    for pos, bits in VARIANTS:
        cfg = FaultConfig(fault_model, 0.01, pos, bits)
        model = _model("small", bits)
        assert_same_as_per_seed(model, cfg, SEEDS)
        clean = BatchedFaults(model, FaultConfig(fault_model, 0.0, pos, bits)).int8(SEEDS[:2])
        assert all(torch.equal(q[1], layer.int8_weight()[0]) for _, layer, q in clean)


@pytest.mark.slow
@pytest.mark.parametrize("arch, variants", [("resnet18", VARIANTS[::3]), ("vgg11", VARIANTS[1:3])])
@pytest.mark.parametrize("fault_model", ["official", "stuckat", "flip"])
def test_batched_equals_per_seed_on_cifar_models(arch, variants, fault_model):
    for pos, bits in variants:
        assert_same_as_per_seed(_model(arch, bits), FaultConfig(fault_model, 0.01, pos, bits), SEEDS)


def test_layers_longer_than_a_map_period_wrap():
    """Official's period is 8192·16² weights at 8 bits: a longer layer restarts at map row 0."""
    model = quantize_(nn.Sequential(nn.Linear(4100, 520, bias=False), nn.Linear(520, 3)))   # 2,132,000 > 2,097,152
    assert_same_as_per_seed(model, FaultConfig("official", 0.02), [7, 8])


@pytest.mark.parametrize("pos, bits", VARIANTS)
def test_chipmap_batched_equals_per_seed(tmp_path, pos, bits):
    for s in (100, 101):
        export_official(tmp_path / "chips" / f"s{s}", s, 0.02, bits=bits, position=pos)
    maps = resolve_maps([str(tmp_path / "chips")])
    assert_same_as_per_seed(_model("small", bits), FaultConfig("chipmap", 0.01, pos, bits, maps=maps), [1, 0, 1])


def test_chipmap_maps_of_different_heights_fall_back_to_per_seed(tmp_path):
    sa0, sa1 = official_cells(5, 0.02)
    write_map(tmp_path / "a", "0", sa0, sa1)
    taller = np.zeros((MAP_ROWS + 100, MAP_COLS), dtype=bool)
    taller[-50:, :7] = True                             # faults only in the extra rows
    np.savez(tmp_path / "b.npz", sa0=taller, sa1=np.roll(taller, 3, axis=1))
    maps = resolve_maps([str(tmp_path / "a"), str(tmp_path / "b.npz")])
    model = quantize_(nn.Sequential(nn.Linear(3000, 1000), nn.Linear(1000, 10)))    # 3M weights: past row 8192
    assert_same_as_per_seed(model, FaultConfig("chipmap", 0.01, maps=maps), [0, 1])
    with pytest.raises(ValueError, match="2 map"):
        BatchedFaults(model, FaultConfig("chipmap", 0.01, maps=maps)).int8([0, 2])


def test_bad_seeds_and_precision_are_refused():
    model = _model("small", bits=4)
    with pytest.raises(ValueError, match="bits"):
        BatchedFaults(model, FaultConfig("official", 0.01)).int8([1])
    batched = BatchedFaults(model, FaultConfig("flip", 0.01, bits=4))
    for seeds in ([-1], [2 ** 32], [1.5], []):
        with pytest.raises(ValueError, match="seed"):
            batched.int8(seeds)


def _eopm_grads(step, base, x, y, fault, seeds, **kw):
    torch.manual_seed(1)
    gen = get_generator("ConvS").to(torch.float64)
    metrics = step(gen, base, x, y, fault, seeds, 5.0, **kw)
    return [p.grad.clone() for p in gen.parameters()], {key: float(v) for key, v in metrics.items()}


def _check_eopm_step(arch: str, fault_model: str):
    base = _model(arch, dtype=torch.float64)
    x, y = torch.rand(4, 3, 32, 32, dtype=torch.float64) * 2 - 1, torch.tensor([0, 3, 5, 9])
    fault, seeds = FaultConfig(fault_model, 0.02), [3, 4, 5, 6]
    want, want_m = _eopm_grads(eopm_step, base, x, y, fault, seeds)
    fast = BatchedEOPMStep(base, fault)
    for k in (1, 3, 4):                                 # one at a time, chunks of 3 and 1, all at once
        got, got_m = _eopm_grads(fast, base, x, y, fault, seeds, batch_models=k)
        for a, b in zip(got, want):
            torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-12)
        assert got_m == pytest.approx(want_m, rel=1e-6)            # metrics are float32 sums
    assert all(not m.is_faulty and not m._as_given for _, m in quant_layers(base))
    other = _eopm_grads(eopm_step, base, x, y, fault, [7, 8, 9, 10])[0]
    assert not all(torch.allclose(a, b) for a, b in zip(other, want))   # the seeds matter


@pytest.mark.slow
@pytest.mark.parametrize("fault_model", ["official", "stuckat", "flip"])
def test_batched_eopm_step_same_generator_gradient(fault_model):
    _check_eopm_step("small", fault_model)


@pytest.mark.slow
def test_batched_eopm_step_same_generator_gradient_vgg11():
    _check_eopm_step("vgg11", "official")


def test_batched_eopm_step_refuses_another_model_or_config():
    base = _model("vgg11")
    fast = BatchedEOPMStep(base, FaultConfig("official", 0.01))
    gen, x, y = get_generator("ConvS"), torch.rand(2, 3, 32, 32), torch.tensor([0, 1])
    with pytest.raises(ValueError, match="another base model or fault config"):
        fast(gen, base, x, y, FaultConfig("official", 0.02), [1], 5.0)
    with pytest.raises(ValueError, match="another base model or fault config"):
        fast(gen, _model("vgg11"), x, y, FaultConfig("official", 0.01), [1], 5.0)


@pytest.mark.slow
def test_compiled_stacked_forward_does_not_recompile_per_seed():
    pytest.importorskip("torch._inductor")
    import shutil
    if not any(shutil.which(c) for c in ("c++", "g++", "clang++")):
        pytest.skip("torch.compile on CPU needs a C++ compiler")
    torch.manual_seed(0)
    base = quantize_(nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                                   nn.Flatten(), nn.Linear(8, 10))).eval().requires_grad_(False)
    fault = FaultConfig("official", 0.05)
    batched, run = BatchedFaults(base, fault), StackedForward(base, compile=True)
    x = torch.rand(4, 3, 16, 16) * 2 - 1
    run(batched.weights([1, 2]), x.requires_grad_(True)).sum().backward()          # compiles
    with torch._dynamo.config.patch(error_on_recompile=True):
        z = x.detach().requires_grad_(True)
        got = run(batched.weights([3, 4]), z)
        got.sum().backward()
    eager = StackedForward(base)(batched.weights([3, 4]), x.detach())
    torch.testing.assert_close(got.detach(), eager, rtol=1e-4, atol=1e-5)
    assert not torch.allclose(eager[0], eager[1])


@pytest.mark.cuda
@CUDA
@pytest.mark.parametrize("fault_model", ["official", "flip"])
def test_batched_on_cuda_same_bytes_as_cpu(fault_model):
    cfg = FaultConfig(fault_model, 0.01)
    cpu = BatchedFaults(_model("resnet18"), cfg).int8(SEEDS)
    cuda = BatchedFaults(_model("resnet18", device="cuda"), cfg).int8(SEEDS)
    assert all(torch.equal(a.cpu(), b) for (_, _, a), (_, _, b) in zip(cuda, cpu))

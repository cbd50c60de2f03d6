"""--compile: the perturbed passes through a (compiled) WeightedForward give the plain path's logits,
input gradient and generator gradient, and a new fault seed reuses the compiled graph."""
from __future__ import annotations

import shutil
import subprocess
import sys

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from bitflip import FaultConfig
from bitflip.ensemble import WeightedForward, perturbed_logits
from eval.neuralfuse import evaluate_seeds
from generators import get_generator
from models import get_model
from models.quant import quant_layers, quantize_
from train.eopm import eopm_step

FAULT = FaultConfig("official", 0.02)
CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
CXX = pytest.mark.skipif(not any(shutil.which(c) for c in ("c++", "g++", "clang++")),
                         reason="torch.compile on CPU needs a C++ compiler")


def _tiny(device="cpu"):
    """A small quantized CIFAR-shaped classifier: compiles in seconds on CPU."""
    torch.manual_seed(0)
    m = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(4),
                      nn.Conv2d(8, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(),
                      nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10))
    for bn in (m[1], m[5]):                                     # non-trivial running statistics
        bn.running_mean.uniform_(-0.2, 0.2)
        bn.running_var.uniform_(0.5, 1.5)
    return quantize_(m).to(device).eval().requires_grad_(False)


def _logits_and_grad(model, x, y, seeds, runner=None):
    z = x.clone().requires_grad_(True)
    out = []
    for chunk, lg in perturbed_logits(model, z, FAULT, seeds, 1, runner):
        F.cross_entropy(lg.flatten(0, 1), y.repeat(len(chunk)), reduction="sum").backward()
        out.append(lg.detach())
    return torch.cat(out), z.grad


@pytest.mark.slow
def test_weighted_forward_equals_in_place_faults():
    """The functional path (weights handed in) = faults set on the layers, bit for bit in float64."""
    torch.manual_seed(0)
    model = get_model("resnet18", 10).double().eval().requires_grad_(False)
    x, y = torch.randn(2, 3, 32, 32, dtype=torch.float64), torch.tensor([3, 8])
    plain = _logits_and_grad(model, x, y, [7, 8])
    functional = _logits_and_grad(model, x, y, [7, 8], WeightedForward(model))
    torch.testing.assert_close(functional[0], plain[0], rtol=0, atol=0)
    torch.testing.assert_close(functional[1], plain[1], rtol=0, atol=0)
    runner = WeightedForward(model)
    torch.testing.assert_close(runner(runner.clean(), x), model(x), rtol=0, atol=0)
    assert all(not m.is_faulty and not m._as_given for _, m in quant_layers(model))


@pytest.mark.slow
@CXX
def test_compiled_runner_agrees_and_does_not_recompile_per_seed():
    model = _tiny()
    x, y = torch.rand(4, 3, 32, 32) * 2 - 1, torch.tensor([0, 1, 2, 3])
    runner = WeightedForward(model, compile=True)
    _logits_and_grad(model, x, y, [1], runner)                      # compiles once
    with torch._dynamo.config.patch(error_on_recompile=True):       # new seeds must reuse the graph
        compiled = _logits_and_grad(model, x, y, [2, 3, 4], runner)
    plain = _logits_and_grad(model, x, y, [2, 3, 4])
    torch.testing.assert_close(compiled[0], plain[0], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(compiled[1], plain[1], rtol=1e-4, atol=1e-6)
    assert not torch.allclose(plain[0][0], plain[0][1])              # the seeds differ


@pytest.mark.slow
@CXX
def test_eopm_step_and_evaluation_through_compiled_runner():
    base = _tiny()
    x, y = torch.rand(4, 3, 32, 32) * 2 - 1, torch.tensor([0, 3, 5, 9])
    runner = WeightedForward(base, compile=True)
    grads, metrics = [], []
    for r in (None, runner):
        torch.manual_seed(1)
        gen = get_generator("ConvS")
        metrics.append({k: float(v) for k, v in eopm_step(gen, base, x, y, FAULT, [3, 4], 5.0, runner=r).items()})
        grads.append([p.grad.clone() for p in gen.parameters()])
    for a, b in zip(*grads):
        torch.testing.assert_close(b, a, rtol=1e-3, atol=1e-6)
    assert metrics[1] == pytest.approx(metrics[0], rel=1e-4, abs=1e-4)
    gen = get_generator("ConvS").eval()
    batches = [(torch.rand(8, 3, 32, 32) * 2 - 1, torch.randint(0, 10, (8,)))]
    plain = evaluate_seeds(base, gen, batches, torch.device("cpu"), FAULT, [1, 2])
    fast = evaluate_seeds(base, gen, batches, torch.device("cpu"), FAULT, [1, 2], runner=runner)
    for a, b in zip(plain["per_seed"], fast["per_seed"]):           # 8 images: at most one may flip
        assert abs(a["PA"] - b["PA"]) <= 100 / 8 and abs(a["PA_NF"] - b["PA_NF"]) <= 100 / 8


@pytest.mark.slow
def test_compile_with_batched_models_is_a_one_line_error(tmp_path):
    proc = subprocess.run([sys.executable, "zs_main.py", "vgg11", "transform_eopm_gen", "cifar10", "--device",
                           "cpu", "--compile", "--batch-models", "2", "-cp", str(tmp_path / "x.pt"),
                           "--data-root", str(tmp_path), "--no-download", "--run-dir", str(tmp_path / "r")],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.strip().count("\n") == 0 and "--batch-models 2" in proc.stderr


@pytest.mark.cuda
@CUDA
def test_compiled_runner_on_cuda_close_to_eager(monkeypatch):
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)
    torch.manual_seed(0)
    model = get_model("resnet18", 10).cuda().eval().requires_grad_(False)
    x, y = torch.randn(32, 3, 32, 32, device="cuda"), torch.randint(0, 10, (32,), device="cuda")
    runner = WeightedForward(model, compile=True)
    _logits_and_grad(model, x, y, [1], runner)
    with torch._dynamo.config.patch(error_on_recompile=True):
        compiled = _logits_and_grad(model, x, y, [2, 3], runner)
    plain = _logits_and_grad(model, x, y, [2, 3])
    torch.testing.assert_close(compiled[0], plain[0], rtol=1e-3, atol=1e-4)
    assert ((compiled[1] - plain[1]).norm() / plain[1].norm()) < 1e-3


def test_compile_without_a_cpp_compiler_is_refused_before_the_run(monkeypatch):
    from common import session
    from config import PerfConfig
    monkeypatch.setattr(session.shutil, "which", lambda name: None)
    for training in (True, False):                                       # every mode checks the same
        with pytest.raises(session.UsageError, match="C\\+\\+ compiler"):
            session.check_speed(PerfConfig(compile=True), torch.device("cpu"), training)
    monkeypatch.setattr(session.shutil, "which", lambda name: "/usr/bin/" + name)
    session.check_speed(PerfConfig(compile=True), torch.device("cpu"), False)   # a compiler found: accepted

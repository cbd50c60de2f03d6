"""EOPM (docs/DESIGN.md §7): the once-per-batch gradient equals the released formulation, training is
deterministic for a seed, and on a small checkable task it recovers accuracy under bit errors."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from bitflip import FaultConfig, perturbed
from common.ckpt import load_checkpoint
from generators import get_generator
from models.quant import quantize_
from train.eopm import eopm_step
from tests.conftest import learnable_images
import zs_main


def tiny_base(width: int = 32, classes: int = 10) -> nn.Module:
    return quantize_(nn.Sequential(
        nn.Conv2d(3, width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(width, width, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear(width, classes)))


def images(n, seed, size=8):
    x, y = learnable_images(n, size=size, signal=0.4, seed=seed)
    return torch.from_numpy(x).permute(0, 3, 1, 2).float() / 127.5 - 1, torch.tensor(y)


@pytest.mark.slow
@pytest.mark.parametrize("fault_model", ["official", "flip"])
def test_once_per_batch_gradient_equals_released_formulation(fault_model):
    torch.manual_seed(0)
    base = tiny_base().eval().requires_grad_(False)
    gen = get_generator("ConvS").train()
    x, y = images(16, seed=0)
    fault, seeds, lam = FaultConfig(fault_model, 0.05), [11, 22, 33], 5.0

    gen.zero_grad()
    eopm_step(gen, base, x, y, fault, seeds, lam)
    ours = [p.grad.clone() for p in gen.parameters()]

    # Released formulation: G(x) and the clean loss recomputed for every perturbed model k,
    # loss = mean_k [CE(M0(F(x))) + λ·CE(M_k(F(x)))].
    gen.zero_grad()
    total = 0
    for s in seeds:
        fx = gen(x)
        clean = F.cross_entropy(base(fx), y)
        with perturbed(base, fault, s):
            total = total + (clean + lam * F.cross_entropy(base(fx), y)) / len(seeds)
    total.backward()
    for a, (name, p) in zip(ours, gen.named_parameters()):
        assert torch.allclose(a, p.grad, rtol=1e-4, atol=1e-6), name
    assert any(g.abs().sum() > 0 for g in ours)


@pytest.mark.slow
def test_eopm_recovers_accuracy_under_bit_errors():
    """Behaviour, not the paper's numbers: ~1/2 minute on 2 cores."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    xtr, ytr = images(2048, seed=1)
    xte, yte = images(1000, seed=2)
    base = tiny_base()
    opt = torch.optim.SGD(base.parameters(), lr=0.05, momentum=0.9)
    for _ in range(300):                                   # QAT of the base model
        idx = torch.randint(0, len(ytr), (64,), generator=g)
        loss = F.cross_entropy(base(xtr[idx]), ytr[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    base.eval().requires_grad_(False)
    fault = FaultConfig("flip", 0.01)
    eval_seeds = range(50000, 50010)

    @torch.no_grad()
    def pa(inputs):
        accs = []
        for s in eval_seeds:
            with perturbed(base, fault, s):
                accs.append((base(inputs).argmax(1) == yte).float().mean().item() * 100)
        return float(np.mean(accs))

    ca = (base(xte).argmax(1) == yte).float().mean().item() * 100
    pa_before = pa(xte)
    assert ca > 70 and pa_before < ca - 5, (ca, pa_before)  # learnt (chance is 10%) and faults hurt

    gen = get_generator("ConvS")
    gopt = torch.optim.Adam(gen.parameters(), lr=1e-3, betas=(0.5, 0.999))
    rng = np.random.default_rng(0)
    for _ in range(150):
        idx = torch.randint(0, len(ytr), (64,), generator=g)
        gopt.zero_grad()
        eopm_step(gen.train(), base, xtr[idx], ytr[idx], fault, rng.integers(0, 30001, 4), 5.0)
        gopt.step()
    with torch.no_grad():
        fx = gen.eval()(xte)
    pa_after = pa(fx)
    # 10 seeds x 1000 images: the seed-to-seed std of PA is a few points, so 5 points is a clear margin.
    assert pa_after > pa_before + 5, (pa_before, pa_after)


@pytest.mark.slow
def test_same_seed_same_generator(cifar_root, tmp_path):
    tiny = ["--data-root", str(cifar_root), "--train-limit", "20", "--test-limit", "10", "-BS", "10",
            "-TBS", "10", "--no-download", "--device", "cpu", "-E", "1"]
    assert zs_main.main(["vgg11", "train", "cifar10", "--run-dir", str(tmp_path / "b"), *tiny]) == 0
    cp = str(tmp_path / "b" / "best.pt")
    states = []
    for name, seed in (("g1", 3), ("g2", 3), ("g3", 4)):
        assert zs_main.main(["vgg11", "transform_eopm_gen", "cifar10", "-cp", cp, "-N", "2", "-G", "ConvS",
                             "--seed", str(seed), "--eval-seeds", "1", "--run-dir", str(tmp_path / name),
                             *tiny]) == 0
        states.append(load_checkpoint(tmp_path / name / "last.pt")["state_dict"])
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])
    assert any(not torch.equal(states[0][k], states[2][k]) for k in states[0] if states[0][k].is_floating_point())


@pytest.mark.slow                          # a few generator passes: about 1 s alone, more on a busy machine
def test_validation_reuses_the_base_models_numbers(monkeypatch):
    """EOPM measures the frozen base model's CA and PA once; each epoch's validation reuses them and runs
    only the passes through G, with the same numbers as measuring everything again."""
    import eval.neuralfuse as nf
    torch.manual_seed(0)
    base, gen = tiny_base().eval().requires_grad_(False), get_generator("ConvS").eval()
    x, y = images(8, seed=5, size=32)
    batches = [(x[:4], y[:4]), (x[4:], y[4:])]
    fault, seeds, cpu = FaultConfig("official", 0.05), [40000, 40001, 40002], torch.device("cpu")
    full = nf.evaluate_seeds(base, gen, batches, cpu, fault, seeds, prefetch_workers=0)
    frozen = nf.evaluate_seeds(base, None, batches, cpu, fault, seeds, prefetch_workers=0)
    passes, real = [], nf.ensemble_accuracy
    monkeypatch.setattr(nf, "ensemble_accuracy", lambda *a, **k: passes.append(1) or real(*a, **k))
    reused = nf.evaluate_seeds(base, gen, batches, cpu, fault, seeds, prefetch_workers=0, base_only=frozen)
    assert reused == full and len(passes) == 3             # 3 seeds x the F(x) pass only
    assert {r["PA"] for r in full["per_seed"]} != {full["CA"]}   # the faults did matter
    with pytest.raises(ValueError, match="other fault seeds"):
        nf.evaluate_seeds(base, gen, batches, cpu, fault, [1, 2], base_only=frozen)


def test_seed_plan_is_the_per_batch_stream_and_prefetches():
    """SeedPlan draws an epoch's seeds up front from the same stream as drawing per batch, hands them out
    in order and schedules the coming steps' fault maps."""
    from bitflip.prefetch import FaultPrefetcher, SeedPlan
    fault = FaultConfig("official", 0.01)
    with FaultPrefetcher(fault, workers=1) as pf:
        plan = SeedPlan(pf, seed_range=(1, 49999), per_step=3)
        plan.start_epoch(run_seed=4, rank=1, epoch=2, steps=5)
        rng = np.random.default_rng([4, 1, 2])
        for _ in range(5):
            expected = rng.integers(1, 50000, size=3)
            got = plan.next()
            assert np.array_equal(got, expected)
            assert not set(int(s) for s in got) & set(pf.pending)      # this step's maps: ready, not pending
        plan.start_epoch(run_seed=4, rank=1, epoch=2, steps=5)
        plan.next()
        assert set(pf.pending) == {int(s) for later in plan.seeds[1:1 + plan.ahead] for s in later}

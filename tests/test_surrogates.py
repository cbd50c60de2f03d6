"""EOPM over several surrogate models (paper Table 21; train/surrogates.py): the step's gradient is the
hand-written average over the B base models with seed k on model k mod B, the CLI trains over them and
records them, transform_eval on a third model names them, refusals are one line, and resume is exact."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import grid as grid_mod
import zs_main
from bitflip import FaultConfig, perturbed
from common.ckpt import load_checkpoint, save_checkpoint
from eval.results import read_results
from generators import get_generator
from models import base_checkpoint_meta, get_model
from models.quant import quantize_
from train.eopm import eopm_step
from train.surrogates import surrogate_step
import train.surrogates as surrogates_module

TINY = ["--train-limit", "20", "--test-limit", "10", "-BS", "10", "-TBS", "10", "--no-download",
        "--device", "cpu", "-G", "ConvS", "--eval-seeds", "50000"]


def tiny_nets():
    """Two small quantized classifiers of different shapes (stand-ins for two architectures)."""
    a = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                      nn.Linear(8, 10))
    b = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.Conv2d(6, 12, 3, stride=2, padding=1),
                      nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(12, 10))
    return [quantize_(m).eval().requires_grad_(False) for m in (a, b)]


def grads(gen):
    return [p.grad.clone() for p in gen.parameters()]


def hand_written(gen, bases, x, y, fault, seeds, lam, owner):
    """L = mean_b CE(M_b(F(x))) + λ/N Σ_k CE(M_owner(k)^{s_k}(F(x))), by autograd through G directly."""
    gen.zero_grad()
    fx = gen(x)
    loss = sum(F.cross_entropy(m(fx), y) for m in bases) / len(bases)
    for k, s in enumerate(seeds):
        m = bases[owner(k)]
        with perturbed(m, fault, s):
            loss = loss + lam / len(seeds) * F.cross_entropy(m(fx), y)
    loss.backward()
    return grads(gen), loss.detach()


def test_step_gradient_is_the_average_over_the_base_models():
    torch.manual_seed(0)
    bases, gen = tiny_nets(), get_generator("ConvS").train()
    x, y = torch.rand(6, 3, 8, 8) * 2 - 1, torch.arange(6) % 10
    fault, seeds, lam = FaultConfig("flip", 0.05), [11, 22, 33], 5.0
    state = {k: v.clone() for k, v in gen.state_dict().items()}     # BatchNorm statistics move each pass

    gen.zero_grad()
    metrics = surrogate_step(gen, bases, x, y, fault, seeds, lam)
    ours = grads(gen)
    gen.load_state_dict(state)
    want, loss = hand_written(gen, bases, x, y, fault, seeds, lam, owner=lambda k: k % 2)
    for a, b in zip(ours, want):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-6)
    assert torch.allclose(metrics["loss"], loss, rtol=1e-5)
    gen.load_state_dict(state)
    other, _ = hand_written(gen, bases, x, y, fault, seeds, lam, owner=lambda k: (k + 1) % 2)
    assert any(not torch.allclose(a, b, rtol=1e-3, atol=1e-5) for a, b in zip(ours, other))  # the deal matters


def test_one_base_model_is_eopm_step_exactly():
    torch.manual_seed(1)
    base, gen = tiny_nets()[0], get_generator("ConvS").train()
    x, y = torch.rand(4, 3, 8, 8) * 2 - 1, torch.arange(4)
    fault = FaultConfig("flip", 0.05)
    state = {k: v.clone() for k, v in gen.state_dict().items()}
    gen.zero_grad()
    a = surrogate_step(gen, [base], x, y, fault, [5, 6], 2.0)
    ga = grads(gen)
    gen.load_state_dict(state)
    gen.zero_grad()
    b = eopm_step(gen, base, x, y, fault, [5, 6], 2.0)
    assert all(torch.equal(p, q) for p, q in zip(ga, grads(gen)))
    assert all(torch.equal(a[k], b[k]) for k in b)


def test_runners_and_amp_run_the_same_step():
    """Through each model's WeightedForward (what --compile uses): the same gradient; under bfloat16
    autocast (--amp): a finite gradient close to it."""
    from bitflip.ensemble import WeightedForward
    torch.manual_seed(2)
    bases, gen = tiny_nets(), get_generator("ConvS").eval()             # eval: no BatchNorm statistics move
    x, y = torch.rand(4, 3, 8, 8) * 2 - 1, torch.arange(4)
    fault, seeds = FaultConfig("flip", 0.05), [7, 8, 9, 10]
    out = []
    for runners, amp in ((None, False), ([WeightedForward(m) for m in bases], False), (None, True)):
        gen.zero_grad()
        surrogate_step(gen, bases, x, y, fault, seeds, 3.0, runners=runners, amp=amp)
        out.append(torch.cat([p.grad.flatten() for p in gen.parameters()]))
    assert torch.allclose(out[0], out[1], rtol=1e-4, atol=1e-6)
    assert torch.isfinite(out[2]).all() and F.cosine_similarity(out[0], out[2], dim=0) > 0.9


def test_step_refuses_fewer_seeds_than_base_models():
    gen = get_generator("ConvS")
    with pytest.raises(ValueError, match="need >= 2"):
        surrogate_step(gen, tiny_nets(), torch.zeros(2, 3, 8, 8), torch.zeros(2, dtype=torch.long),
                       FaultConfig("flip", 0.05), [1], 1.0)


def save_base(path, arch, seed, dataset="cifar10", classes=10):
    torch.manual_seed(seed)
    save_checkpoint({**base_checkpoint_meta(arch, dataset, classes, 8), "state_dict": get_model(arch, classes)
                     .state_dict()}, path)
    return str(path)


@pytest.fixture(scope="module")
def bases(tmp_path_factory):
    """Untrained base checkpoints, as train writes them: the -cp model, a surrogate of another
    architecture, a third (target) model, and one of another dataset."""
    d = tmp_path_factory.mktemp("bases")
    return {"cp": save_base(d / "vgg11.pt", "vgg11", 0), "sur": save_base(d / "resnet18.pt", "resnet18", 1),
            "target": save_base(d / "target.pt", "vgg11", 2),
            "gtsrb": save_base(d / "gtsrb.pt", "vgg11", 3, dataset="gtsrb", classes=43)}


def cli(*args):
    return zs_main.main([str(a) for a in args])


@pytest.mark.parametrize("extra, needle", [
    (["--surrogate", "{sur}", "-N", "1"], "-N 1: 2 base models"),
    (["--surrogate", "{gtsrb}"], "trained on gtsrb"),
    (["--surrogate", "{missing}"], "no such file"),
    (["--surrogate", "{cp}"], "is the -cp model"),
    (["--surrogate", "{sur}", "--surrogate", "{sur}", "-N", "3"], "names one file twice"),
])
def test_refusals_are_one_line(bases, cifar_root, tmp_path, capsys, extra, needle):
    paths = {**bases, "missing": str(tmp_path / "nope.pt")}
    extra = [e.format(**paths) for e in extra]
    run_dir = tmp_path / "run"
    code = cli("vgg11", "transform_eopm_gen", "cifar10", "-cp", bases["cp"], "-N", 2, *extra,
               "--data-root", cifar_root, "--run-dir", run_dir, *TINY)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and needle in err[0], err
    assert "--surrogate" in err[0] or "-N" in err[0]
    assert not run_dir.exists()                                    # refused before the run folder


@pytest.mark.slow                      # an EOPM epoch over VGG11 + ResNet18 and an evaluation: ~8 s alone on 2 cores
def test_cli_trains_over_the_surrogates_and_records_them(bases, cifar_root, tmp_path, capsys, monkeypatch):
    seen = []
    real = surrogates_module.surrogate_step
    monkeypatch.setattr(surrogates_module, "surrogate_step",
                        lambda gen, models, *a, **k: seen.append(len(models)) or real(gen, models, *a, **k))
    run_dir = tmp_path / "gen"
    assert cli("vgg11", "transform_eopm_gen", "cifar10", "-cp", bases["cp"], "--surrogate", bases["sur"], "-N", 2,
               "-E", 1, "--data-root", cifar_root, "--run-dir", run_dir, *TINY) == 0
    assert seen and set(seen) == {2}                              # every step ran over both base models
    out = capsys.readouterr().out
    assert f"on frozen vgg11 ({bases['cp']}) + resnet18 ({bases['sur']})" in out
    s = read_results(run_dir).settings
    assert s["surrogates"] == [bases["sur"]] and s["surrogate_archs"] == ["resnet18"]
    assert s["generator_trained_on"] == "vgg11+resnet18/cifar10" and s["checkpoint"] == bases["cp"]
    meta = load_checkpoint(run_dir / "best.pt", kind="generator")
    assert meta["surrogates"] == [bases["sur"]] and meta["surrogate_archs"] == ["resnet18"]
    assert json.loads((run_dir / "args.json").read_text())["eopm"]["surrogates"] == [bases["sur"]]

    ev = tmp_path / "eval"                                        # the generator on a third model
    assert cli("vgg11", "transform_eval", "cifar10", "-cp", bases["target"], "--testing-mode", "generator_base",
               "--G-path", run_dir / "best.pt", "--data-root", cifar_root, "--run-dir", ev, *TINY) == 0
    s = read_results(ev).settings
    assert s["generator_trained_on"] == "vgg11+resnet18/cifar10" and s["surrogate_archs"] == ["resnet18"]
    assert s["checkpoint"] == bases["target"]


@pytest.mark.slow                      # three short EOPM runs over two base models: ~11 s alone on 2 cores
def test_resume_is_exact_and_keeps_the_surrogates(bases, cifar_root, tmp_path, capsys):
    cmd = ["vgg11", "transform_eopm_gen", "cifar10", "-cp", bases["cp"], "--surrogate", bases["sur"], "-N", 2,
           "--data-root", cifar_root, *TINY]
    assert cli(*cmd, "-E", 2, "--run-dir", tmp_path / "whole") == 0
    assert cli(*cmd, "-E", 1, "--run-dir", tmp_path / "split") == 0
    assert cli(*cmd, "-E", 2, "--run-dir", tmp_path / "split", "-rt") == 0
    a, b = (load_checkpoint(tmp_path / r / "last.pt") for r in ("whole", "split"))
    assert a["state_dict"].keys() == b["state_dict"].keys()
    assert all(torch.equal(a["state_dict"][k], b["state_dict"][k]) for k in a["state_dict"])
    capsys.readouterr()
    plain = [c for c in cmd if c not in ("--surrogate", bases["sur"])]
    assert cli(*plain, "-E", 3, "--run-dir", tmp_path / "split", "-rt") == 2     # without the surrogate: refused
    assert "--surrogate" in capsys.readouterr().err


def test_table21_grid_trains_over_table1s_resnet18_and_vgg19(tmp_path):
    root = Path(grid_mod.__file__).parent
    table1 = grid_mod.expand(grid_mod.load_grid(str(root / "grids" / "cifar10_table1.json")))
    base_of = {r.argv[0]: str(r.run_dir / "best.pt") for r in table1 if r.stage == "base"}
    g = grid_mod.load_grid(str(root / "grids" / "table21_surrogates.json"))
    assert g.base_checkpoints == {"resnet18": base_of["resnet18"]}
    (tmp_path / "r18.pt").write_bytes(b"")                      # expand() wants the base checkpoint to exist
    runs = grid_mod.expand(dataclasses.replace(g, base_checkpoints={"resnet18": str(tmp_path / "r18.pt")}))
    assert [r.stage for r in runs] == ["gen", "gen"]
    cfgs = zs_main.build_configs(zs_main.build_parser().parse_args(list(runs[0].argv)))
    assert [Path(p).resolve() for p in cfgs.eopm.surrogates] == [Path(base_of["vgg19"]).resolve()]
    assert cfgs.eopm.n_models >= 1 + len(cfgs.eopm.surrogates) and cfgs.fault.ber == 0.015


def test_results_accept_the_surrogate_settings_and_refuse_other_types(tmp_path):
    from eval.results import ResultsError, trained_on
    assert trained_on("vgg11", "cifar10", ["resnet18", "vgg19"]) == "vgg11+resnet18+vgg19/cifar10"
    assert trained_on("vgg11", "cifar10") == "vgg11/cifar10"
    entry = {"CA": 90.0, "PA_mean": 50.0, "PA_std": 1.0, "per_seed": []}
    good = {"surrogates": ["a/r18.pt"], "surrogate_archs": ["resnet18"],
            "generator_trained_on": "vgg11+resnet18/cifar10"}
    (tmp_path / "results.json").write_text(json.dumps({**entry, "settings": good}))
    assert read_results(tmp_path).settings["surrogate_archs"] == ["resnet18"]
    (tmp_path / "results.json").write_text(json.dumps({**entry, "settings": {**good, "surrogates": "a/r18.pt"}}))
    with pytest.raises(ResultsError, match="settings.surrogates"):
        read_results(tmp_path)

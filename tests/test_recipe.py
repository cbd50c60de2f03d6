"""--recipe: `fast` resolves to its preset (CUDA-only parts only on CUDA), explicit flags win, `paper`
stays the default, and a fast run (one-cycle LR stepped per batch) resumes exactly with -rt."""
from __future__ import annotations

import pytest
import torch

import zs_main
from common.ckpt import load_checkpoint

TINY = ["--train-limit", "100", "--test-limit", "50", "-BS", "25", "-TBS", "25", "--no-download",
        "--device", "cpu"]


def _configs(*argv):
    return zs_main.build_configs(zs_main.build_parser().parse_args([str(a) for a in argv]))


def test_fast_recipe_on_cpu_resolves_to_its_preset():
    c = _configs("vgg11", "train", "cifar10", "--recipe", "fast", "--device", "cpu")
    t = c.train
    assert (t.recipe, t.nesterov, t.momentum, t.weight_decay, t.label_smoothing, t.schedule) == \
        ("fast", True, 0.9, 5e-4, 0.1, "onecycle")
    assert (t.epochs, t.lr, c.data.batch_size) == (40, 0.2, 512)
    assert (c.perf.amp, c.perf.compile, c.perf.device_data, c.perf.channels_last) == (False, False, "auto", "off")


def test_fast_recipe_on_cuda_adds_the_speed_settings():
    c = _configs("vgg11", "train", "cifar10", "--recipe", "fast", "--device", "cuda")   # parsing needs no GPU
    assert (c.perf.amp, c.perf.compile, c.perf.device_data, c.perf.channels_last) == (True, True, "on", "off")


def test_explicit_flags_override_the_recipe():
    c = _configs("vgg11", "train", "cifar10", "--recipe", "fast", "--device", "cpu", "-E", 3)
    assert (c.train.epochs, c.train.lr, c.data.batch_size) == (3, 0.2, 512)
    c = _configs("vgg11", "train", "cifar10", "--recipe", "fast", "--device", "cpu", "-BS", 128)
    assert (c.data.batch_size, c.train.lr) == (128, pytest.approx(0.05))    # lr scaled to the batch
    c = _configs("vgg11", "train", "cifar10", "--recipe", "fast", "--device", "cpu", "-LR", 0.1, "-BS", 128)
    assert c.train.lr == 0.1


def test_paper_recipe_is_the_default_and_unchanged():
    c = _configs("vgg11", "train", "cifar10", "--device", "cpu")
    t = c.train
    assert (t.recipe, t.nesterov, t.weight_decay, t.label_smoothing, t.schedule) == ("paper", False, 0.0, 0.0, "none")
    assert (t.epochs, t.lr, c.data.batch_size) == (300, 1e-3, 256)
    assert c.eopm.epochs == 300


def test_recipe_is_refused_outside_train(capsys):
    assert zs_main.main(["vgg11", "transform_eval", "cifar10", "--recipe", "fast"]) == 2
    assert "--recipe fast applies to the train mode only" in capsys.readouterr().err


@pytest.mark.slow
def test_fast_recipe_resumes_exactly(cifar_root, tmp_path):
    cmd = ["vgg11", "train", "cifar10", "--recipe", "fast", "-E", 2, "--data-root", cifar_root, *TINY]
    run = lambda *extra: zs_main.main([str(a) for a in cmd + list(extra)])   # noqa: E731
    assert run("--run-dir", tmp_path / "whole") == 0
    assert run("--run-dir", tmp_path / "split", "--max-minutes", 1e-6) == 0   # stops after epoch 1 of 2
    assert load_checkpoint(tmp_path / "split" / "last.pt")["epoch"] == 1
    assert run("--run-dir", tmp_path / "split", "-rt", "-E", 3) == 2         # the one cycle spans the run
    assert run("--run-dir", tmp_path / "split", "-rt") == 0
    a, b = (load_checkpoint(tmp_path / r / "last.pt") for r in ("whole", "split"))
    assert a["epoch"] == b["epoch"] == 2 and a["scheduler"] == b["scheduler"]
    assert a["scheduler"]["last_epoch"] == a["scheduler"]["total_steps"] > 2      # stepped once per batch
    assert a["state_dict"].keys() == b["state_dict"].keys()
    assert all(torch.equal(a["state_dict"][k], b["state_dict"][k]) for k in a["state_dict"])
    assert a["optimizer"]["param_groups"][0]["nesterov"] is True

"""Fault-aware training in the `train` mode (train/qat.py, train/fault_aware.py; docs/DESIGN.md §15):
the CLI runs it and resumes it exactly, refuses fault flags without it, records how a base model was
trained (checkpoint, export, results.json), and on a tiny task it does raise the accuracy under bit
errors (a paired comparison over init seeds, with its standard error)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn as nn

import zs_main
from bitflip import FaultConfig
from bitflip.prefetch import FaultPrefetcher, SeedPlan
from common.ckpt import CheckpointError, load_checkpoint
from common.cli import EXIT_USAGE
from common.runs import read_jsonl
from eval.neuralfuse import evaluate_seeds
from eval.results import read_results
from models.checkpoint import base_training, retrained
from models.quant import quant_layers, quantize_
from train.fault_aware import StepFaults, training_record
from train.qat import qat_step

TINY = ["--train-limit", "20", "--test-limit", "10", "-BS", "10", "-TBS", "10", "--no-download",
        "--device", "cpu", "--prefetch-workers", "0"]


def fault_aware_cmd(root, ber: float = 0.05):
    return ["vgg11", "train", "cifar10", "-LR", "0.01", "--seed", "3", "--fault-aware", "--fault-model", "flip",
            "-ber", ber, "--clip-weights", "0.2", "--data-root", root, *TINY]


def untimed(rows):
    return [{k: v for k, v in r.items() if not k.endswith("time_s")} for r in rows]


def run_cli(*args) -> int:
    return zs_main.main([str(a) for a in args])


# --- refusals and records (fast) -----------------------------------------------------------------

@pytest.mark.parametrize("flags, named", [(["-ber", "0.02"], "-ber 0.02"),
                                          (["--fault-model", "flip", "-pos", "3"], "--fault-model flip, -pos 3"),
                                          (["--ecc", "secded"], "--ecc secded")])
def test_fault_flags_without_fault_aware_are_refused_in_one_line(tmp_path, capsys, flags, named):
    code = run_cli("vgg11", "train", "cifar10", *flags, "--run-dir", tmp_path / "r", *TINY)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == EXIT_USAGE and len(err) == 1 and "Traceback" not in err[0]
    assert f"{named}: fault settings apply to train only with --fault-aware" in err[0]
    assert not (tmp_path / "r").exists()                       # refused before anything is written


def test_bits_and_clip_weights_need_no_fault_aware():
    from train.qat import refuse_unused_faults
    parse = zs_main.build_parser().parse_args
    for argv in (["--bits", "4"], ["--clip-weights", "0.1"], ["--fault-aware", "-ber", "0.02"]):
        refuse_unused_faults(zs_main.build_configs(parse(["vgg11", "train", "cifar10", *argv])))  # no error


def test_the_start_up_line_names_the_training_faults_only_when_used():
    def line(*argv):
        return zs_main.summary_line(zs_main.build_configs(zs_main.build_parser().parse_args(
            ["vgg11", "train", "cifar10", *argv])))
    assert "fault-aware: flip faults at BER 0.05, 8-bit | --clip-weights 0.2" in line(
        "--fault-aware", "--fault-model", "flip", "-ber", "0.05", "--clip-weights", "0.2")
    assert "faults" not in line() and "clip" not in line()


def test_training_record_and_its_reader():
    fault = FaultConfig("flip", 0.05)
    assert training_record(False, fault, None) == "qat"
    clip_only = training_record(False, fault, 0.1)
    assert clip_only == {"fault_aware": False, "fault": None, "clip": 0.1} and not retrained(clip_only)
    fa = training_record(True, fault, 0.1)
    assert fa["fault"]["model"] == "flip" and fa["fault"]["ber"] == 0.05 and retrained(fa)
    assert base_training({"kind": "base"}) == "qat"             # written before the field existed
    assert base_training({"base_training": fa}) == fa
    with pytest.raises(CheckpointError, match="'base_training' is int"):
        base_training({"base_training": 3}, "x.pt")


def test_clip_weights_alone_clamps_after_every_step():
    torch.manual_seed(0)
    model = quantize_(nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2)))
    step = qat_step(model, torch.optim.SGD(model.parameters(), lr=5.0), False, False, clip=0.05)
    bound = torch.tensor(0.05).item()                          # 0.05 in float32
    for _ in range(3):
        m = step(torch.randn(16, 4), torch.randint(0, 2, (16,)))
        assert max(layer.weight.abs().max().item() for _, layer in quant_layers(model)) == bound   # lr 5: it bit
    assert set(m) == {"loss", "acc"} and not m["loss"].requires_grad


# --- the CLI (whole commands: slow) --------------------------------------------------------------

@pytest.mark.slow
def test_cli_fault_aware_runs_resumes_exactly_and_is_recorded(cifar_root, tmp_path, capsys):
    cmd = fault_aware_cmd(cifar_root)
    assert run_cli(*cmd, "-E", 2, "--run-dir", tmp_path / "whole") == 0
    assert "fault-aware QAT" in capsys.readouterr().out
    assert run_cli(*cmd, "-E", 1, "--run-dir", tmp_path / "split") == 0
    assert run_cli(*cmd, "-E", 2, "--run-dir", tmp_path / "split", "-rt") == 0
    a, b = (load_checkpoint(tmp_path / r / "last.pt") for r in ("whole", "split"))
    assert a["state_dict"].keys() == b["state_dict"].keys()
    assert all(torch.equal(a["state_dict"][k], b["state_dict"][k]) for k in a["state_dict"])
    rows = read_jsonl(tmp_path / "split" / "metrics.jsonl")
    assert [r["epoch"] for r in rows] == [1, 2]
    assert all({"val_PA", "val_acc", "train_pert_acc"} <= set(r) for r in rows)
    assert untimed(rows) == untimed(read_jsonl(tmp_path / "whole" / "metrics.jsonl"))
    record = base_training(load_checkpoint(tmp_path / "whole" / "best.pt"))
    assert record["fault_aware"] is True and record["clip"] == 0.2 and record["fault"]["ber"] == 0.05
    weights = [v for k, v in a["state_dict"].items() if k.endswith(".weight") and v.dim() > 1]
    assert max(w.abs().max().item() for w in weights) <= torch.tensor(0.2).item()

    capsys.readouterr()                                         # -rt with other faults: a different run
    assert run_cli(*fault_aware_cmd(cifar_root, ber=0.02), "-E", 3, "--run-dir", tmp_path / "split",
                   "-rt") == EXIT_USAGE
    assert "-ber (run: 0.05, command: 0.02)" in capsys.readouterr().err

    base = tmp_path / "whole" / "best.pt"                       # the record reaches the export and results.json
    assert run_cli("vgg11", "export", "cifar10", "-cp", base, "--out", tmp_path / "m.int8.pt") == 0
    assert base_training(load_checkpoint(tmp_path / "m.int8.pt")) == record
    assert run_cli("vgg11", "transform_eval", "cifar10", "-cp", tmp_path / "m.int8.pt", "--testing-mode", "clean",
                   "--run-dir", tmp_path / "ev", "--data-root", cifar_root, *TINY) == 0
    assert read_results(tmp_path / "ev").settings["base_training"] == json.loads(json.dumps(record))


# --- direction: fault-aware training raises PA on a tiny task -----------------------------------

DIM, CLASSES, HIDDEN = 16, 4, 64
FAULT = FaultConfig("flip", 0.1)       # flips: a flipped top bit moves a weight by 128·Δ
CLIP = 0.5
EVAL_SEEDS = range(50000, 50010)


def blobs(n: int, seed: int):
    """Four overlapping Gaussian classes in 16-D (about 95% clean accuracy is reachable)."""
    centers = torch.randn(CLASSES, DIM, generator=torch.Generator().manual_seed(1000))
    y = torch.arange(n) % CLASSES
    return centers[y] + 1.2 * torch.randn(n, DIM, generator=torch.Generator().manual_seed(seed)), y


def train_and_measure(init_seed: int, fault_aware: bool, clip, steps: int = 300, batch: int = 64):
    """(CA, PA mean over EVAL_SEEDS) on held-out points of an 8-bit MLP trained by `qat_step`."""
    x, y = blobs(512, 1)
    torch.manual_seed(init_seed)
    model = quantize_(nn.Sequential(nn.Linear(DIM, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, CLASSES)))
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    plan = SeedPlan(FaultPrefetcher(FAULT, 0), (0, 30000), per_step=1)      # as the train mode draws them
    plan.start_epoch(init_seed, 0, 0, steps)
    faults = StepFaults(FAULT, lambda: int(plan.next()[0])) if fault_aware else None
    step = qat_step(model, opt, False, False, faults=faults, clip=clip)
    order = torch.Generator().manual_seed(init_seed)
    for _ in range(steps):
        idx = torch.randint(0, len(y), (batch,), generator=order)
        step(x[idx], y[idx])
    res = evaluate_seeds(model.eval(), None, [blobs(1000, 2)], torch.device("cpu"), FAULT, EVAL_SEEDS,
                         prefetch_workers=0)
    return res["CA"], res["PA_mean"]


def paired_gain(a: np.ndarray, b: np.ndarray):
    d = a - b
    return d.mean(), d.std(ddof=1) / np.sqrt(len(d))


@pytest.mark.slow
def test_fault_aware_training_raises_perturbed_accuracy():
    """Measured (8 init seeds, 2-core CPU under load, ~9 s), PA in %, mean ± SE: plain 69.8 ± 2.0, clipping
    alone 89.5 ± 0.6, fault-aware + clipping 93.5 ± 0.1 (CA 95.2 / 95.4 / 94.6); paired gains +23.7 ± 2.1
    and +4.0 ± 0.7 points. Fault-aware training without clipping fell to 55.1 ± 3.0 here (not asserted):
    the clipping is part of the method (Stutz et al. 2021 combine the two, and find clipping alone already
    effective, as here)."""
    seeds = range(8)
    runs = {name: np.array([train_and_measure(s, fa, clip) for s in seeds])
            for name, fa, clip in (("plain", False, None), ("clip", False, CLIP), ("randbet", True, CLIP))}
    for name, (gain, se) in {"vs plain QAT": paired_gain(runs["randbet"][:, 1], runs["plain"][:, 1]),
                             "vs clipping alone": paired_gain(runs["randbet"][:, 1], runs["clip"][:, 1])}.items():
        print(f"fault-aware + clip PA gain {name}: {gain:+.2f} ± {se:.2f} points")
        assert gain > 2 * se and gain > 0.5, (name, gain, se)
    assert runs["randbet"][:, 0].mean() > runs["plain"][:, 0].mean() - 3       # clean accuracy kept (CA)

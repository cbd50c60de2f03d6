"""What a researcher sees on the console: a compact settings line per mode, one epoch numbering, one
table header for a BER sweep, a line per evaluated seed in logs, and result files named for what they hold."""
from __future__ import annotations

import pytest

import csv

import zs_main

TINY = ["--train-limit", "40", "--test-limit", "20", "--val-size", "20", "-BS", "20", "-TBS", "20",
        "--no-download", "--device", "cpu"]


def run(*argv) -> int:
    return zs_main.main([str(a) for a in argv])


@pytest.mark.slow
def test_console_output_of_a_tiny_pipeline(cifar_root, tmp_path, capsys):
    data = ["--data-root", cifar_root, *TINY]
    assert run("vgg11", "train", "cifar10", "-E", 2, "--run-dir", tmp_path / "base", *data) == 0
    out = capsys.readouterr().out
    head = out.splitlines()[0]
    assert head.startswith("NeuralFuse") and "train 40, val 20, test 20" in head and len(head) < 300
    assert "-LM" not in head and "eval seeds" not in head and "G_PATH" not in head   # not used by train
    epoch_lines = [line for line in out.splitlines() if line.startswith("epoch ")]
    assert [line.split()[1] for line in epoch_lines] == ["1/2", "2/2"] and "epoch=" not in out

    base = tmp_path / "base" / "best.pt"
    assert run("vgg11", "transform_eopm_gen", "cifar10", "-cp", base, "-E", 1, "-N", 1, "-G", "ConvS",
               "--eval-seeds", "50000,50001", "--run-dir", tmp_path / "gen", *data) == 0
    head = capsys.readouterr().out.splitlines()[0]
    assert "-G ConvS -N 1 -LM 5" in head and "eval seeds 50000,50001" in head

    assert run("vgg11", "transform_eval", "cifar10", "-cp", base, "--testing-mode", "generator_base",
               "--G-path", tmp_path / "gen" / "best.pt", "--eval-seeds", "50000:50002",
               "--eval-bers", "0.01,0.002", "--run-dir", tmp_path / "eval", *data) == 0
    out = capsys.readouterr().out
    assert "-E " not in out.splitlines()[0] and "BER 0.01,0.002" in out.splitlines()[0]
    assert out.count("CA(NF)") == 1                                    # one header for the whole sweep
    assert len([line for line in out.splitlines() if line.startswith("evaluation ")]) == 4  # 2 BERs x 2 seeds
    with open(tmp_path / "eval" / "per_seed.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["split"], r["ber"], r["seed"]) for r in rows][:2] == [("test", "0.01", "50000"), ("test", "0.01", "50001")]
    with open(tmp_path / "eval" / "summary.csv", newline="") as f:
        assert [r["ber"] for r in csv.DictReader(f)] == ["0.01", "0.002"]

"""DDP semantics on CPU (gloo), with real `torchrun` processes: 2 processes at batch B/2 take the same
`train` step as 1 process at batch B; a 2-process EOPM run finishes, its generator loads in a
single-process `transform_eval`, and its 2-rank evaluation equals the 1-process table."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import zs_main
from common.ckpt import load_checkpoint
from datasets import make_batches
from common.dist import DistInfo, shard
from common.runs import read_jsonl
from config import DataConfig
from train.loop import reseed_epoch

ROOT = Path(__file__).resolve().parent.parent
# channels-last CPU kernels round differently at batch 20 and 10 (~4e-5 after one step): off, to test 1e-5
DATA = ["--test-limit", "20", "-TBS", "10", "--no-download", "--device", "cpu", "--no-augment",
        "--channels-last", "off"]


def torchrun(nproc: int, *args) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc),
           str(ROOT / "zs_main.py"), *map(str, args)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


@pytest.mark.parametrize("on_device", [False, True])
@pytest.mark.parametrize("epoch", [0, 1])
def test_ranks_share_out_one_process_batches(cifar_root, epoch, on_device):
    """Global batch k of 2 ranks at batch 4 = batch k of one process at batch 8 (same images), for the
    DataLoader and for the batches held on the device (datasets/device.py, here on the CPU)."""
    cfg = DataConfig("cifar10", root=str(cifar_root), download=False, train_limit=24, augment=False)
    cpu = torch.device("cpu")

    def batches(batch_size, info):
        loader = make_batches(DataConfig(**{**cfg.__dict__, "batch_size": batch_size}), "train", seed=7,
                              device=cpu, dist_info=info, on_device=on_device)
        reseed_epoch(loader, 7, epoch)
        return [x for x, _ in loader]

    one = batches(8, DistInfo())
    ranks = [batches(4, DistInfo(rank=r, world_size=2)) for r in range(2)]
    assert len(one) == len(ranks[0]) == len(ranks[1]) == 3
    for k, whole in enumerate(one):
        both = torch.cat([ranks[0][k], ranks[1][k]])
        key = lambda t: sorted(t.flatten(1).sum(1).tolist())               # noqa: E731 - images as a multiset
        assert key(both) == pytest.approx(key(whole))
    assert not torch.equal(one[0], batches(8, DistInfo())[1])           # batches do differ


def test_shard_deals_round_robin():
    items = list(range(7))
    parts = [shard(items, DistInfo(rank=r, world_size=3)) for r in range(3)]
    assert parts == [[0, 3, 6], [1, 4], [2, 5]]
    assert shard(items, DistInfo()) == items


@pytest.fixture(scope="module")
def runs(cifar_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp")
    data = ["--data-root", cifar_root, "--train-limit", "20", *DATA]
    common = ["vgg11", "train", "cifar10", "-E", 1, "-LR", 0.05, "--seed", 3, *data]
    assert zs_main.main([str(a) for a in [*common, "-BS", 20, "--run-dir", out / "one"]]) == 0
    torchrun(2, *common, "-BS", 10, "--run-dir", out / "two")
    eopm = torchrun(2, "vgg11", "transform_eopm_gen", "cifar10", "-cp", out / "one" / "best.pt", "-G", "UNetS",
                    "-E", 1, "-N", 2, "--n-global", "--sync-bn", "-BS", 10, "--eval-seeds", "1,2,3",
                    "--eval-bers", "0.01,0.005", "--run-dir", out / "gen", *data)
    return out, eopm, data


@pytest.mark.slow
def test_train_two_processes_equal_one(runs):
    out = runs[0]
    one = load_checkpoint(out / "one" / "last.pt", kind="base")["state_dict"]
    two = load_checkpoint(out / "two" / "last.pt", kind="base")["state_dict"]
    assert one.keys() == two.keys()
    for k in one:
        assert torch.allclose(one[k].float(), two[k].float(), rtol=1e-4, atol=1e-5), k
    moved = [k for k in one if k.endswith("running_mean") and one[k].abs().max() > 1e-3]
    assert moved, "the step must have updated BatchNorm statistics"
    assert len(read_jsonl(out / "two" / "metrics.jsonl")) == 1          # rank 0 alone writes


@pytest.mark.slow
def test_two_process_eopm_and_two_rank_evaluation(runs):
    out, eopm, data = runs
    assert "2 process(es) x 1 perturbed models per step" in eopm.stdout
    assert eopm.stdout.count("vgg11 test ber=0.01 ") == 1                # rank 0 alone prints the table
    assert len(read_jsonl(out / "gen" / "metrics.jsonl")) == 1
    two = json.loads((out / "gen" / "results.json").read_text())
    assert two["settings"]["world_size"] == 2
    assert zs_main.main([str(a) for a in [
        "vgg11", "transform_eval", "cifar10", "-cp", out / "one" / "best.pt", "--testing-mode", "generator_base",
        "--G-path", out / "gen" / "best.pt", "--eval-seeds", "1,2,3", "--eval-bers", "0.01,0.005",
        "--run-dir", out / "eval1", *data]]) == 0
    one = json.loads((out / "eval1" / "results.json").read_text())
    assert [r["ber"] for r in one["sweep"]] == [r["ber"] for r in two["sweep"]] == [0.01, 0.005]
    for a, b in zip(one["sweep"], two["sweep"]):
        assert a["per_seed"] == b["per_seed"] and [r["seed"] for r in a["per_seed"]] == [1, 2, 3]
        for k in ("CA", "PA_mean", "PA_std", "CA_NF", "PA_NF_mean", "PA_NF_std", "RP"):
            assert a[k] == b[k], k
    assert (out / "eval1" / "per_seed.csv").read_text() == (out / "gen" / "per_seed.csv").read_text()

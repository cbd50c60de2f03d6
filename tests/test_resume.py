"""Exact resume: a run interrupted after epoch 1 and continued with -rt ends bit-for-bit where the
uninterrupted run ends (train and transform_eopm_gen, CPU, tiny data), and its metrics log has one
row per epoch. Every random source is derived from (seed, epoch[, step]) or saved in the checkpoint."""
from __future__ import annotations

import pytest
import torch

import zs_main
from common.ckpt import load_checkpoint
from common.runs import read_jsonl

TINY = ["--train-limit", "20", "--test-limit", "10", "-BS", "10", "-TBS", "10", "--no-download",
        "--device", "cpu"]


def run_cli(*args):
    return zs_main.main([str(a) for a in args])


def same_state(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def base_ckpt(cifar_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("base")
    assert run_cli("vgg11", "train", "cifar10", "-E", 1, "-LR", 0.01, "--run-dir", out,
                   "--data-root", cifar_root, *TINY) == 0
    return out / "best.pt"


@pytest.mark.slow
@pytest.mark.parametrize("workers", [0, 2])
def test_train_resume_is_exact(cifar_root, tmp_path, workers):
    cmd = ["vgg11", "train", "cifar10", "-LR", "0.01", "--seed", "3", "--workers", workers,
           "--data-root", cifar_root, *TINY]
    assert run_cli(*cmd, "-E", 2, "--run-dir", tmp_path / "whole") == 0
    assert run_cli(*cmd, "-E", 1, "--run-dir", tmp_path / "split") == 0
    assert run_cli(*cmd, "-E", 2, "--run-dir", tmp_path / "split", "-rt") == 0
    a, b = (load_checkpoint(tmp_path / r / "last.pt") for r in ("whole", "split"))
    assert same_state(a["state_dict"], b["state_dict"])
    assert [r["epoch"] for r in read_jsonl(tmp_path / "split" / "metrics.jsonl")] == [1, 2]


@pytest.mark.slow
def test_eopm_resume_is_exact(cifar_root, base_ckpt, tmp_path):
    cmd = ["vgg11", "transform_eopm_gen", "cifar10", "-cp", base_ckpt, "-G", "ConvS", "-N", 2,
           "--eval-seeds", "1", "--data-root", cifar_root, *TINY]
    assert run_cli(*cmd, "-E", 2, "--run-dir", tmp_path / "whole") == 0
    assert run_cli(*cmd, "-E", 1, "--run-dir", tmp_path / "split") == 0
    assert run_cli(*cmd, "-E", 2, "--run-dir", tmp_path / "split", "-rt") == 0
    a, b = (load_checkpoint(tmp_path / r / "last.pt") for r in ("whole", "split"))
    assert same_state(a["state_dict"], b["state_dict"])
    assert a["scheduler"] == b["scheduler"]


def test_resume_may_switch_tensorboard_but_not_augmentation():
    from train.resume import compare_settings
    saved = {"run": {"arch": "vgg11", "tensorboard": False}, "data": {"augment": True}, "train": {"lr": 0.01}}
    now = {"run": {"arch": "vgg11", "tensorboard": True}, "data": {"augment": False}, "train": {"lr": 0.01}}
    refused, changed = compare_settings(saved, now, "base")
    assert refused == ["--augment (run: on, command: off)"]
    assert changed == ["--tensorboard off -> on"]


@pytest.mark.parametrize("same_file", [True, False])
def test_a_moved_base_model_is_the_same_one_by_its_checksum(tmp_path, same_file):
    from common.ckpt import save_checkpoint, stored_checksum
    from train.resume import compare_settings
    first, moved = tmp_path / "box1" / "base.pt", tmp_path / "box2" / "base.pt"
    for path, value in ((first, 1.0), (moved, 1.0 if same_file else 2.0)):
        path.parent.mkdir()
        save_checkpoint({"w": torch.full((3,), value)}, path)

    def config(path):
        return {"run": {"arch": "vgg11", "checkpoint": str(path), "checkpoint_sha256": stored_checksum(path)},
                "eopm": {}, "data": {}, "fault": {}}

    assert stored_checksum(first) is not None and stored_checksum(tmp_path / "none.pt") is None
    refused, changed = compare_settings(config(first), config(moved), "generator")
    if same_file:
        assert refused == [] and changed == [f"-cp {first} -> {moved}"]
    else:
        assert refused == [f"-cp (run: {first}, command: {moved})"]
    old = config(first)
    del old["run"]["checkpoint_sha256"]                                   # a run from before checksums were recorded
    assert compare_settings(old, config(moved), "generator")[0] == [f"-cp (run: {first}, command: {moved})"]

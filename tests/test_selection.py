"""Model selection never touches the test split; the validation split; best.pt without a second copy;
start-up that converts only the subset's images; the Ctrl-C message."""
from __future__ import annotations

import os
import shutil
import warnings
from pathlib import Path

import pytest

import zs_main
from common.ckpt import load_checkpoint
from common.runs import read_jsonl
from config import DataConfig
from datasets.splits import SplitError, part_indices
from train.loop import FRESH_START, TrainingTask, fit

TINY = ["--train-limit", "40", "--test-limit", "20", "--val-size", "20", "-BS", "20", "-TBS", "20",
        "--no-download", "--device", "cpu"]


def test_val_is_balanced_seeded_and_disjoint_from_train():
    y = [i % 10 for i in range(300)]
    val = part_indices(y, "val", None, None)                      # default: 10% of the split
    assert len(val) == 30 and sorted({y[i] for i in val}) == list(range(10))
    assert all(sum(y[i] == c for i in val) == 3 for c in range(10))
    assert val == part_indices(y, "val", None, None)
    train = part_indices(y, "train", 50, None)
    assert len(train) == 50 and not set(train) & set(val)
    assert set(part_indices(y, "train", None, 20)) == set(range(300)) - set(part_indices(y, "val", None, 20))
    assert part_indices(y, "val", None, 0) == [] and part_indices(y, "train", None, 0) is None
    assert part_indices(y, "test", 30, 20) == part_indices(y, "test", 30, 0)  # test ignores --val-size
    with pytest.raises(SplitError, match="--val-size 300"):
        part_indices(y, "val", None, 300)


def _fake_fit(run_dir: Path, scores):
    run_dir.mkdir(parents=True, exist_ok=True)
    task = TrainingTask(one_epoch=lambda e: {},
                        validate=lambda e: {} if scores[e] is None else {"val_acc": scores[e]}, best_key="val_acc",
                        make_checkpoint=lambda e, m, b: {"kind": "base", "state_dict": {}, "epoch": e})
    return fit(task, run_dir, len(scores), *FRESH_START, log=lambda s: None)


def test_best_is_a_link_to_the_chosen_epoch_not_a_second_copy(tmp_path):
    _fake_fit(tmp_path, [50.0, 60.0])
    assert os.path.samefile(tmp_path / "best.pt", tmp_path / "last.pt")
    _fake_fit(tmp_path / "b", [50.0, 60.0, 40.0])
    assert load_checkpoint(tmp_path / "b" / "best.pt")["epoch"] == 2
    assert load_checkpoint(tmp_path / "b" / "last.pt")["epoch"] == 3


def test_no_validation_keeps_the_last_epoch(tmp_path):
    _fake_fit(tmp_path, [None, None, None])
    assert load_checkpoint(tmp_path / "best.pt")["epoch"] == 3
    assert [r["epoch"] for r in read_jsonl(tmp_path / "metrics.jsonl")] == [1, 2, 3]


@pytest.fixture
def unreadable_test_split(cifar_root, tmp_path):
    """A copy of the CIFAR fixture whose test_batch cannot be read: any read of the test split fails."""
    root = tmp_path / "data"
    shutil.copytree(cifar_root, root)
    (root / "cifar-10-batches-py" / "test_batch").write_bytes(b"not a pickle")
    return root


@pytest.mark.slow
def test_selection_never_reads_the_test_split(unreadable_test_split, tmp_path, capsys):
    data = ["--data-root", unreadable_test_split, *TINY]
    base = tmp_path / "base"
    code = zs_main.main([str(a) for a in ["vgg11", "train", "cifar10", "-E", 2, "-LR", 0.01, "--run-dir", base,
                                          *data]])
    assert code == 2 and "test_batch" in capsys.readouterr().err      # only the final evaluation failed
    assert [r["epoch"] for r in read_jsonl(base / "metrics.jsonl")] == [1, 2]
    assert (base / "best.pt").is_file()
    gen = tmp_path / "gen"
    code = zs_main.main([str(a) for a in ["vgg11", "transform_eopm_gen", "cifar10", "-cp", base / "best.pt",
                                          "-E", 2, "-N", 1, "-G", "ConvS", "--run-dir", gen, *data]])
    assert code == 2 and "test_batch" in capsys.readouterr().err
    rows = read_jsonl(gen / "metrics.jsonl")
    assert [r["epoch"] for r in rows] == [1, 2] and all("val_PA_NF" in r for r in rows)
    best = max(rows, key=lambda r: r["val_PA_NF"])                # max() keeps the first of equals
    assert load_checkpoint(gen / "best.pt", kind="generator")["epoch"] == best["epoch"]


def test_a_small_limit_converts_only_its_images(cifar_root, monkeypatch):
    from datasets import cache_batches, cifar, make_loader
    import torch
    calls = []
    image = cifar.CifarPickles.image
    monkeypatch.setattr(cifar.CifarPickles, "image", lambda self, i: calls.append(i) or image(self, i))
    cfg = DataConfig("cifar10", root=str(cifar_root), download=False, test_limit=10, test_batch_size=5)
    batches = cache_batches(make_loader(cfg, "test", seed=0, device=torch.device("cpu")))
    assert sum(len(y) for _, y in batches) == 10 and len(calls) == 10     # of 100 test images


def test_md5_warning_once_per_file_per_process(tmp_path):
    from conftest import write_cifar10
    from datasets import load_split
    write_cifar10(tmp_path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for train in (False, True, False):
            load_split("cifar10", tmp_path, train=train)
    text = " ".join(str(w.message) for w in caught if "md5" in str(w.message))
    assert text.count("batches.meta") == 1 and text.count("test_batch") == 1
    assert text.count("data_batch_1") == 1


@pytest.mark.slow
@pytest.mark.parametrize("fail_at, expected", [(1, "before the first epoch finished"), (2, "epochs 1-1 are saved")])
def test_ctrl_c_says_what_is_saved(cifar_root, tmp_path, monkeypatch, capsys, fail_at, expected):
    import train.qat
    real, calls = train.qat.train_one_epoch, []

    def interrupted(*a, **k):
        calls.append(1)
        if len(calls) == fail_at:
            raise KeyboardInterrupt
        return real(*a, **k)
    monkeypatch.setattr(train.qat, "train_one_epoch", interrupted)
    argv = [str(a) for a in ["vgg11", "train", "cifar10", "-E", 2, "--run-dir", tmp_path / "r",
                             "--data-root", cifar_root, *TINY]]
    assert zs_main.main(argv) == 130
    err = capsys.readouterr().err
    assert expected in err and ("plus -rt" in err) == (fail_at == 2) and "finished epochs are saved" not in err
    assert ("again with -F" in err) == (fail_at == 1)          # args.json is there: the guard wants -F
    monkeypatch.setattr(train.qat, "train_one_epoch", real)
    assert zs_main.main(argv + (["-rt"] if fail_at == 2 else ["-F"])) == 0   # the advice works


def test_fault_seed_ranges_are_disjoint():
    import config
    from eval.neuralfuse import seeds_reused
    lo, hi = config.TRAIN_FAULT_SEEDS
    monitor, evaluation = set(config.MONITOR_FAULT_SEEDS), set(config.EVAL_FAULT_SEEDS)
    assert not monitor & evaluation
    assert not any(lo <= s <= hi for s in monitor | evaluation)
    assert seeds_reused(config.EVAL_FAULT_SEEDS, config.TRAIN_FAULT_SEEDS, config.MONITOR_FAULT_SEEDS) == []
    assert seeds_reused([5, 40001, 50000], (0, 30000), (40001,)) == [5, 40001]


def test_evaluation_prints_a_line_per_seed_in_logs(capsys):
    from eval.neuralfuse import seed_progress
    tick, close = seed_progress(4)
    tick("test ber=0.01", {"seed": 50000, "PA": 40.0, "PA_NF": 45.5})
    close()
    assert "evaluation 1/4: test ber=0.01 seed 50000: PA 40.00, PA(NF) 45.50" in capsys.readouterr().out

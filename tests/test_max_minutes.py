"""--max-minutes: `fit` starts no epoch that would end past the budget (the longest epoch so far as the
estimate), the run then finishes as usual, and -rt continues from the last saved epoch."""
from __future__ import annotations

import pytest

import zs_main
from common.runs import read_jsonl
from train.loop import FRESH_START, TrainingTask, fit

TINY = ["--train-limit", "20", "--test-limit", "10", "-BS", "10", "-TBS", "10", "--no-download",
        "--device", "cpu"]


class FakeClock:
    """Each epoch takes `epoch_s` seconds (advanced by the task); reading the clock costs nothing."""
    def __init__(self, epoch_s: float):
        self.now, self.epoch_s = 0.0, epoch_s

    def __call__(self) -> float:
        return self.now


def _task(clock: FakeClock, trained: list) -> TrainingTask:
    def one_epoch(epoch):
        trained.append(epoch)
        clock.now += clock.epoch_s
        return {"loss": 1.0}
    return TrainingTask(one_epoch, lambda e: {}, lambda e, m, b: {"kind": "base", "epoch": e}, best_key="val_acc")


@pytest.mark.parametrize("budget_min, expected", [(None, 10), (10.0, 10), (3.0, 3), (2.9, 2), (0.5, 1)])
def test_fit_stops_before_an_epoch_that_would_pass_the_budget(tmp_path, budget_min, expected):
    clock, trained, lines = FakeClock(60.0), [], []          # one minute per epoch
    fit(_task(clock, trained), tmp_path, 10, *FRESH_START, log=lines.append, max_minutes=budget_min, clock=clock)
    assert trained == list(range(expected))
    assert [r["epoch"] for r in read_jsonl(tmp_path / "metrics.jsonl")] == list(range(1, expected + 1))
    stops = [line for line in lines if "--max-minutes" in line]
    assert len(stops) == (expected < 10)
    if stops:
        assert f"-rt continues from epoch {expected + 1}" in stops[0]


@pytest.mark.slow
def test_tiny_budget_trains_one_epoch_then_resume_finishes(cifar_root, tmp_path, capsys):
    cmd = ["vgg11", "train", "cifar10", "-E", 3, "-LR", 0.01, "--run-dir", tmp_path, "--data-root", cifar_root,
           *TINY]
    assert zs_main.main([str(a) for a in cmd + ["--max-minutes", "0.0001"]]) == 0
    assert "--max-minutes 0.0001: stopping after epoch 1/3" in capsys.readouterr().out
    assert [r["epoch"] for r in read_jsonl(tmp_path / "metrics.jsonl")] == [1]
    assert (tmp_path / "best.pt").is_file()                   # the end of the run ran as usual
    assert zs_main.main([str(a) for a in cmd + ["-rt"]]) == 0
    assert [r["epoch"] for r in read_jsonl(tmp_path / "metrics.jsonl")] == [1, 2, 3]

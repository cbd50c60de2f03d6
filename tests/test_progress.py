"""Progress bars in a log file (common/progress.py): whole lines every 5%, never a carriage return;
a live tqdm bar on a terminal; nothing from ranks other than 0."""
from __future__ import annotations

import io
import re
import sys

import pytest
import torch
from tqdm import tqdm

from common.dist import DistInfo
from common.progress import LOG_LINES, progress
from train.loop import train_one_epoch


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def lines_of(log: io.StringIO) -> list:
    text = log.getvalue()
    assert "\r" not in text and text.endswith("\n")
    return text.splitlines()


def test_a_log_gets_a_line_at_the_start_every_5_percent_and_at_the_end():
    log = io.StringIO()
    for _ in progress(range(100), "epoch 1/3", file=log):
        pass
    lines = lines_of(log)
    assert len(lines) == LOG_LINES + 1, lines
    assert [int(re.search(r"(\d+)% ", ln).group(1)) for ln in lines] == list(range(0, 101, 5))
    assert lines[-1].startswith("epoch 1/3: 100% 100/100 [")
    assert all("it/s" in ln and "<" in ln for ln in lines[1:])      # rate and time left


@pytest.mark.parametrize("total", [7, 20, 391, 1000])
def test_lines_per_bar_do_not_depend_on_its_length_beyond_20_steps(total):
    log = io.StringIO()
    bar = progress(None, "evaluation", file=log, total=total, unit="seed")
    for _ in range(total):
        bar.update(1)
    bar.close()
    lines = lines_of(log)
    assert len(lines) == min(total, LOG_LINES) + 1
    assert lines[-1].startswith(f"evaluation: 100% {total}/{total} [") and "seed/s" in lines[-1]


def test_a_bar_left_early_ends_with_the_count_reached_and_its_postfix():
    log = io.StringIO()
    bar = progress(range(100), "epoch 2/3", file=log)
    for i in bar:
        bar.set_postfix({"loss": "1.23"}, refresh=False)
        if i == 37:
            break
    lines = lines_of(log)
    assert lines[-1].startswith("epoch 2/3:  37% 37/100 [") and lines[-1].endswith(", loss=1.23]")
    assert lines[-2].startswith("epoch 2/3:  35% 35/100 [")


def test_a_bar_of_unknown_length_prints_its_start_and_its_count_at_the_end():
    log = io.StringIO()
    for _ in progress(iter(range(50)), "decode", file=log):
        pass
    assert [ln.split(" [")[0] for ln in lines_of(log)] == ["decode: 0", "decode: 50"]


def test_silent_in_a_log_for_other_ranks_and_for_inner_loops(monkeypatch):
    log = io.StringIO()
    monkeypatch.setattr(sys, "stderr", log)        # the default file, read when the bar is made
    monkeypatch.setenv("RANK", "1")                # a caller without DistInfo under torchrun
    list(progress(range(100), "eval"))
    monkeypatch.setenv("RANK", "0")
    list(progress(range(100), "epoch", is_main=False))
    list(progress(range(100), "eval", in_logs=False))
    assert log.getvalue() == ""
    list(progress(range(100), "eval"))
    assert len(lines_of(log)) == LOG_LINES + 1


def test_a_terminal_gets_a_live_tqdm_bar_and_other_ranks_none():
    term = Terminal()
    bar = progress(range(10), "epoch 1/1", file=term, is_main=True)
    assert isinstance(bar, tqdm) and not bar.disable
    list(bar)
    assert term.getvalue().startswith("\repoch 1/1:   0%|")             # drawn in place
    assert progress(range(10), "epoch 1/1", file=Terminal(), is_main=False).disable


def test_the_training_loop_logs_lines_with_its_metrics(monkeypatch):
    log = io.StringIO()
    monkeypatch.setattr(sys, "stderr", log)
    batches = [(torch.zeros(2, 3), torch.zeros(2, dtype=torch.long))] * 40
    out = train_one_epoch(lambda x, y: {"loss": 0.5}, batches, torch.device("cpu"), "epoch 1/1", DistInfo())
    lines = lines_of(log)
    assert out["train_loss"] == pytest.approx(0.5)
    assert len(lines) == LOG_LINES + 1 and lines[-1].startswith("epoch 1/1: 100% 40/40 [")
    assert lines[-1].endswith(", loss=0.5]")

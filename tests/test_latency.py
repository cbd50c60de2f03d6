"""Latency measurement (eval/latency.py, docs/DESIGN.md §14; paper Table 9): warm-up passes are not timed, the
median of the timed passes is reported, rows cover the base model and base + each generator. Counted, not timed."""
import json
import math
from types import SimpleNamespace

import pytest
import torch
import torch.nn as nn

from config import LatencyConfig
from eval.latency import latency_rows, latency_samples, latency_table, measure_latency, run
from generators import get_generator


class Counting(nn.Module):
    """A tiny model that counts its forward calls and whether it ran without autograd."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.calls = 0
        self.grad_free = True

    def forward(self, x):
        self.calls += 1
        self.grad_free &= torch.is_inference_mode_enabled() and not self.training
        return self.conv(x)


class FakeClock:
    """Returns pre-set durations (seconds) between successive start/stop reads; logs model calls per read."""

    def __init__(self, model, durations):
        self.model, self.durations, self.t, self.reads, self.calls_at = model, list(durations), 0.0, 0, []

    def __call__(self):
        self.calls_at.append(self.model.calls)
        if self.reads % 2:                      # a stop read: advance by the next duration
            self.t += self.durations[self.reads // 2]
        self.reads += 1
        return self.t


def test_warmup_is_not_timed_and_every_pass_is_counted():
    model = Counting().train()
    clock = FakeClock(model, [0.001] * 5)
    samples = latency_samples(model, (3, 8, 8), torch.device("cpu"), warmup=3, repeats=5, clock=clock)
    assert model.calls == 3 + 5 and len(samples) == 5
    assert clock.calls_at[0] == 3               # the first clock read comes after the 3 warm-up passes
    assert clock.calls_at == [3, 4, 4, 5, 5, 6, 6, 7, 7, 8]   # each timed pass is bracketed by two reads
    assert model.grad_free                      # eval mode, inference mode


def test_median_of_the_timed_passes():
    model = Counting()
    durations = [0.005, 0.001, 0.003, 0.100, 0.002]     # seconds; an outlier does not move the median
    ms = measure_latency(model, (3, 8, 8), torch.device("cpu"), warmup=2, repeats=5,
                         clock=FakeClock(model, durations))
    assert ms == pytest.approx(3.0)
    samples = latency_samples(Counting(), (3, 8, 8), torch.device("cpu"), warmup=0, repeats=4,
                              clock=FakeClock(model, durations))
    assert samples == pytest.approx([5.0, 1.0, 3.0, 100.0])


def test_real_clock_gives_positive_finite_ms():
    ms = measure_latency(Counting(), (3, 16, 16), torch.device("cpu"), warmup=1, repeats=3)
    assert ms > 0 and math.isfinite(ms)


@pytest.mark.parametrize("kw", [dict(warmup=-1), dict(repeats=0), dict(repeats=2.5), dict(warmup=True)])
def test_bad_counts_are_refused(kw):
    with pytest.raises(ValueError, match="warmup|repeats"):
        latency_samples(Counting(), (3, 8, 8), torch.device("cpu"), **{"warmup": 1, "repeats": 1, **kw})


def test_table_base_then_each_generator_in_front_of_it():
    base, gen = Counting(), Counting()
    pre = nn.Sequential(gen, nn.Conv2d(4, 3, 1))                           # a stand-in generator, 3 -> 3 ch
    rows = latency_table(base, {"G": pre, "UIP": get_generator("UIP", input_size=8)}, (3, 8, 8),
                         torch.device("cpu"), warmup=2, repeats=3)
    assert [r["generator"] for r in rows] == [None, "G", "UIP"]
    assert base.calls == 3 * (2 + 3) and gen.calls == 2 + 3                # base in every row, G in its own
    for r in rows:
        assert r["ms"] > 0 and math.isfinite(r["ms"])
        assert r["overhead_ms"] == pytest.approx(r["ms"] - rows[0]["ms"])


class TinyBase(Counting):
    def __init__(self, num_classes: int):
        super().__init__()
        self.head = nn.Linear(4, num_classes)

    def forward(self, x):
        return self.head(super().forward(x).mean((2, 3)))


@pytest.fixture
def tiny_models(monkeypatch):
    """The registry's base models take seconds per pass on a loaded CPU: stand in a tiny one, keep the
    generator zoo (UIP) real, and record what the rows asked for."""
    import models
    built = []

    def fake_get_model(name, num_classes, bits=8, input_size=None):
        built.append((name, num_classes, bits, input_size))
        return TinyBase(num_classes)

    monkeypatch.setattr(models, "get_model", fake_get_model)
    return built


def test_rows_for_a_named_arch_and_dataset(tiny_models):
    rows = latency_rows("vgg11", ["UIP"], "gtsrb", torch.device("cpu"), warmup=1, repeats=2)
    assert tiny_models == [("vgg11", 43, 8, 32)]                          # gtsrb: 43 classes, 32 px
    assert [r["generator"] for r in rows] == [None, "UIP"]
    assert all(r["base"] == "vgg11" and r["image_size"] == 32 and r["device"] == "cpu" for r in rows)


def test_run_mode_prints_json_rows(capsys, tiny_models):
    def cfgs(latency, json_rows=False):
        return SimpleNamespace(run=SimpleNamespace(arch="resnet18", device="cpu"),
                               data=SimpleNamespace(dataset="cifar10"),
                               energy=SimpleNamespace(generators=("UIP",), json=json_rows), bits=8, latency=latency)
    assert run(cfgs(LatencyConfig(warmup=1, repeats=2), json_rows=True)) == 0
    rows = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert [r["generator"] for r in rows] == [None, "UIP"] and rows[1]["repeats"] == 2
    assert run(cfgs(LatencyConfig(warmup=0, repeats=1))) == 0
    out = capsys.readouterr().out
    assert "resnet18" in out and "+UIP" in out and "median of 1" in out
    from common.runs import UsageError
    with pytest.raises(UsageError, match="repeats"):
        run(cfgs(LatencyConfig(repeats=0)))


class DriftClock:
    """A machine that slows down steadily: the k-th timed pass takes 1 ms + k * 0.01 ms, whatever runs."""

    def __init__(self):
        self.t, self.reads = 0.0, 0

    def __call__(self):
        if self.reads % 2:
            self.t += 1e-3 + (self.reads // 2) * 1e-5
        self.reads += 1
        return self.t


def test_interleaved_rounds_keep_a_drift_out_of_the_overhead():
    # the generator costs nothing here (identity), so its true overhead is 0; timed one model after the
    # other, the drift alone would make it 100 passes * 0.01 ms = 1 ms slower than the base model
    rows = latency_table(Counting(), {"free": nn.Identity()}, (3, 8, 8), torch.device("cpu"), warmup=1,
                         repeats=100, clock=DriftClock())
    assert abs(rows[1]["overhead_ms"]) <= 0.011                           # one drift step at most
    assert rows[0]["iqr_ms"] == pytest.approx(0.99, abs=0.03)             # 1..2 ms spread over the run


def test_rounds_rotate_which_model_goes_first():
    from eval.latency import interleaved_samples
    a, b = Counting(), Counting()
    reads = []                                  # (a's calls, b's calls) at each clock read

    def clock():
        reads.append((a.calls, b.calls))
        return float(len(reads))

    samples = interleaved_samples({"a": a, "b": b}, (3, 8, 8), torch.device("cpu"), warmup=0, repeats=3,
                                  clock=clock)
    assert [len(v) for v in samples.values()] == [3, 3]
    timed = ["a" if stop[0] > start[0] else "b" for start, stop in zip(reads[0::2], reads[1::2])]
    assert timed == ["a", "b", "b", "a", "a", "b"]                        # rounds (a b), (b a), (a b)

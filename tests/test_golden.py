"""Golden test: the demo's tiny preset prints the table stored in tests/golden/demo_tiny.json.

The table was recorded on one machine type (CPU model, torch version, thread count, stored beside it).
There the comparison is exact to the printed precision (CPU runs are deterministic for a given machine
type and thread count); on any other machine float summation order differs, a few of the 50 test images
may change class, and the numbers must agree within TOLERANCE points. A change that moves the numbers
on purpose re-records the file (`GOLDEN_UPDATE=1 python -m pytest tests/test_golden.py`) and
re-measures the README's demo table with `make demo`.
"""
from __future__ import annotations

import json
import os
import platform
from pathlib import Path

import pytest
import torch

import demo
from common.runs import read_jsonl

GOLDEN = Path(__file__).parent / "golden" / "demo_tiny.json"
KEYS = ("CA", "PA_mean", "PA_std", "CA_NF", "PA_NF_mean", "PA_NF_std", "RP")
TOLERANCE = 10.0    # points: 5 of the preset's 50 test images, for other CPUs / torch versions


def machine() -> dict:
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "torch": torch.__version__, "threads": torch.get_num_threads()}


@pytest.mark.slow
def test_demo_tiny_prints_the_golden_table(cifar_root, tmp_path, capsys):
    argv = ["--data-root", str(cifar_root), "--preset", "tiny", "--out", str(tmp_path), "--no-download",
            "--device", "cpu"]
    assert demo.main(argv) == 0
    res = json.loads((tmp_path / "tiny" / "generator" / "results.json").read_text())
    row = {k: round(res[k], 2) for k in KEYS}
    trace = {stage: [round(r["train_loss"], 6) for r in read_jsonl(tmp_path / "tiny" / stage / "metrics.jsonl")]
             for stage in ("base", "generator")}        # training losses: a fingerprint far finer than the table
    if os.environ.get("GOLDEN_UPDATE"):
        GOLDEN.write_text(json.dumps({"recorded_on": machine(), "row": row, "train_loss": trace}, indent=2) + "\n")
    golden = json.loads(GOLDEN.read_text())
    if golden["recorded_on"] == machine():
        assert (row, trace) == (golden["row"], golden["train_loss"]), (f"the tiny demo's table moved on the machine type it was recorded on "
                                      f"({golden['recorded_on']}); if intended, re-record (see docstring)")
    else:
        far = {k: (row[k], golden["row"][k]) for k in KEYS if abs(row[k] - golden["row"][k]) > TOLERANCE}
        assert not far, f"more than {TOLERANCE} points from the golden table on this machine: {far}"
    out = capsys.readouterr().out
    assert f"{res['RP']:+7.2f}" in out                  # and it is what the demo printed

"""`zs_main.py sweep`: a tiny 2x2 grid runs locally, a second invocation skips every run, the report
lists the four generator runs; one run through submitit's local executor; grid-file mistakes."""
from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import grid as grid_mod
import zs_main

ROOT = Path(grid_mod.__file__).resolve().parent

TINY = ["--train-limit", "10", "--test-limit", "10", "-BS", "10", "-TBS", "10", "--no-download",
        "--device", "cpu", "-E", "1"]


def write_grid(path: Path, cifar_root: Path, out_dir: Path, **over) -> Path:
    spec = {"dataset": "cifar10", "archs": ["vgg11"], "generators": ["ConvS", "UNetS"], "bers": [0.01, 0.005],
            "out": str(out_dir), "flags": ["--data-root", str(cifar_root), *TINY], "train_flags": ["-LR", "0.01"],
            "eopm_flags": ["-N", "1", "--eval-seeds", "1"], **over}
    path.write_text(json.dumps(spec))
    return path


def report_rows(out: Path) -> list:
    return [line for line in (out / "report.md").read_text().splitlines() if line.startswith("| vgg11_")]


def in_process(cmd):
    """grid.run_process without a new Python per run (tests only: saves ~3 s of imports per run)."""
    assert Path(cmd[1]).name == "zs_main.py"
    return zs_main.main(cmd[2:])


@pytest.fixture(scope="module")
def swept(cifar_root, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("grid")
    gfile = write_grid(tmp / "g.json", cifar_root, tmp / "out")
    mp = pytest.MonkeyPatch()
    mp.setattr(grid_mod, "run_process", in_process)
    try:
        assert zs_main.main(["sweep", str(gfile)]) == 0
    finally:
        mp.undo()
    return gfile, tmp / "out"


@pytest.mark.slow
def test_grid_runs_every_run_once_and_reports(swept, capsys):
    gfile, out = swept
    gens = sorted(p.name for p in (out / "gen").iterdir())
    assert gens == ["vgg11_ConvS_ber0.005_lam5_s0", "vgg11_ConvS_ber0.01_lam5_s0",
                    "vgg11_UNetS_ber0.005_lam5_s0", "vgg11_UNetS_ber0.01_lam5_s0"]
    for g in gens:
        res = json.loads((out / "gen" / g / "results.json").read_text())
        assert res["settings"]["ber"] == float(g.split("ber")[1].split("_")[0])
        assert res["settings"]["checkpoint"] == str(out / "base" / "vgg11_cifar10_s0" / "best.pt")
    stamps = {p: p.stat().st_mtime_ns for p in out.glob("*/*/results.json")}
    capsys.readouterr()
    assert zs_main.main(["sweep", str(gfile)]) == 0               # second invocation: nothing to do
    printed = capsys.readouterr().out
    assert "5 runs, 5 done, 0 to run" in printed
    assert {p: p.stat().st_mtime_ns for p in out.glob("*/*/results.json")} == stamps
    assert len(report_rows(out)) == 4
    assert printed.count("| vgg11_") == 4


@pytest.mark.slow
def test_grid_through_submitit_runs_a_real_process(swept, capsys):
    """submitit's debug executor runs the job function here; the job starts zs_main.py as a process."""
    pytest.importorskip("submitit")
    gfile, out = swept
    redo = out / "gen" / "vgg11_UNetS_ber0.01_lam5_s0"
    (redo / "results.json").unlink()                     # last.pt stays: the job resumes it (-rt) and evaluates
    runs = {r.name: r for r in grid_mod.expand(grid_mod.load_grid(str(gfile)))}
    assert grid_mod.status(runs[redo.name]) == "partial" and "-rt" in grid_mod.command(runs[redo.name], 1)
    assert zs_main.main(["sweep", str(gfile), "--launch", "submitit-debug", "--time", "5"]) == 0
    assert (redo / "results.json").is_file()
    assert "5 runs, 4 done, 1 to run" in capsys.readouterr().out
    assert len(report_rows(out)) == 4


def test_slurm_without_submitit_is_a_one_line_error(tmp_path, cifar_root, monkeypatch, capsys):
    gfile = write_grid(tmp_path / "g.json", cifar_root, tmp_path / "out", generators=["ConvS"], bers=[0.01])
    monkeypatch.setitem(__import__("sys").modules, "submitit", None)       # as on a machine without it
    assert zs_main.main(["sweep", str(gfile), "--slurm"]) == 2
    assert "pip install -r requirements-optional.txt" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("over, words", [
    ({"generatorz": ["ConvL"]}, "unknown key(s) 'generatorz'"),
    ({"bers": 0.01}, "'bers' must be a non-empty list, got 0.01"),
    ({"bers": [0.01, 0.01]}, "repeats a value"),
    ({"bers": [1.5]}, "'bers'[0]: 1.5 is not a bit error rate in (0, 1)"),
    ({"bers": ["abc"]}, "'bers'[0]: 'abc'"),
    ({"dataset": 5}, "'dataset': 5"),
    ({"out": 5}, "'out': 5"),
    ({"out": "x\ny"}, "control character"),
    ({"flags": ["-E", "abc"]}, "were refused"),
    ({"base_checkpoints": {"vgg11": "/nonexistent/best.pt"}}, "does not exist"),
])
def test_grid_file_mistakes(tmp_path, cifar_root, capsys, over, words):
    gfile = write_grid(tmp_path / "g.json", cifar_root, tmp_path / "out", **over)
    assert zs_main.main(["sweep", str(gfile), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert words in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_dry_run_over_a_base_run_with_a_torn_log_line(tmp_path, cifar_root, capsys):
    """The case found: a killed append's torn last line made `sweep --dry-run` end in a traceback."""
    gfile = write_grid(tmp_path / "g.json", cifar_root, tmp_path / "out", generators=["ConvS"], bers=[0.01])
    base = tmp_path / "out" / "base" / "vgg11_cifar10_s0"
    base.mkdir(parents=True)
    (base / "last.pt").write_bytes(b"stand-in")
    (base / "metrics.jsonl").write_bytes(b'{"epoch": 1}\n{"epoch": 2, "val\xff\xfe')
    assert zs_main.main(["sweep", str(gfile), "--dry-run"]) == 0
    out = capsys.readouterr().out                      # a stand-in last.pt is nothing to resume: new
    assert re.search(r"^  (new|partial) +vgg11_cifar10_s0:", out, re.M), out


# A stand-in for a run: records the signal it gets (or ignores them all), announces its pid, sleeps.
STAND_IN = """import os, pathlib, signal, sys, time
mark = pathlib.Path(sys.argv[1])
def stop(sig, frame):
    mark.write_text(signal.Signals(sig).name)
    sys.exit(128 + sig)
for s in (signal.SIGINT, signal.SIGTERM):
    signal.signal(s, stop if sys.argv[2] == "obey" else signal.SIG_IGN)
pathlib.Path(sys.argv[1] + ".pid").write_text(str(os.getpid()))
time.sleep(120)
"""
# The sweep, its run command replaced by the stand-in (the seam: grid.command builds every run's process).
SWEEP = """import sys
import grid
grid.KILL_AFTER_S = float(sys.argv[4])
grid.command = lambda run, gpus: [sys.executable, "-c", sys.argv[2], sys.argv[3], sys.argv[5]]
sys.exit(grid.main([sys.argv[1]]))
"""


@pytest.mark.slow
@pytest.mark.parametrize("sig, behaviour, code", [(signal.SIGTERM, "obey", 143), (signal.SIGINT, "obey", 130),
                                                  (signal.SIGTERM, "ignore", 143)])
@pytest.mark.slow
def test_stopping_a_sweep_stops_its_run(tmp_path, cifar_root, sig, behaviour, code):
    """The case found: SIGTERM to `sweep` exited 143 while its run kept training, re-parented to PID 1.
    Now the signal reaches the run, the sweep waits for it (a run that ignores it is killed after
    KILL_AFTER_S, here 1 s) and exits 128 + signal; nothing is left running."""
    (tmp_path / "base.pt").write_bytes(b"stand-in")
    gfile = write_grid(tmp_path / "g.json", cifar_root, tmp_path / "out", generators=["ConvS"], bers=[0.01],
                       base_checkpoints={"vgg11": str(tmp_path / "base.pt")})
    mark = tmp_path / "mark"
    sweep = subprocess.Popen([sys.executable, "-c", SWEEP, str(gfile), STAND_IN, str(mark), "1", behaviour],
                             cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    pid_file = Path(f"{mark}.pid")
    deadline = time.monotonic() + 120
    while not pid_file.is_file() or not pid_file.read_text():
        assert sweep.poll() is None and time.monotonic() < deadline, sweep.communicate()
        time.sleep(0.1)
    run_pid = int(pid_file.read_text())
    sweep.send_signal(sig)
    out, err = sweep.communicate(timeout=60)
    assert sweep.returncode == code, err
    assert not Path(f"/proc/{run_pid}").exists(), "the run is still running"
    if behaviour == "obey":
        assert mark.read_text() == signal.Signals(sig).name
    else:
        assert "did not stop within 1 s" in err and not mark.exists()
    assert f"interrupted by {signal.Signals(sig).name}: run vgg11_ConvS_ber0.01_lam5_s0 was stopped" in err


def test_shipped_grids_expand():
    root = Path(grid_mod.__file__).parent
    table1 = grid_mod.expand(grid_mod.load_grid(str(root / "grids" / "cifar10_table1.json")))
    assert sum(r.stage == "base" for r in table1) == 5 and sum(r.stage == "gen" for r in table1) == 60
    gtsrb = grid_mod.expand(grid_mod.load_grid(str(root / "grids" / "gtsrb.json")))
    assert len(gtsrb) == 65 and all(r.argv[2] == "gtsrb" for r in gtsrb)
    for name in ("lambda_ablation.json", "ber_sweep.json"):    # their base model comes from Table 1's grid
        g = grid_mod.load_grid(str(root / "grids" / name))
        assert set(g.base_checkpoints) == {"resnet18"}
        assert g.base_checkpoints["resnet18"] == str(table1[0].run_dir / "best.pt")

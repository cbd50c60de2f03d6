"""`make paper-row`: Table 12's CIFAR-10 ResNet18 + ConvL row at 1% BER on one CUDA GPU, within a time budget.

Three stages, each a `zs_main.py` command whose output is shown and logged:
1. the base model: QAT with the fast recipe (`train --recipe fast`), then its int8 export (`export`);
2. EOPM: ConvL at 1% BER with the paper's settings (N = 10, λ = 5, Adam 1e-3, β (0.5, 0.999), StepLR,
   batch 256, best.pt by validation PA(NF)) for as many epochs as the budget leaves (`--max-minutes`),
   then the 10-seed evaluation on the test split; on CUDA with `--eopm-step batched` (same gradient);
3. the row beside the paper's, and PA(NF) per epoch.

Everything a later box needs goes to one folder (--out) of at most MAX_FILES files, none over
MAX_FILE_MB: the int8 base model, the EOPM run (last.pt, log, settings) as one tar and its best.pt, the results,
the row, the curves and one archive of the logs. Run again with that folder on another box and it
reuses the base model and resumes the EOPM where it stopped (-rt; at any path: the run knows its
base model by the checksum stored in the file), so several short calls add up to
the paper's epochs (--epochs, 150 by default).

    make paper-row DATA_ROOT=/data OUT=paper_row          # = python3 -m bench.paper_row --data-root ...
    python3 -m bench.paper_row --data-root ./data --dry-run   # the same stages on CPU with tiny limits
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path
from typing import Dict, List, Optional

from common.runs import read_jsonl
from eval.paper import paper_numbers

ROOT = Path(__file__).resolve().parent.parent

MAX_FILES, MAX_FILE_MB = 8, 16          # what one GPU lease carries back
ARCH, DATASET, GEN, BER = "resnet18", "cifar10", "ConvL", 0.01
PAPER_EOPM = ["-G", GEN, "-ber", f"{BER:g}", "-N", "10", "-LM", "5", "-BS", "256"]   # Adam/StepLR: defaults
CUDA_EOPM = ["--eopm-step", "batched"]  # all N seeds' faults in a few ops per layer (train/eopm_fast.py): same
                                        # gradient, less host work; named, not left to auto, so the logs say it
EVAL_RESERVE_MIN = 1.5                  # minutes kept for the final 10-seed evaluation and packing
DRY = {"device": "cpu", "limits": ["--train-limit", "200", "--val-size", "40", "--test-limit", "100"],
       "qat": ["-E", "1", "-BS", "50"], "eopm": ["-N", "2", "-BS", "50", "--eval-seeds", "50000:50002"]}
# files of --out (each must stay under MAX_FILE_MB)
BASE, EOPM_TAR, EOPM_BEST, RESULTS, ROW, CURVES, LOGS = (
    "base.int8.pt", "eopm_run.tar", "eopm_best.pt", "results.json", "row.md", "curves.png", "logs.tar.gz")
EOPM_KEEP = ("last.pt", "metrics.jsonl", "args.json")   # what -rt needs on the next box, besides best.pt
# best.pt travels as its own file: once it is an older epoch than last.pt, both in one tar pass MAX_FILE_MB


class Stage:
    """Runs one command, echoes and logs its output, and stops the whole row loudly when it fails."""

    def __init__(self, logs: Path):
        self.logs = logs
        logs.mkdir(parents=True, exist_ok=True)

    def run(self, name: str, argv: List[str]) -> None:
        cmd = [sys.executable, str(ROOT / "zs_main.py"), *argv]
        log = self.logs / f"{name}.log"
        print(f"\n=== {name}: {' '.join(cmd[1:])}\n    log: {log}", flush=True)
        t = time.time()
        with open(log, "a") as fh:
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT,
                                    env={**os.environ, "PYTHONUNBUFFERED": "1"})
            for line in proc.stdout:
                fh.write(line)
                if "it/s" not in line and "s/it" not in line:
                    print("    " + line.rstrip()[-200:], flush=True)
            rc = proc.wait()
        print(f"--- {name}: exit {rc} in {time.time() - t:.0f} s", flush=True)
        if rc != 0:
            raise SystemExit(f"paper-row FAILED at '{name}' (exit {rc}); see {log}")


def paper_row() -> Dict[str, float]:
    """The paper's numbers for this row (eval/paper.py: CA, PA_mean/std, CA_NF, PA_NF_mean/std, RP)."""
    numbers = paper_numbers(ARCH, DATASET, GEN, BER)
    assert numbers is not None, "eval/paper.py lost Table 12's CIFAR-10 ResNet18 + ConvL row"
    return numbers


def row_text(ours: Dict, epochs: List[Dict], minutes: float, device: str) -> str:
    def cells(r: Dict) -> str:
        return (f"| {r['CA']:.1f} | {r['PA_mean']:.1f} ± {r['PA_std']:.1f} | {r['CA_NF']:.1f} | "
                f"{r['PA_NF_mean']:.1f} ± {r['PA_NF_std']:.1f} | {r['RP']:+.1f} |")
    lines = [f"# Table 12, CIFAR-10 ResNet18 + ConvL at 1% BER ({device}, {minutes:.1f} min this call)", "",
             "| | CA | PA | CA(NF) | PA(NF) | RP |", "|---|---|---|---|---|---|",
             f"| paper (150 EOPM epochs, 8 V100) {cells(paper_row())}",
             f"| ours ({len(epochs)} EOPM epochs) {cells(ours)}", "",
             "PA(NF) per EOPM epoch (validation images, monitor fault seeds):", "",
             "| epoch | val PA(NF) | val CA(NF) | epoch s |", "|---|---|---|---|"]
    lines += [f"| {r['epoch']} | {r.get('val_PA_NF', float('nan')):.2f} | {r.get('val_CA_NF', float('nan')):.2f} | "
              f"{r.get('epoch_time_s', float('nan')):.1f} |" for r in epochs]
    return "\n".join(lines) + "\n"


def pack_eopm(run_dir: Path, out: Path) -> None:
    """The EOPM run's resumable files as one tar (best.pt kept as a link to last.pt where it is one)."""
    tmp = out / f".{EOPM_TAR}.tmp"
    with tarfile.open(tmp, "w") as tar:
        for name in EOPM_KEEP:
            if (run_dir / name).is_file():
                tar.add(run_dir / name, arcname=name)
    os.replace(tmp, out / EOPM_TAR)
    shutil.copyfile(run_dir / "best.pt", out / f".{EOPM_BEST}.tmp")
    os.replace(out / f".{EOPM_BEST}.tmp", out / EOPM_BEST)


def unpack_eopm(out: Path, run_dir: Path) -> bool:
    """Restore a previous call's EOPM run into `run_dir`; False when there is none."""
    if not (out / EOPM_TAR).is_file():
        return False
    if run_dir.exists():
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True)
    with tarfile.open(out / EOPM_TAR) as tar:
        members = [m for m in tar.getmembers() if m.name in EOPM_KEEP and (m.isfile() or m.islnk())]
        try:
            tar.extractall(run_dir, members=members, filter="data")
        except TypeError:                         # Python without extraction filters: names checked above
            tar.extractall(run_dir, members=members)
    if (out / EOPM_BEST).is_file():
        shutil.copyfile(out / EOPM_BEST, run_dir / "best.pt")
    return True


def check_out(out: Path) -> None:
    files = [p for p in out.iterdir() if p.is_file() and not p.name.startswith(".")]
    big = [f"{p.name} ({p.stat().st_size / 2**20:.1f} MiB)" for p in files if p.stat().st_size > MAX_FILE_MB * 2**20]
    if len(files) > MAX_FILES or big:
        raise SystemExit(f"paper-row: {out} holds {len(files)} files (at most {MAX_FILES}); too large: {big or 'none'}")


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-root", required=True, help="folder holding cifar-10-batches-py/")
    ap.add_argument("--out", default="paper_row", help="the folder to carry between boxes (at most "
                    f"{MAX_FILES} files of {MAX_FILE_MB} MiB)")
    ap.add_argument("--work", default=None, help="scratch folder for the runs (default OUT/../paper_row_work)")
    ap.add_argument("--minutes", type=float, default=9.0, help="wall-clock budget of this call, minutes")
    ap.add_argument("--epochs", type=int, default=150, help="EOPM epochs in all, over every call (paper: ~150)")
    ap.add_argument("--device", default="cuda", help="cuda, cuda:N (cpu only with --dry-run)")
    ap.add_argument("--dry-run", action="store_true", help="CPU, tiny limits: checks the stages, not the numbers")
    a = ap.parse_args(argv)
    t0 = time.time()
    out = Path(a.out).resolve()
    work = Path(a.work).resolve() if a.work else out.parent / f"{out.name}_work"
    out.mkdir(parents=True, exist_ok=True)
    device = "cpu" if a.dry_run else a.device
    if not a.dry_run:
        import torch
        if not torch.cuda.is_available():
            raise SystemExit("paper-row: no CUDA GPU here; use --dry-run to check the stages on CPU")
        print(f"paper-row on {torch.cuda.get_device_name(0)}, torch {torch.__version__}", flush=True)
    cfg = DRY if a.dry_run else {"limits": [], "qat": [], "eopm": CUDA_EOPM}
    common = [DATASET, "--data-root", a.data_root, "--no-download", "--device", device, *cfg["limits"]]
    stage = Stage(work / "logs")

    base = out / BASE
    if base.is_file():
        print(f"=== base model: reusing {base}", flush=True)
    else:
        qat_dir = work / "qat"
        resume = ["-rt"] if (qat_dir / "last.pt").is_file() else ["-F"]
        stage.run("qat", [ARCH, "train", *common, "--recipe", "fast", *cfg["qat"], "--run-dir", str(qat_dir), *resume])
        stage.run("export", [ARCH, "export", DATASET, "-cp", str(qat_dir / "best.pt"), "--out", str(base)])

    eopm_dir = work / "eopm"
    resumed = unpack_eopm(out, eopm_dir)
    left = a.minutes - (time.time() - t0) / 60 - EVAL_RESERVE_MIN
    if left <= 0:
        raise SystemExit(f"paper-row: no time left for EOPM in a {a.minutes:g}-minute budget; give more --minutes")
    stage.run("eopm", [ARCH, "transform_eopm_gen", *common, "-cp", str(base), *PAPER_EOPM, *cfg["eopm"],
                       "-E", str(a.epochs), "--max-minutes", f"{max(left, 0.01):.2f}", "--run-dir", str(eopm_dir),
                       *(["-rt"] if resumed else ["-F"])])
    pack_eopm(eopm_dir, out)

    res = json.loads((eopm_dir / "results.json").read_text())
    shutil.copyfile(eopm_dir / "results.json", out / RESULTS)
    if (eopm_dir / "curves.png").is_file():
        shutil.copyfile(eopm_dir / "curves.png", out / CURVES)
    epochs = read_jsonl(eopm_dir / "metrics.jsonl", skip_bad=True)
    text = row_text(res, epochs, (time.time() - t0) / 60, device)
    (out / ROW).write_text(text)
    with tarfile.open(out / LOGS, "w:gz") as tar:
        tar.add(work / "logs", arcname="logs")
    check_out(out)
    print("\n" + text + f"\nfiles to carry: {out} ({len(list(out.iterdir()))} files); run again with "
          f"--out {out} to continue the EOPM (epoch {len(epochs)} of {a.epochs})", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""One-command GPU check: CUDA tests, both benchmarks on CUDA, and a short full-data run.

Runs with the interpreter that starts it (a GPU box's own Python with torch + CUDA; nothing is
installed) and reads CIFAR-10 (python pickles, `cifar-10-batches-py/`) from --data-root. Every step
prints the command it runs, its time and exit code; the first failing step stops the check loudly.
Logs and a summary (summary.md, summary.json) go to one folder. About 6-8 minutes on one H100/H200
(the EOPM benchmark runs ResNet18 only here; its two --compile rows compile for about 25 s each).

    make gpu-check DATA_ROOT=/data/cifar10                  # = python3 -m bench.gpu_check --data-root ...
    python3 -m bench.gpu_check --data-root ./data --dry-run  # the same steps on CPU with tiny limits
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List

from common.runs import read_jsonl

FULL = {"device": "cuda", "arch": "resnet18", "qat": ["-E", "3", "-BS", "256", "-LR", "0.02"],
        "eopm": ["-E", "2", "-N", "10", "-BS", "256"], "limits": [],
        "bench_eopm": ["--device", "cuda", "--archs", "resnet18"],
        "bench_eval": ["--device", "cuda", "--batch-models", "5"]}
DRY = {"device": "cpu", "arch": "vgg11", "qat": ["-E", "1", "-BS", "32", "-LR", "0.02"],
       "eopm": ["-E", "1", "-N", "2", "-BS", "32", "--eval-seeds", "50000:50002"],
       "limits": ["--train-limit", "64", "--test-limit", "40"],
       "bench_eopm": ["--device", "cpu", "--archs", "vgg11", "-N", "2", "--batch", "2", "--reps", "1",
                      "--slow-reps", "1", "--no-compile"],
       "bench_eval": ["--device", "cpu", "--arch", "vgg11", "--test-limit", "40", "--seeds", "2"]}


class Check:
    def __init__(self, out: Path):
        self.out, self.steps = out, []

    def run(self, name: str, cmd: List[str], env: Dict[str, str] = None) -> str:
        log = self.out / f"{len(self.steps) + 1:02d}_{name}.log"
        print(f"\n=== [{len(self.steps) + 1}] {name}: {' '.join(cmd)}\n    log: {log}", flush=True)
        t = time.time()
        with open(log, "w") as fh:
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                    env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})})
            text = []
            for line in proc.stdout:
                fh.write(line)
                text.append(line)
                if not line.startswith("\r") and "it/s" not in line:
                    print("    " + line.rstrip()[-200:], flush=True)
            rc = proc.wait()
        secs = time.time() - t
        self.steps.append({"step": name, "cmd": " ".join(cmd), "rc": rc, "seconds": round(secs, 1), "log": str(log)})
        print(f"--- {name}: exit {rc} in {secs:.1f} s", flush=True)
        if rc != 0:
            self.summary()
            raise SystemExit(f"gpu-check FAILED at step '{name}' (exit {rc}); see {log}")
        return "".join(text)

    def summary(self, extra: Dict = None) -> None:
        data = {"steps": self.steps, **(extra or {})}
        (self.out / "summary.json").write_text(json.dumps(data, indent=2) + "\n")
        lines = ["| step | exit | seconds |", "|---|---|---|"]
        lines += [f"| {s['step']} | {s['rc']} | {s['seconds']} |" for s in self.steps]
        for k, v in (extra or {}).items():
            lines.append(f"\n{k}: {v}")
        (self.out / "summary.md").write_text("\n".join(lines) + "\n")


def epoch_times(run_dir: Path) -> List[Dict[str, float]]:
    """Per epoch: seconds of training alone and of the whole epoch (training + validation)."""
    rows = read_jsonl(run_dir / "metrics.jsonl")
    return [{"train_s": r.get("train_time_s"), "epoch_s": r["epoch_time_s"]} for r in rows]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-root", required=True, help="folder holding cifar-10-batches-py/")
    ap.add_argument("--out", default=None, help="log folder (default runs/gpu_check_<time>)")
    ap.add_argument("--dry-run", action="store_true", help="CPU, tiny limits, no CUDA tests")
    args = ap.parse_args()
    cfg = DRY if args.dry_run else FULL
    out = Path(args.out or f"runs/gpu_check_{time.strftime('%Y%m%d_%H%M%S')}")
    out.mkdir(parents=True, exist_ok=True)
    py = sys.executable
    check = Check(out)
    check.run("environment", [py, "-c", "import torch, torchvision, sys; print(sys.version.split()[0], "
              "torch.__version__, torchvision.__version__, 'cuda', torch.cuda.is_available(), "
              "torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no GPU')"])
    if not args.dry_run:
        check.run("cuda_tests", [py, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "cuda", "tests"])
    check.run("bench_eopm_step", [py, "-m", "bench.eopm_step", *cfg["bench_eopm"]])
    check.run("bench_eval", [py, "-m", "bench.eval", "--data-root", args.data_root, *cfg["bench_eval"]])
    common = ["cifar10", "--data-root", args.data_root, "--no-download", "--device", cfg["device"], "-F",
              *cfg["limits"]]
    base_dir, gen_dir = out / "base", out / "generator"
    check.run("qat", [py, "zs_main.py", cfg["arch"], "train", *common, *cfg["qat"], "--run-dir", str(base_dir)])
    table = check.run("eopm", [py, "zs_main.py", cfg["arch"], "transform_eopm_gen", *common, *cfg["eopm"],
                               "-cp", str(base_dir / "best.pt"), "--run-dir", str(gen_dir)])
    qat_s, eopm_s = epoch_times(base_dir), epoch_times(gen_dir)
    results = json.loads((gen_dir / "results.json").read_text())
    extra = {"qat_epoch_seconds": qat_s, "eopm_epoch_seconds": eopm_s,
             "results": {k: results.get(k) for k in ("CA", "PA_mean", "PA_std", "CA_NF", "PA_NF_mean",
                                                      "PA_NF_std", "RP")}}
    check.summary(extra)
    print("\n=== gpu-check passed ===")
    n_train = 50000 if not args.dry_run else 64
    print(f"QAT seconds per epoch: {qat_s}\nEOPM seconds per epoch: {eopm_s}")
    print(f"QAT training throughput, last epoch: {n_train / qat_s[-1]['train_s']:.0f} images/s")
    print("\n".join(line for line in table.splitlines() if line.strip().startswith(("CA", cfg["arch"]))))
    print(f"logs and summary: {out}")


if __name__ == "__main__":
    main()

"""Run folders (docs/DESIGN.md §9): how every mode starts a run, one JSON line of metrics per epoch,
seeds and devices.

Example:
    run_dir = start_run(cfgs.run, cfgs.to_dict())       # guard (-F / -rt), seed, args.json
    append_jsonl(run_dir / "metrics.jsonl", {"epoch": 1, "val_acc": 41.2})
"""
from __future__ import annotations

import importlib.util
import json
import os
import random
import shutil
import sys
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Protocol

import numpy as np
import torch


def progress(iterable, desc: str, in_logs: bool = True, **kwargs):
    """A tqdm bar: live on a terminal; in a log file (nohup, sbatch) one line a minute at most, or
    nothing when `in_logs` is False (short inner loops such as one evaluation pass)."""
    from tqdm import tqdm
    live = sys.stderr.isatty()
    other_rank = os.environ.get("RANK", "0") != "0"          # under torchrun only rank 0 draws bars
    return tqdm(iterable, desc=desc, leave=False, disable=other_rank or not (live or in_logs),
                mininterval=0.5 if live else 60, maxinterval=60 if live else 600, **kwargs)


class UsageError(Exception):
    """A user mistake: printed as one line by zs_main.py, exit code 2."""


# A folder holding a checkpoint or results is taken (args.json alone: a run that stopped before its
# first epoch or result, safe to start again).
RUN_FILES = ("last.pt", "results.json")
STALE_ON_FORCE = ("metrics.jsonl", "last.pt", "best.pt", "results.json", "per_seed.csv", "summary.csv",
                  "sweep.png", "results.csv", "sweep.csv")   # last two: names used before per_seed/summary
RESUME_FROM = "last.pt"


class RunSpec(Protocol):
    """What start_run reads of a run's settings (config.RunConfig has these fields)."""
    run_dir: Optional[str]
    seed: int
    force: bool
    resume: bool


def prepare_run_dir(path: os.PathLike, force: bool, resume: bool) -> Path:
    """Create the run folder; refuse one that already holds a run unless resuming (-rt) or forced (-F),
    and a path that is a file or cannot be created. Temporary files of killed writes are removed."""
    path = Path(path)
    if resume:
        if not (path / RESUME_FROM).is_file():
            raise UsageError(f"-rt: nothing to resume in {path} (no {RESUME_FROM}); drop -rt to start a new run")
    else:
        taken = [f for f in RUN_FILES if (path / f).exists()]
        if taken and not force:
            raise UsageError(f"run folder {path} already holds {taken[0]}; pass -F to overwrite, -rt to resume "
                             f"or --run-dir to choose another folder")
    if path.exists() and not path.is_dir():
        raise UsageError(f"--run-dir {path} is a file, not a folder; give a folder path")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"--run-dir {path} cannot be created ({e.strerror or e}); give a folder you can "
                         f"write to") from None
    if force and not resume:
        for stale in STALE_ON_FORCE:
            (path / stale).unlink(missing_ok=True)
    from common.ckpt import remove_stale_temps
    remove_stale_temps(path)
    return path


def start_run(run: RunSpec, record: Mapping[str, Any], is_main: bool = True) -> Optional[Path]:
    """How every mode starts: guard the run folder (-F / -rt), seed everything from the run seed, and
    write args.json (`record` + the code version). Returns the folder (None on non-main DDP ranks,
    which only seed). `run.run_dir` must already be resolved (config.Configs.with_run_dir)."""
    from common.ckpt import code_version
    if not run.run_dir:
        raise ValueError("start_run needs a resolved run folder")
    path = prepare_run_dir(run.run_dir, run.force, run.resume) if is_main else None
    seed_everything(run.seed)
    if path is not None and not run.resume:      # a resumed run's args.json: train.resume, once checked
        write_json(path / "args.json", {"code_version": code_version(), **record})
    return path


def write_json(path: os.PathLike, obj: Any) -> None:
    """Replace a JSON file atomically (a failed write: one WriteError line, the old file kept)."""
    from common.ckpt import atomic_write
    text = json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n"
    atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def write_jsonl(path: os.PathLike, rows: List[Dict[str, Any]]) -> None:
    """Replace a JSON-lines file atomically."""
    from common.ckpt import atomic_write
    text = "".join(json.dumps(r, default=str) + "\n" for r in rows)
    atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def append_jsonl(path: os.PathLike, row: Dict[str, Any]) -> None:
    """Append one row; a failed write (disk full, read-only, a folder of that name) is one WriteError
    line. A row torn by a failure or a kill is dropped by read_jsonl (and -rt rewrites the log)."""
    from common.ckpt import write_failed
    try:
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps(row, default=str) + "\n")
    except OSError as e:
        raise write_failed(path, e) from None


def read_jsonl(path: os.PathLike, skip_bad: bool = False) -> List[Dict[str, Any]]:
    """The rows (JSON objects) of a JSON-lines file of ours ([] when absent).

    The last line is dropped when it is torn (not a JSON object, not UTF-8): what a killed or failed
    append leaves. Any other bad line is dropped with `skip_bad`, else refused as one UsageError line
    naming the file and the line; so is a path that is a folder or cannot be read."""
    path = Path(path)
    if not path.exists():
        return []
    try:
        lines = [ln for ln in path.read_bytes().split(b"\n") if ln.strip()]
    except OSError as e:
        raise UsageError(f"cannot read {path}: {e.strerror or e}"
                         f"{'; move the folder away' if path.is_dir() else ''}") from None
    rows = []
    for number, line in enumerate(lines, 1):
        try:
            row = json.loads(line.decode("utf-8"))
        except ValueError:                  # UnicodeDecodeError is a ValueError too
            row = None
        if isinstance(row, dict):
            rows.append(row)
        elif not (skip_bad or number == len(lines)):
            raise UsageError(f"{path}: line {number} is not a JSON object ({line[:40]!r}); repair or "
                             f"delete the line")
    return rows


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices) from the run seed."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def resolve_device(name: str) -> torch.device:
    """'auto' -> cuda (this process's local rank under torchrun) if available, else cpu."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UsageError(f"--device {name}: CUDA is not available here; use --device cpu or auto")
        if name == "cuda" and "LOCAL_RANK" in os.environ:
            name = f"cuda:{int(os.environ['LOCAL_RANK'])}"
    elif name != "cpu":
        raise UsageError(f"--device {name!r}: choose auto, cpu, cuda or cuda:N")
    return torch.device(name)


def configure_perf(perf, device: torch.device) -> None:
    """Refuse speed settings the device cannot honour (one line, exit 2), and on CUDA turn on cuDNN's
    autotuning for the fixed input shapes of a training run."""
    if perf.amp and device.type != "cuda":
        raise UsageError(f"--amp needs a CUDA GPU (bfloat16 autocast); this run is on {device}, where "
                         f"bf16 is emulated on CPUs without native support (about 45x slower here); drop --amp")
    if perf.compile:
        check_compile(perf, device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True     # fastest conv algorithms for the fixed input shapes


def check_compile(perf, device: torch.device) -> None:
    """--compile needs what torch.compile's default backend builds with: Triton on CUDA, a C++
    compiler on CPU; and it runs the perturbed models one at a time."""
    if perf.batch_models > 1:
        raise UsageError(f"--compile runs the perturbed models one at a time; drop --batch-models "
                         f"{perf.batch_models} or --compile")
    if device.type == "cuda":
        if importlib.util.find_spec("triton") is None:
            raise UsageError("--compile on CUDA needs the triton package (it comes with PyTorch's CUDA "
                             "wheels); install it or drop --compile")
    elif device.type == "cpu":
        cxx = os.environ.get("CXX") or "c++"
        if not any(shutil.which(c) for c in (cxx, "g++", "clang++")):
            raise UsageError(f"--compile on CPU needs a C++ compiler ({cxx!r}, g++ or clang++ on PATH); "
                             f"install one or drop --compile")


def interrupted_message(run_dir: Optional[os.PathLike], trains: bool) -> str:
    """What Ctrl-C leaves behind, said truthfully: how many epochs are saved and whether -rt can resume."""
    if not trains or run_dir is None:
        return "interrupted; no results were written"
    run_dir = Path(run_dir)
    if not (run_dir / "last.pt").is_file():
        return (f"interrupted before the first epoch finished; nothing to resume in {run_dir} "
                f"(run the command again without -rt)")
    done = [r["epoch"] for r in read_jsonl(run_dir / "metrics.jsonl", skip_bad=True) if "epoch" in r]
    last = max(done) if done else "?"
    return (f"interrupted; epochs 1-{last} are saved in {run_dir / 'last.pt'} "
            f"(continue with the same command plus -rt)")

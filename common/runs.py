"""Run folders (SPEC §9): resolved arguments, one JSON line of metrics per epoch, seeds and devices.

Example:
    run = prepare_run_dir("checkpoints/resnet18_cifar10_qat", force=False, resume=False)
    append_jsonl(run / "metrics.jsonl", {"epoch": 0, "test_acc": 41.2})
"""
from __future__ import annotations

import json
import os
import random
import sys
from pathlib import Path
from typing import Any, Dict, List

import numpy as np
import torch


def progress(iterable, desc: str, in_logs: bool = True, **kwargs):
    """A tqdm bar: live on a terminal; in a log file (nohup, sbatch) one line a minute at most, or
    nothing when `in_logs` is False (short inner loops such as one evaluation pass)."""
    from tqdm import tqdm
    live = sys.stderr.isatty()
    return tqdm(iterable, desc=desc, leave=False, disable=not (live or in_logs),
                mininterval=0.5 if live else 60, maxinterval=60 if live else 600, **kwargs)


class UsageError(Exception):
    """A user mistake: printed as one line by zs_main.py, exit code 2."""


def prepare_run_dir(path: os.PathLike, force: bool, resume: bool, guard: str = "last.pt") -> Path:
    """Create the run folder; refuse to reuse one holding `guard` unless resuming or forced."""
    path = Path(path)
    if resume:
        if not (path / guard).is_file():
            raise UsageError(f"-rt: nothing to resume in {path} (no {guard}); drop -rt to start a new run")
    elif (path / guard).exists() and not force:
        raise UsageError(f"run folder {path} already holds {guard}; pass -F to overwrite or -rt to resume")
    path.mkdir(parents=True, exist_ok=True)
    if force and not resume:
        for stale in ("metrics.jsonl", "last.pt", "best.pt", "results.json"):
            (path / stale).unlink(missing_ok=True)
    return path


def write_json(path: os.PathLike, obj: Any) -> None:
    from common.ckpt import atomic_write
    text = json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n"
    atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def append_jsonl(path: os.PathLike, row: Dict[str, Any]) -> None:
    with open(path, "a") as f:
        f.write(json.dumps(row, default=str) + "\n")


def read_jsonl(path: os.PathLike) -> List[Dict[str, Any]]:
    path = Path(path)
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


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

"""Resuming a run with -rt: load last.pt, check the command still describes the same run, repair the log.

A resumed run must end exactly where the uninterrupted one would have. Everything random in an epoch is
derived from (seed, epoch) (train.loop.reseed_epoch); the rest of the state (weights, optimizer,
scheduler, best value) comes from last.pt. So the only way to get a different run is a different
command: resuming refuses settings that change what is trained (architecture, data, learning rate,
λ, fault model, ...) and allows only those that do not (more epochs with -E, the device, the data
folder, workers, test batch size, evaluation settings). It prints which settings the run uses.

Example:
    start_epoch, best = resume(run_dir, "base", model, opt, current=cfgs.to_dict())
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import torch

from common.ckpt import CheckpointError, code_version, load_checkpoint, load_state
from common.runs import UsageError, read_jsonl, write_json, write_jsonl

# config sections that describe what a run of each checkpoint kind trains
SECTIONS = {"base": ("run", "data", "train"), "generator": ("run", "data", "eopm", "fault")}
# settings a resumed run may change: they do not alter the weights it ends with
MAY_CHANGE = {"run.run_dir", "run.device", "run.resume", "run.force", "run.tensorboard", "data.root",
              "data.download", "data.workers", "data.test_batch_size", "train.epochs", "eopm.epochs"}
# how the user spells a setting, for the messages ("config.py ..." for the rest)
FLAGS = {"run.arch": "ARCH", "run.mode": "MODE", "run.seed": "--seed", "run.bits": "--bits",
         "run.checkpoint": "-cp", "data.dataset": "DATASET", "data.train_limit": "--train-limit",
         "data.test_limit": "--test-limit", "data.val_size": "--val-size", "data.batch_size": "-BS",
         "data.hflip": "--no-hflip (hflip)", "data.augment": "--no-augment (augment)",
         "eopm.n_global": "--n-global", "eopm.sync_bn": "--sync-bn", "fault.maps": "--fault-map",
         "train.lr": "-LR", "train.epochs": "-E", "eopm.generator": "-G", "eopm.lr": "-LR", "eopm.lam": "-LM",
         "eopm.n_models": "-N", "eopm.epochs": "-E", "fault.model": "--fault-model", "fault.ber": "-ber",
         "fault.position": "-pos", "fault.bits": "--bits"}


# what resume reads from last.pt, by type (a file edited or written by other code is refused by key)
FIELD_TYPES = {"config": dict, "epoch": int, "best": (int, float), "optimizer": dict, "metrics": (dict, type(None))}


def check_types(ckpt: Dict, kind: str, path: Path) -> None:
    """One CheckpointError line naming the first field of `ckpt` (or config section) of the wrong type."""
    wrong = [(k, v) for k, v in ckpt.items() if k in FIELD_TYPES
             and (not isinstance(v, FIELD_TYPES[k]) or isinstance(v, bool))]
    wrong += [(f"config.{s}", ckpt["config"][s]) for s in SECTIONS[kind] if not wrong
              and not isinstance(ckpt["config"].get(s) or {}, dict)]
    if not wrong and ckpt["epoch"] < 0:
        wrong = [("epoch", ckpt["epoch"])]
    if wrong:
        key, value = wrong[0]
        raise CheckpointError(f"{path}: {key!r} is {type(value).__name__} {str(value)[:40]!r}, not what this code "
                              f"writes; the file was edited or written by other code")


def _flat(config: Dict, sections) -> Dict[str, object]:
    return {f"{s}.{k}": v for s in sections for k, v in (config.get(s) or {}).items()}


def _same(key: str, saved, now) -> bool:
    if key == "run.checkpoint" and saved and now:      # the same file, however the path is spelt
        return os.path.realpath(saved) == os.path.realpath(now)
    if isinstance(saved, (list, tuple)) and isinstance(now, (list, tuple)):
        return list(saved) == list(now)
    return saved == now


def _name(key: str) -> str:
    return FLAGS.get(key, f"config.py {key}")


def compare_settings(saved: Dict, current: Dict, kind: str) -> Tuple[List[str], List[str]]:
    """(refused differences, allowed changes) between the saved run's config and the command's."""
    old, new = _flat(saved, SECTIONS[kind]), _flat(current, SECTIONS[kind])
    refused, changed = [], []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if _same(key, a, b):
            continue
        if key in MAY_CHANGE:
            changed.append(f"{_name(key)} {a} -> {b}")
        else:
            refused.append(f"{_name(key)} (run: {a}, command: {b})")
    return refused, changed


def describe(config: Dict, kind: str) -> str:
    """The settings that define a run, as the user spells them."""
    flat = _flat(config, SECTIONS[kind])
    return ", ".join(f"{FLAGS[k]} {flat[k]}" for k in FLAGS if k in flat and k not in MAY_CHANGE)


def repair_metrics(run_dir: Path, finished: int, last_row: Optional[Dict]) -> None:
    """Make metrics.jsonl hold exactly one row per finished epoch (1..finished, numbered from 1).

    A kill between writing last.pt and appending the epoch's row, or after appending a row whose
    checkpoint never landed, would otherwise lose or duplicate a row when the run resumes."""
    path = run_dir / "metrics.jsonl"
    rows = {r.get("epoch"): r for r in read_jsonl(path, skip_bad=True) if isinstance(r.get("epoch"), int)}
    if last_row is not None:
        rows[finished] = last_row                          # the checkpoint's own copy wins
    write_jsonl(path, [rows[e] for e in sorted(rows) if e <= finished])


def resume(run_dir: os.PathLike, kind: str, model: torch.nn.Module, optimizer, scheduler=None,
           current: Optional[Dict] = None, is_main: bool = True) -> Tuple[int, float]:
    """Load `run_dir/last.pt` into model/optimizer(/scheduler) after checking that `current` (the
    command's resolved config) describes the same run; returns (first epoch to run, best).
    Only the main process (`is_main`) talks and tidies the folder."""
    run_dir = Path(run_dir)
    path = run_dir / "last.pt"
    ckpt = load_checkpoint(path, kind=kind, require=("optimizer", "epoch", "best", "config")
                           + (("scheduler",) if scheduler is not None else ()))
    check_types(ckpt, kind, path)
    refused, changed = compare_settings(ckpt["config"], current or ckpt["config"], kind)
    if refused:
        raise UsageError(f"-rt: the run in {run_dir} differs from this command in {'; '.join(refused)}; "
                         f"repeat the run's command with -rt, or start a new run (another --run-dir, or -F)")
    load_state(model, ckpt["state_dict"], path)
    load_state(optimizer, ckpt["optimizer"], path, "optimizer state")
    if scheduler is not None:
        load_state(scheduler, ckpt["scheduler"], path, "scheduler state")
    if is_main:
        print(f"resuming {run_dir} at epoch {ckpt['epoch'] + 1} with its settings: "
              f"{describe(ckpt['config'], kind)}" + (f"; changed: {', '.join(changed)}" if changed else ""))
        repair_metrics(run_dir, ckpt["epoch"], ckpt.get("metrics"))
        if current is not None:
            write_json(run_dir / "args.json", {"code_version": code_version(), **current})
    return ckpt["epoch"], ckpt["best"]          # "epoch" = epochs finished = index of the next one

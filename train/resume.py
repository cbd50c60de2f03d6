"""Resuming a run with -rt: load last.pt, check the command still describes the same run, repair the log.

A resumed run must end exactly where the uninterrupted one would have. Everything random in an epoch is
derived from (seed, epoch) (train.loop.reseed_epoch); the rest of the state (weights, optimizer,
scheduler, best value) comes from last.pt. So the only way to get a different run is a different
command: resuming refuses settings that change what is trained (architecture, data, learning rate,
λ, fault model, ...) and allows only those that do not (more epochs with -E, the device, the data
folder, workers, test batch size, evaluation settings). Which is which is each setting's `on_resume`
metadata (config.py, bitflip.FaultConfig), and config.RUN_SETTINGS names the settings of each kind of
run. It prints which settings the run uses, spelt as the user types them.

Example:
    start_epoch, best = resume(run_dir, "base", model, opt, current=cfgs.to_dict())
"""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Tuple, get_type_hints

import torch

from bitflip import FaultConfig
from common.cli import IGNORED, MAY_CHANGE, MUST_MATCH, flag_of, on_resume, show_value
from common.ckpt import CheckpointError, code_version, load_checkpoint, load_state
from common.runs import UsageError, read_jsonl, write_json, write_jsonl
from common.session import RESULTS
from config import RUN_SETTINGS, Configs

# checkpoint kind -> the mode that trains it; RUN_SETTINGS[mode] names the settings that define its runs
KIND_MODE = {"base": "train", "generator": "transform_eopm_gen"}
# config section -> its dataclass, whose field metadata says how a setting is spelt and whether it may change
SECTION_TYPES = get_type_hints(Configs, localns={"FaultConfig": FaultConfig})


def _field(key: str) -> Optional[dataclasses.Field]:
    """The config field of "section.name" (None for a setting a newer version removed)."""
    section, name = key.split(".", 1)
    cls = SECTION_TYPES.get(section)
    return {f.name: f for f in dataclasses.fields(cls)}.get(name) if cls is not None else None


def _flat(config: Dict, kind: str) -> Dict[str, object]:
    """"section.name" -> value for the settings that define a run of this kind."""
    out = {}
    for key in RUN_SETTINGS[KIND_MODE[kind]]:
        section, _, only = key.partition(".")
        out.update({f"{section}.{k}": v for k, v in (config.get(section) or {}).items() if not only or k == only})
    return out


# what resume reads from last.pt, by type (a file edited or written by other code is refused by key)
FIELD_TYPES = {"config": dict, "epoch": int, "best": (int, float), "optimizer": dict, "metrics": (dict, type(None))}


def check_types(ckpt: Dict, kind: str, path: Path) -> None:
    """One CheckpointError line naming the first field of `ckpt` (or config section) of the wrong type."""
    wrong = [(k, v) for k, v in ckpt.items() if k in FIELD_TYPES
             and (not isinstance(v, FIELD_TYPES[k]) or isinstance(v, bool))]
    sections = sorted({key.partition(".")[0] for key in RUN_SETTINGS[KIND_MODE[kind]]})
    wrong += [(f"config.{s}", ckpt["config"][s]) for s in sections if not wrong
              and not isinstance(ckpt["config"].get(s) or {}, dict)]
    if not wrong and ckpt["epoch"] < 0:
        wrong = [("epoch", ckpt["epoch"])]
    if wrong:
        key, value = wrong[0]
        raise CheckpointError(f"{path}: {key!r} is {type(value).__name__} {str(value)[:40]!r}, not what this code "
                              f"writes; the file was edited or written by other code")


def _same(key: str, saved, now) -> bool:
    if key == "run.checkpoint" and saved and now:      # the same file, however the path is spelt
        return os.path.realpath(saved) == os.path.realpath(now)
    if isinstance(saved, (list, tuple)) and isinstance(now, (list, tuple)):
        return list(saved) == list(now)
    return saved == now


def _same_bytes(old: Dict, new: Dict) -> bool:
    """-cp moved, not changed: both configs carry the same stored checksum of the file (runs started
    before checksums were recorded, and files without one, are compared by path only)."""
    digest = old.get("run.checkpoint_sha256")
    return digest is not None and digest == new.get("run.checkpoint_sha256")


def _name(key: str) -> str:
    """How the user spells a setting: its flag, or where to edit it (config.py) when it has none."""
    f = _field(key)
    return (flag_of(f) if f is not None else None) or f"config.py {key}"


def _policy(key: str) -> str:
    f = _field(key)
    return on_resume(f) if f is not None else MUST_MATCH


def _default(key: str) -> object:
    """A setting's default: what a run saved before the setting existed ran with."""
    f = _field(key)
    return None if f is None or f.default is dataclasses.MISSING else f.default


def _pairs(old: Dict, new: Dict) -> Iterator[Tuple[str, object, object]]:
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key, _default(key)), new.get(key)
        if not _same(key, a, b) and _policy(key) != IGNORED:
            yield key, a, b


def compare_settings(saved: Dict, current: Dict, kind: str) -> Tuple[List[str], List[str]]:
    """(refused differences, allowed changes) between the saved run's config and the command's,
    each spelt as the user types it: "-LR (run: 0.01, command: 0.5)", "-E 1 -> 2"."""
    refused, changed = [], []
    old, new = _flat(saved, kind), _flat(current, kind)
    for key, a, b in _pairs(old, new):
        if _policy(key) == MAY_CHANGE or (key == "run.checkpoint" and _same_bytes(old, new)):
            changed.append(f"{_name(key)} {show_value(a)} -> {show_value(b)}")
        else:
            refused.append(f"{_name(key)} (run: {show_value(a)}, command: {show_value(b)})")
    return refused, changed


def describe(config: Dict, kind: str) -> str:
    """The command-line settings that define a run, as the user spells them."""
    flat = _flat(config, kind)
    return ", ".join(f"{_name(k)} {show_value(v)}" for k, v in flat.items()
                     if _policy(k) == MUST_MATCH and _field(k) is not None and flag_of(_field(k)))


def repair_metrics(run_dir: Path, finished: int, last_row: Optional[Dict]) -> None:
    """Make metrics.jsonl hold exactly one row per finished epoch (1..finished, numbered from 1).

    A kill between writing last.pt and appending the epoch's row, or after appending a row whose
    checkpoint never landed, would otherwise lose or duplicate a row when the run resumes."""
    path = run_dir / "metrics.jsonl"
    rows = {r.get("epoch"): r for r in read_jsonl(path, skip_bad=True) if isinstance(r.get("epoch"), int)}
    if last_row is not None:
        rows[finished] = last_row                          # the checkpoint's own copy wins
    write_jsonl(path, [rows[e] for e in sorted(rows) if e <= finished])


def nothing_missing(run_dir: os.PathLike, evaluates: bool) -> bool:
    """Whether a run whose training finished has all it writes after: best.pt, and results.json for
    the modes that end with an evaluation (`evaluates`)."""
    run_dir = Path(run_dir)
    return (run_dir / "best.pt").is_file() and (not evaluates or (run_dir / RESULTS).is_file())


def _complete_line(run_dir: Path, saved: int, epochs: int, evaluates: bool) -> str:
    head = f"-rt: the run in {run_dir} is already complete ({saved} epochs trained, -E {epochs})"
    if nothing_missing(run_dir, evaluates):
        return f"{head}; nothing to do (raise -E to train more, or -F to start again)"
    return f"{head}; {RESULTS} is missing: running only the final evaluation"


def resume(run_dir: os.PathLike, kind: str, model: torch.nn.Module, optimizer, scheduler=None,
           current: Optional[Dict] = None, is_main: bool = True, epochs: Optional[int] = None,
           evaluates: bool = False) -> Tuple[int, float]:
    """Load `run_dir/last.pt` into model/optimizer(/scheduler) after checking that `current` (the
    command's resolved config) describes the same run; returns (first epoch to run, best).
    When last.pt already holds `epochs` (the command's -E) epochs, says in one line that the run is
    complete and what is left to do (`nothing_missing`; `evaluates`: the mode writes results.json) and
    leaves args.json as the run wrote it. Only the main process (`is_main`) talks and tidies the folder."""
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
    complete = epochs is not None and ckpt["epoch"] >= epochs
    if complete and not (run_dir / "best.pt").is_file():     # nothing to evaluate or report from
        raise UsageError(f"-rt: the run in {run_dir} finished its {ckpt['epoch']} epochs but best.pt is missing; "
                         f"start it again with -F (or raise -E to train more)")
    if is_main:
        print(_complete_line(run_dir, ckpt["epoch"], epochs, evaluates) if complete else
              f"resuming {run_dir} at epoch {ckpt['epoch'] + 1} with its settings: "
              f"{describe(ckpt['config'], kind)}" + (f"; changed: {', '.join(changed)}" if changed else ""))
        repair_metrics(run_dir, ckpt["epoch"], ckpt.get("metrics"))
        if current is not None and not complete:
            write_json(run_dir / "args.json", {"code_version": code_version(), **current})
    return ckpt["epoch"], ckpt["best"]          # "epoch" = epochs finished = index of the next one

"""The one training loop (STYLE habit 5): `train_one_epoch` runs any per-batch step, `fit` drives epochs.

Both the base-model QAT (train.qat) and the generator's EOPM training (train.eopm) use these, so
progress bars, metrics.jsonl, atomic best/last checkpoints and resume behave the same everywhere.
A mode hands `fit` what is its own as one `TrainingTask`.

Example:
    task = TrainingTask(one_epoch=..., validate=..., best_key="val_acc",
                        make_checkpoint=lambda epoch, metrics, best: {...})
    best = fit(task, run_dir, 5, *FRESH_START)         # epochs, (epochs done, best so far)
    chosen = load_best(run_dir, "base", model)
"""
from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, Optional, Tuple

import numpy as np
import torch

from common.ckpt import load_checkpoint, load_state, save_checkpoint, share_file
from common.dist import DistInfo, all_reduce_min, all_reduce_sum, barrier
from common.progress import progress
from common.runs import append_jsonl
from config import DATA_ORDER_SEED_STRIDE

POSTFIX_EVERY = 20   # batches between progress-bar metric updates (each one syncs with the device)
Step = Callable[[torch.Tensor, torch.Tensor], Dict[str, float]]
# (epochs finished, best validation value) of a run that has not trained yet: any value beats -1
FRESH_START: Tuple[int, float] = (0, -1.0)


@dataclass(frozen=True)
class TrainingTask:
    """What a mode hands `fit`: its epoch, its validation, its checkpoint contents and the metric
    (a key of `validate`'s result) that picks best.pt.

    one_epoch(epoch) -> train metrics (epoch counted from 0);
    validate(epoch) -> validation metrics, {} without validation images (rank 0 only);
    make_checkpoint(epoch, metrics row, best value) -> the checkpoint dict (epoch counted from 1)."""
    one_epoch: Callable[[int], Dict[str, float]]
    validate: Callable[[int], Dict[str, float]]
    make_checkpoint: Callable[[int, Dict[str, Any], float], dict]
    best_key: str


def wrap_ddp(module: torch.nn.Module, device: torch.device, dist_info: DistInfo) -> torch.nn.Module:
    """The module to train: itself, or a DistributedDataParallel wrapper under torchrun."""
    if not dist_info.enabled:
        return module
    return torch.nn.parallel.DistributedDataParallel(module, device_ids=[device] if device.type == "cuda" else None)


class NonFiniteLoss(Exception):
    """Training produced a NaN or infinite loss; the message says where and what was kept."""


class _BadStep(Exception):
    """Raised inside an epoch, turned into NonFiniteLoss by `fit`, which knows the epoch."""


def reseed_epoch(loader, seed: int, epoch: int, rank: int = 0) -> None:
    """Every random draw of an epoch depends only on (seed, epoch, rank), so a resumed run repeats it.

    The loader's generator fixes the data order and the worker seeds (DataLoader draws each epoch's
    worker base seed from it; training loaders must not keep persistent workers). The global RNGs drive
    the augmentation in the main process (workers=0) and anything else a step draws from them.
    """
    loader.generator.manual_seed(seed * DATA_ORDER_SEED_STRIDE + epoch)
    if hasattr(loader.sampler, "set_epoch"):
        loader.sampler.set_epoch(epoch)
    words = np.random.SeedSequence([seed, epoch, rank]).generate_state(2)   # two uint32 words
    torch.manual_seed(int(words[0]) << 32 | int(words[1]))
    np.random.seed(words)
    random.seed(int(words[0]) << 32 | int(words[1]))


def train_one_epoch(step: Step, loader: Iterable, device: torch.device, desc: str,
                    dist_info: DistInfo = DistInfo()) -> Dict[str, float]:
    """Call `step(x, y)` on every batch; return the image-weighted mean of the metrics it returns.

    A non-finite metric raises _BadStep naming the first bad step. It is recorded on the device and
    read where the loop syncs anyway (every POSTFIX_EVERY batches and at the end), so it costs no
    extra device round trip; the weights after it are never saved."""
    sums: Dict[str, torch.Tensor] = {}
    n = 0
    first_bad = torch.tensor(0, device=device)    # 1-based step of the first non-finite metric, 0 = none
    bar = progress(loader, desc, is_main=dist_info.is_main)
    for i, (x, y) in enumerate(bar):
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        metrics = step(x, y)                      # floats or 0-dim tensors (kept on the device)
        b = y.numel()
        n += b
        finite = torch.ones((), dtype=torch.bool, device=device)   # made on the device: no host copy, no sync
        for k, v in metrics.items():
            v = torch.as_tensor(v, dtype=torch.float64, device=device)
            sums[k] = sums.get(k, 0.0) + v * b
            finite = finite & torch.isfinite(v)
        first_bad = torch.where((first_bad == 0) & ~finite, i + 1, first_bad)
        if i % POSTFIX_EVERY == 0:                # reading a device value waits for the device
            _raise_if_bad(first_bad, sums, dist_info)
            bar.set_postfix({k: f"{float(v) / n:.3g}" for k, v in sums.items()}, refresh=False)
    _raise_if_bad(first_bad, sums, dist_info)
    keys = sorted(sums)
    totals = torch.stack([sums[k] for k in keys] + [torch.tensor(float(n), dtype=torch.float64, device=device)])
    totals = all_reduce_sum(totals, dist_info).tolist()
    return {f"train_{k}": v / max(totals[-1], 1) for k, v in zip(keys, totals[:-1])}


def _raise_if_bad(first_bad: torch.Tensor, sums: Dict[str, torch.Tensor], dist_info: DistInfo) -> None:
    """Raise _BadStep(step, what) once any process has seen a non-finite metric (all ranks together)."""
    none = torch.iinfo(torch.int64).max          # every rank stops at the earliest bad step of any rank
    step = int(all_reduce_min(torch.where(first_bad > 0, first_bad, none), dist_info))
    if step != none:
        bad = [k for k, v in sums.items() if not math.isfinite(float(v))]
        raise _BadStep(step, bad[0] if bad else "loss")


def fit(task: TrainingTask, run_dir: Path, epochs: int, start_epoch: int, best: float,
        dist_info: DistInfo = DistInfo(), on_epoch: Optional[Callable[[dict], None]] = None,
        log: Callable[[str], None] = print, max_minutes: Optional[float] = None,
        clock: Callable[[], float] = time.monotonic) -> float:
    """Train epochs start_epoch+1..epochs (numbered from 1, as printed, in metrics.jsonl and in the
    checkpoints' "epoch"; `start_epoch` is the number already finished); after each, validate, log a
    JSON line, save last/best. Returns the best validation value (`best` if no epoch beat it).

    `on_epoch(row)`, when given, also receives each epoch's metrics row (e.g. common.tblog's TensorBoard log).
    Checkpoints are written after every epoch (atomically), so an interrupted run loses at most the
    epoch in progress and `-rt` continues from the next one; the epoch's metrics line is appended after
    them (train.resume repairs the log on resume). best.pt is the epoch with the highest
    `task.best_key` from `task.validate` (the validation split, never the test split); when it returns no
    `best_key` (no validation images) every epoch counts as best, so best.pt is the last epoch. best.pt
    shares last.pt's file (a hard link) instead of a second copy. A non-finite training loss stops the run with
    NonFiniteLoss, leaving the last good checkpoint as it was.

    `max_minutes` (--max-minutes) is a time budget for this call: no epoch starts once the time spent
    here plus the longest epoch so far would pass it (the first epoch always runs); the caller then
    finishes as usual and -rt continues from the last saved epoch.
    """
    started, longest = clock(), 0.0
    for epoch in range(start_epoch, epochs):
        if epoch > start_epoch and _out_of_time(clock() - started, longest, max_minutes, dist_info):
            log(f"--max-minutes {max_minutes:g}: stopping after epoch {epoch}/{epochs} ({(clock() - started) / 60:.2f} "
                f"min spent, the longest epoch took {longest / 60:.2f} min); -rt continues from epoch {epoch + 1}")
            break
        t0, c0 = time.time(), clock()
        try:
            train_metrics = task.one_epoch(epoch)
        except _BadStep as e:
            step, key = e.args
            kept = (f"the last good checkpoint is {run_dir / 'last.pt'} (epoch {epoch})" if epoch > 0
                    else "no checkpoint was written")
            raise NonFiniteLoss(f"non-finite training {key} at epoch {epoch + 1}, step {step}; stopped there "
                                f"and {kept}; lower -LR (or -LM) and start again with -F") from None
        train_s = time.time() - t0                  # training alone (epoch_time_s adds validation)
        val_metrics = task.validate(epoch) if dist_info.is_main else {}
        row = {"epoch": epoch + 1, **train_metrics, **val_metrics, "train_time_s": round(train_s, 2),
               "epoch_time_s": round(time.time() - t0, 2)}
        longest = max(longest, clock() - c0)
        if dist_info.is_main:
            value = val_metrics.get(task.best_key)
            is_best = value is None or value > best          # no validation: keep the last epoch
            best = best if value is None else max(best, value)
            ckpt = task.make_checkpoint(epoch + 1, row, best)   # epochs are numbered from 1 everywhere
            save_checkpoint(ckpt, run_dir / "last.pt")
            if is_best:
                share_file(run_dir / "last.pt", run_dir / "best.pt")
            append_jsonl(run_dir / "metrics.jsonl", row)
            if on_epoch is not None:
                on_epoch(row)
            shown = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                             for k, v in row.items() if k != "epoch")
            log(f"epoch {epoch + 1}/{epochs} {shown}{' *best*' if is_best else ''}")
    return best


def _out_of_time(spent_s: float, longest_s: float, max_minutes: Optional[float], dist_info: DistInfo) -> bool:
    """Whether another epoch would pass the budget; under DDP every rank stops if any rank would (the
    ranks' clocks differ, and a rank that trains alone would wait for the others forever)."""
    if max_minutes is None:
        return False
    late = torch.tensor(float(spent_s + longest_s > max_minutes * 60))
    if dist_info.enabled and torch.distributed.get_backend() == "nccl":
        late = late.cuda()                       # NCCL reduces device tensors only
    return bool(all_reduce_sum(late, dist_info).item() > 0)


def load_best(run_dir: Path, kind: str, model: torch.nn.Module, dist_info: DistInfo = DistInfo()) -> dict:
    """Load the chosen epoch (run_dir/best.pt, a `kind` checkpoint) into `model`; returns the checkpoint.
    Every rank reads it once rank 0 has written it."""
    barrier(dist_info)
    path = Path(run_dir) / "best.pt"
    chosen = load_checkpoint(path, kind=kind)
    load_state(model, chosen["state_dict"], path)
    return chosen

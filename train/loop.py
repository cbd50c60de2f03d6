"""The one training loop (STYLE habit 5): `train_one_epoch` runs any per-batch step, `fit` drives epochs.

Both the base-model QAT (train.qat) and the generator's EOPM training (train.eopm) use these, so
progress bars, metrics.jsonl, atomic best/last checkpoints and resume behave the same everywhere.

Example:
    fit(run_dir, epochs=5, start_epoch=0, best=-1.0, one_epoch=..., validate=..., best_key="test_acc",
        make_checkpoint=lambda epoch, metrics, best: {...})
"""
from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Callable, Dict, Iterable, Optional, Tuple

import torch

from common.ckpt import load_checkpoint, save_checkpoint
from common.dist import DistInfo, all_reduce_sum
from common.runs import append_jsonl, progress
from config import DATA_ORDER_SEED_STRIDE

POSTFIX_EVERY = 20   # batches between progress-bar metric updates (each one syncs with the device)
Step = Callable[[torch.Tensor, torch.Tensor], Dict[str, float]]


def resume(run_dir: Path, kind: str, model: torch.nn.Module, optimizer, scheduler=None) -> Tuple[int, float]:
    """Load `run_dir/last.pt` into model/optimizer(/scheduler); returns (first epoch to run, best)."""
    ckpt = load_checkpoint(Path(run_dir) / "last.pt", kind=kind)
    model.load_state_dict(ckpt["state_dict"])
    optimizer.load_state_dict(ckpt["optimizer"])
    if scheduler is not None:
        scheduler.load_state_dict(ckpt["scheduler"])
    print(f"resuming {run_dir} at epoch {ckpt['epoch'] + 2}")
    return ckpt["epoch"] + 1, ckpt["best"]


def wrap_ddp(module: torch.nn.Module, device: torch.device, dist_info: DistInfo) -> torch.nn.Module:
    """The module to train: itself, or a DistributedDataParallel wrapper under torchrun."""
    if not dist_info.enabled:
        return module
    return torch.nn.parallel.DistributedDataParallel(module, device_ids=[device] if device.type == "cuda" else None)


def reseed_epoch(loader, seed: int, epoch: int) -> None:
    """Data order depends only on (seed, epoch), so a resumed run sees the same batches."""
    loader.generator.manual_seed(seed * DATA_ORDER_SEED_STRIDE + epoch)
    if hasattr(loader.sampler, "set_epoch"):
        loader.sampler.set_epoch(epoch)


def train_one_epoch(step: Step, loader: Iterable, device: torch.device, desc: str,
                    dist_info: DistInfo = DistInfo()) -> Dict[str, float]:
    """Call `step(x, y)` on every batch; return the image-weighted mean of the metrics it returns."""
    sums: Dict[str, torch.Tensor] = {}
    n = 0
    bar = progress(loader, desc)
    for i, (x, y) in enumerate(bar):
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        metrics = step(x, y)                      # floats or 0-dim tensors (kept on the device)
        b = y.numel()
        n += b
        for k, v in metrics.items():
            sums[k] = sums.get(k, 0.0) + torch.as_tensor(v, dtype=torch.float64, device=device) * b
        if i % POSTFIX_EVERY == 0:                # reading a device value waits for the device
            bar.set_postfix({k: f"{float(v) / n:.3g}" for k, v in sums.items()}, refresh=False)
    keys = sorted(sums)
    totals = torch.stack([sums[k] for k in keys] + [torch.tensor(float(n), dtype=torch.float64, device=device)])
    totals = all_reduce_sum(totals, dist_info).tolist()
    return {f"train_{k}": v / max(totals[-1], 1) for k, v in zip(keys, totals[:-1])}


def fit(run_dir: Path, epochs: int, start_epoch: int, best: float,
        one_epoch: Callable[[int], Dict[str, float]], validate: Callable[[int], Dict[str, float]],
        best_key: str, make_checkpoint: Callable[[int, Dict[str, float], float], dict],
        dist_info: DistInfo = DistInfo(), log: Callable[[str], None] = print,
        on_epoch: Optional[Callable[[dict], None]] = None) -> Tuple[float, Optional[dict]]:
    """Train epochs start_epoch..epochs-1; after each, validate, log a JSON line, save last/best.

    `on_epoch(row)`, when given, also receives each epoch's metrics row (e.g. common.tblog's TensorBoard log).
    Checkpoints are written after every epoch (atomically), so an interrupted run loses at most the
    epoch in progress and `-rt` continues from the next one. Returns (best value, last metrics).
    """
    row = None
    for epoch in range(start_epoch, epochs):
        t0 = time.time()
        train_metrics = one_epoch(epoch)
        train_s = time.time() - t0                  # training alone (epoch_time_s adds validation)
        val_metrics = validate(epoch) if dist_info.is_main else {}
        row = {"epoch": epoch, **train_metrics, **val_metrics, "train_time_s": round(train_s, 2),
               "epoch_time_s": round(time.time() - t0, 2)}
        if dist_info.is_main:
            value = val_metrics.get(best_key, -math.inf)
            is_best = value > best
            best = max(best, value)
            append_jsonl(run_dir / "metrics.jsonl", row)
            if on_epoch is not None:
                on_epoch(row)
            ckpt = make_checkpoint(epoch, row, best)
            save_checkpoint(ckpt, run_dir / "last.pt")
            if is_best:
                save_checkpoint(ckpt, run_dir / "best.pt")
            shown = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items())
            log(f"epoch {epoch + 1}/{epochs} {shown}{' *best*' if is_best else ''}")
    return best, row

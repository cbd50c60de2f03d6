"""Top-1 accuracy of a classifier over (already transformed) batches.

Example:
    acc = accuracy(model, batches, device)["acc"]          # percent
"""
from __future__ import annotations

from typing import Callable, Iterable, List, Tuple

import torch
import torch.nn.functional as F
from common.progress import progress


@torch.no_grad()
def accuracy(model: torch.nn.Module, batches: Iterable[Tuple[torch.Tensor, torch.Tensor]],
             device: torch.device, desc: str = "eval") -> dict:
    """{'acc': percent, 'loss': mean CE, 'n': images}; `model` is put in eval mode and restored."""
    was_training = model.training
    model.eval()
    correct = torch.zeros((), dtype=torch.int64, device=device)      # summed on the device: no sync per batch
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    n = 0
    for x, y in progress(batches, desc, in_logs=False):
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        logits = model(x)                                       # (B, classes)
        loss_sum += F.cross_entropy(logits, y, reduction="sum")
        correct += (logits.argmax(1) == y).sum()
        n += y.numel()
    model.train(was_training)
    return {"acc": 100.0 * int(correct) / max(n, 1), "loss": float(loss_sum) / max(n, 1), "n": n}


def print_ptq_accuracy(arch: str, bits: int, base: torch.nn.Module,
                       batches: Iterable[Tuple[torch.Tensor, torch.Tensor]], device: torch.device,
                       split: str) -> None:
    """For a base model quantized post-training from a float state_dict (`load_float_base` marks it):
    print its clean accuracy on `batches` (the `split` images), before anything uses it."""
    source = getattr(base, "ptq_from", None)
    if source:
        m = accuracy(base, batches, device, desc="PTQ")
        print(f"{arch} from float state_dict {source}, post-training quantized to {bits} bits: "
              f"clean accuracy {m['acc']:.2f}% on {m['n']} {split} images")



@torch.no_grad()
def ensemble_accuracy(forward: Callable[[torch.Tensor], torch.Tensor],
                      batches: Iterable[Tuple[torch.Tensor, torch.Tensor]], device: torch.device,
                      k: int) -> List[float]:
    """Top-1 accuracy (percent) of each of the k models behind `forward`: x -> logits (k, B, classes)."""
    correct = torch.zeros(k, dtype=torch.int64, device=device)
    n = 0
    for x, y in batches:
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        correct += (forward(x).argmax(-1) == y).sum(-1)      # (k,)
        n += y.numel()
    return [100.0 * c / max(n, 1) for c in correct.tolist()]

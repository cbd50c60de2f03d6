"""Fault-aware training of the base model (random bit error training, "RandBET": Stutz et al., "Bit
Error Robustness for Energy-Efficient DNN Accelerators", MLSys 2021; docs/DESIGN.md, "Baselines").

The model-side answer to low-voltage bit errors, the one NeuralFuse claims to avoid: retrain the
classifier so that it tolerates them. Each step draws a fresh fault seed, runs the clean 8-bit model
and the same model with that seed's bit errors in its int8 weights, and minimises

    L = (CE(M(x), y) + CE(M_seed(x), y)) / 2,

where the perturbed pass's weight gradient is applied to the clean float weights (a straight-through
estimator through the faults, models/quant.py). Optional weight clipping (--clip-weights w) keeps every
float weight in [-w, w] after each step: a smaller max|W| gives a smaller Δ and spreads the weights over
more of the int8 range, which the paper above found makes bit errors cost less.

The `train` mode wires it in (train/qat.py): --fault-aware draws one seed a step from a `SeedPlan`
over the EOPM training range (deterministic in (run seed, rank, epoch), so -rt repeats it), with
--fault-model / -ber / -pos / --ecc; --clip-weights W clips after every optimizer step, with or
without --fault-aware. The base checkpoint records how it was trained (`training_record`).

Example:
    metrics = fault_aware_loss(net, model, x, y, FaultConfig("official", 0.01), seed=123)
"""
from __future__ import annotations

from dataclasses import asdict
from typing import Any, Callable, Dict, NamedTuple, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from bitflip import FaultConfig
from bitflip.apply import perturbed
from models.quant import quant_layers


class StepFaults(NamedTuple):
    """What a fault-aware step needs besides the batch: the faults, and where its next seed comes from."""
    fault: FaultConfig
    next_seed: Callable[[], int]


def fault_aware_loss(net: nn.Module, model: nn.Module, x: torch.Tensor, y: torch.Tensor, fault: FaultConfig,
                     seed: int, amp: bool = False, label_smoothing: float = 0.0) -> Dict[str, torch.Tensor]:
    """The step's loss (above, with its graph; each CE with `label_smoothing`) and metrics; `net` runs
    `model` (e.g. its DDP or compiled wrapper), and the faults of `seed` are set on `model` for the
    perturbed pass only."""
    autocast = torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=amp)
    with autocast:
        logits = net(x)                                   # (B, classes), clean quantized weights
    loss_clean = F.cross_entropy(logits.float(), y, label_smoothing=label_smoothing)
    with perturbed(model, fault, seed), autocast:
        logits_p = net(x)                                 # (B, classes), q'·Δ with seed's bit errors
    loss_pert = F.cross_entropy(logits_p.float(), y, label_smoothing=label_smoothing)
    return {"loss": (loss_clean + loss_pert) / 2,
            "acc": 100.0 * (logits.argmax(1) == y).float().mean(),
            "pert_acc": 100.0 * (logits_p.argmax(1) == y).float().mean()}


@torch.no_grad()
def clip_weights_(model: nn.Module, bound: float) -> None:
    """Clamp every quantized layer's float weight to [-bound, bound], in place."""
    for _, layer in quant_layers(model):
        layer.weight.clamp_(-bound, bound)


QAT = "qat"    # `base_training` of a plain QAT run (and of base checkpoints written before the field)


def training_record(fault_aware: bool, fault: FaultConfig, clip: Optional[float]) -> Any:
    """How a base model was trained, as its checkpoint's `base_training` field (models/checkpoint.py
    reads it; results.json repeats it): "qat", or {"fault_aware", "fault" (or None), "clip" (or None)}."""
    if not fault_aware and clip is None:
        return QAT
    return {"fault_aware": fault_aware, "fault": asdict(fault) if fault_aware else None, "clip": clip}

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

Example:
    metrics = fault_aware_step(net, model, x, y, FaultConfig("official", 0.01), seed=123)
"""
from __future__ import annotations

from typing import Dict

import torch
import torch.nn as nn
import torch.nn.functional as F

from bitflip import FaultConfig
from bitflip.apply import perturbed
from models.quant import quant_layers


def fault_aware_loss(net: nn.Module, model: nn.Module, x: torch.Tensor, y: torch.Tensor, fault: FaultConfig,
                     seed: int, amp: bool = False) -> Dict[str, torch.Tensor]:
    """The step's loss (above, with its graph) and metrics; `net` runs `model` (e.g. its DDP or compiled
    wrapper), and the faults of `seed` are set on `model` for the perturbed pass only."""
    autocast = torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=amp)
    with autocast:
        logits = net(x)                                   # (B, classes), clean quantized weights
    loss_clean = F.cross_entropy(logits.float(), y)
    with perturbed(model, fault, seed), autocast:
        logits_p = net(x)                                 # (B, classes), q'·Δ with seed's bit errors
    loss_pert = F.cross_entropy(logits_p.float(), y)
    return {"loss": (loss_clean + loss_pert) / 2,
            "acc": 100.0 * (logits.argmax(1) == y).float().mean(),
            "pert_acc": 100.0 * (logits_p.argmax(1) == y).float().mean()}


@torch.no_grad()
def clip_weights_(model: nn.Module, bound: float) -> None:
    """Clamp every quantized layer's float weight to [-bound, bound], in place."""
    for _, layer in quant_layers(model):
        layer.weight.clamp_(-bound, bound)

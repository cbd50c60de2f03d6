"""An EOPM step (paper Eq. 3-5; docs/DESIGN.md §7) whose N perturbed models cost no per-model fault work.

Same loss, generator gradient and metrics as `train.eopm.eopm_step` (tested in float64), computed the
same way: F(x) once, detached into a leaf z, the clean model and the perturbed models add their ∂L/∂z,
and z's gradient is pushed through G once. What differs is how the perturbed models get their weights
and run:
- the faulty weights of all N seeds come from `BatchedFaults` (bitflip/batched.py): a few device ops
  per layer for the whole step instead of about ten per layer and seed (~2,000 small ops at N = 10 on a
  ResNet18, which kept an H200 waiting on the host);
- with `batch_models` = K > 1 the perturbed passes run K seeds at a time from those stacks under vmap
  (`StackedForward`, compiled with `compile=True`: the stacks are graph inputs, so new seeds reuse the
  graph); with K = N the N forward and input-gradient passes are one pass;
- with K = 1 each model runs from a slice of the stacks through a `WeightedForward` (the `runner`
  given to the call, else an eager one): memory of one model's activations.
The N stacks are held for the whole step: N copies of the base model's weights.

Example:
    step = BatchedEOPMStep(base, fault)
    metrics = step(gen, base, x, y, fault, seeds, lam=5.0, batch_models=10)   # as eopm_step
"""
from __future__ import annotations

from typing import Dict, Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from bitflip import FaultConfig
from bitflip.batched import BatchedFaults
from bitflip.ensemble import StackedForward, WeightedForward


class BatchedEOPMStep:
    """Callable with `train.eopm.eopm_step`'s signature and return, for one (base model, fault config).

    Keeps what is made once per base model: the fault maps' gather indices (`BatchedFaults`) and the
    (optionally compiled) stacked forward.
    """

    def __init__(self, base: nn.Module, fault: FaultConfig, compile: bool = False):
        self.faults = BatchedFaults(base, fault)
        self.stacked = StackedForward(base, compile=compile)
        self.single = WeightedForward(base)

    def __call__(self, gen: nn.Module, base: nn.Module, x: torch.Tensor, y: torch.Tensor, fault: FaultConfig,
                 seeds: Sequence[int], lam: float, batch_models: int = 1, amp: bool = False,
                 runner: Optional[WeightedForward] = None) -> Dict[str, torch.Tensor]:
        """Accumulate ∇L into the generator's .grad for one batch; returns the batch metrics as 0-dim
        tensors (no host sync inside the step). `base` and `fault` must be the ones this step was made for."""
        if base is not self.faults.model or fault != self.faults.cfg:
            raise ValueError("BatchedEOPMStep was made for another base model or fault config; make one per pair")
        if batch_models < 1:
            raise ValueError(f"batch_models must be >= 1, got {batch_models}")
        autocast = torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=amp)
        with autocast:
            fx = gen(x)                                        # (B, 3, H, W), graph through G
        low = fx.dtype in (torch.bfloat16, torch.float16)      # under amp: the base model gets fp32 input
        z = (fx.float() if low else fx).detach().requires_grad_(True)
        with autocast:
            logits = base(z) if runner is None else runner(runner.clean(), z)
        loss_clean = F.cross_entropy(logits.float(), y)
        clean_correct = (logits.argmax(1) == y).sum()
        loss_clean.backward()
        stacked = self.faults.weights(seeds)                   # {'<layer>.weight': (N, *shape)}
        single = runner if runner is not None else self.single
        n = len(seeds)
        pert_loss = torch.zeros((), device=x.device)
        pert_correct = torch.zeros((), device=x.device)
        with autocast:
            for i in range(0, n, batch_models):
                k = min(batch_models, n - i)
                if k == 1:
                    logits_k = single({key: w[i] for key, w in stacked.items()}, z).unsqueeze(0)   # (1, B, C)
                else:
                    logits_k = self.stacked({key: w[i:i + k] for key, w in stacked.items()}, z)  # (k, B, C)
                loss_k = F.cross_entropy(logits_k.flatten(0, 1).float(), y.repeat(k), reduction="sum") / len(y)
                (loss_k * (lam / n)).backward()                # Σ over the chunk of the per-model mean CE
                pert_loss += loss_k.detach()
                pert_correct += (logits_k.argmax(-1) == y).sum()
        fx.backward(z.grad.to(fx.dtype))
        return {"loss": loss_clean.detach() + lam * pert_loss / n,
                "clean_acc": 100 * clean_correct.float() / len(y),
                "pert_acc": 100 * pert_correct.float() / (n * len(y))}

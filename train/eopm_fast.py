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

`resolve_eopm_step` turns --eopm-step (auto, plain, batched, graph) into the step a run uses, and
refuses in one line what a step cannot do; `train.eopm.EOPM_STEPS` builds it.

Example:
    step = BatchedEOPMStep(base, fault)
    metrics = step(gen, base, x, y, fault, seeds, lam=5.0, batch_models=10)   # as eopm_step
"""
from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Callable, Dict, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from bitflip import FaultConfig
from bitflip.batched import BatchedFaults, batched_refusal
from bitflip.ensemble import StackedForward, WeightedForward
from common.errors import UsageError
from config import Configs

STEP_CHOICES = ("auto", "plain", "batched", "graph")    # --eopm-step; auto resolves to plain or batched


def resolve_eopm_step(choice: str, device: torch.device, cfgs: Configs) -> str:
    """The EOPM step a run uses: `choice` itself, or for auto batched on CUDA and plain on CPU (and
    plain wherever batched cannot run: --ecc, --surrogate). A step that cannot run the configuration
    is refused as one UsageError line naming the setting and what to use instead."""
    device = torch.device(device)
    if choice not in STEP_CHOICES:
        raise UsageError(f"--eopm-step {choice!r}: choose {', '.join(STEP_CHOICES)}")
    if choice == "auto":
        return "batched" if device.type == "cuda" and step_refusal("batched", device, cfgs) is None else "plain"
    why = step_refusal(choice, device, cfgs)
    if why is not None:
        raise UsageError(f"--eopm-step {choice}: {why}")
    return choice


def step_refusal(step: str, device: torch.device, cfgs: Configs) -> Optional[str]:
    """Why `step` cannot run on `device` with `cfgs` (one clause with the way out); None when it can."""
    if step == "plain":
        return None
    if step == "graph" and device.type != "cuda":
        return (f"needs a CUDA device (it replays CUDA graphs), this run is on {device}; use --eopm-step batched "
                f"or plain")
    if step == "graph" and cfgs.perf.compile:
        return "does not combine with --compile (both capture the perturbed passes); drop --compile or use " \
               "--eopm-step batched"
    faults = batched_refusal(cfgs.fault)
    if faults is not None:
        return f"{faults}; use --eopm-step plain"
    if cfgs.eopm.surrogates:
        return (f"--surrogate ({len(cfgs.eopm.surrogates)} given) is not implemented by the batched step (it "
                f"holds one base model's fault stacks); use --eopm-step plain")
    return None


def eopm_autocast(device: torch.device, amp: bool) -> AbstractContextManager:
    """bfloat16 autocast under --amp (off otherwise). No cast cache: a CUDA graph may not hold one."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp, cache_enabled=False)


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
            raise ValueError(f"{type(self).__name__} was made for another base model or fault config; make one "
                             f"per pair")
        if batch_models < 1:
            raise ValueError(f"batch_models must be >= 1, got {batch_models}")
        with eopm_autocast(x.device, amp):
            fx = gen(x)                                        # (B, 3, H, W), graph through G
        low = fx.dtype in (torch.bfloat16, torch.float16)      # under amp: the base model gets fp32 input
        z = (fx.float() if low else fx).detach().requires_grad_(True)
        with eopm_autocast(x.device, amp):
            logits = base(z) if runner is None else runner(runner.clean(), z)
        loss_clean = F.cross_entropy(logits.float(), y)
        clean_correct = (logits.argmax(1) == y).sum()
        loss_clean.backward()
        pert_loss, pert_correct = self.perturbed(z, y, seeds, lam, batch_models, amp, runner)
        fx.backward(z.grad.to(fx.dtype))
        n = len(seeds)
        return {"loss": loss_clean.detach() + lam * pert_loss / n,
                "clean_acc": 100 * clean_correct.float() / len(y),
                "pert_acc": 100 * pert_correct.float() / (n * len(y))}

    def perturbed(self, z: torch.Tensor, y: torch.Tensor, seeds: Sequence[int], lam: float, batch_models: int,
                  amp: bool, runner: Optional[WeightedForward]) -> Tuple[torch.Tensor, torch.Tensor]:
        """Add the N perturbed models' (λ/N)·∂CE_k/∂z to z.grad; returns (Σ_k CE_k, Σ_k correct), 0-dim."""
        stacked = self.faults.weights(seeds)                   # {'<layer>.weight': (N, *shape)}
        totals = torch.zeros((), device=z.device), torch.zeros((), device=z.device)
        with eopm_autocast(z.device, amp):
            self.passes(z, y, stacked, lam / len(seeds), batch_models,
                        runner if runner is not None else self.single,
                        lambda loss: loss.backward(), totals)
        return totals

    def passes(self, z: torch.Tensor, y: torch.Tensor, stacked: Dict[str, torch.Tensor], scale: float,
               batch_models: int, single: Callable, add_grad: Callable[[torch.Tensor], None],
               totals: Tuple[torch.Tensor, torch.Tensor]) -> None:
        """The perturbed passes over the N weight sets in `stacked`, K = `batch_models` at a time:
        `add_grad(scale · Σ_chunk CE_k)` per chunk; adds Σ CE_k and the correct count to `totals` in place.
        Shared by the eager step (add_grad = backward into z.grad) and the captured one (train/eopm_graph.py)."""
        n = next(iter(stacked.values())).shape[0]
        pert_loss, pert_correct = totals
        for i in range(0, n, batch_models):
            k = min(batch_models, n - i)
            if k == 1:
                logits_k = single({key: w[i] for key, w in stacked.items()}, z).unsqueeze(0)   # (1, B, C)
            else:
                logits_k = self.stacked({key: w[i:i + k] for key, w in stacked.items()}, z)  # (k, B, C)
            loss_k = F.cross_entropy(logits_k.flatten(0, 1).float(), y.repeat(k), reduction="sum") / len(y)
            add_grad(loss_k * scale)                           # Σ over the chunk of the per-model mean CE
            pert_loss += loss_k.detach()
            pert_correct += (logits_k.argmax(-1) == y).sum()

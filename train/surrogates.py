"""EOPM over several surrogate models at once (paper Table 21; docs/DESIGN.md §15).

In the restricted-access setting the generator is trained on a model the user has (the surrogate) and
used on another one. Table 21 trains it on ResNet18 and VGG19 together, which transfers better across
architectures. Here the base models are [-cp, *--surrogate] (B of them, frozen, each rebuilt from its
own checkpoint's metadata); each step's N training fault seeds are dealt round-robin over them.

Loss per batch, with M_b (b = 0..B-1) the clean quantized base models and s_0..s_{N-1} the step's fault
seeds; perturbed model k carries the bit errors of seed s_k on base model b(k) = k mod B:

    L = (1/B) Σ_b CE(M_b(F(x)), y) + λ · (1/N) Σ_k CE(M_{k mod B}^{s_k}(F(x)), y),   F(x) = clamp(x + G(x), -1, 1)

With B = 1 this is `train.eopm.eopm_step`'s loss, computed the same way: F(x) once, detached into a
leaf z, every model adds its ∂L/∂z, and z's gradient is pushed through G once. N >= B is required, so
that every base model is perturbed in every step. The monitor, best.pt choice and final evaluation
stay on the -cp model (train/eopm.py).

Example:
    python zs_main.py vgg11 transform_eopm_gen cifar10 -cp vgg11.pt --surrogate resnet18.pt -N 10 -G ConvL
    step = SurrogateStep([resnet18])                    # then called as eopm_step(gen, vgg11, x, y, ...)
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, List, NamedTuple, Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from bitflip import FaultConfig
from bitflip.ensemble import WeightedForward, perturbed_logits
from common.ckpt import CheckpointError, load_checkpoint
from common.registry import UnknownName
from common.runs import UsageError
from datasets import get_dataset_info
from models import check_arch, load_base
from models.quant import DEFAULT_BITS


class Surrogate(NamedTuple):
    """One further base model: its checkpoint path, its architecture (from the file) and the frozen model."""
    path: str
    arch: str
    model: nn.Module


def check_enough_models(n_models: int, n_surrogates: int) -> None:
    """Refuse fewer perturbed models per step than base models (one would never be perturbed)."""
    bases = 1 + n_surrogates
    if n_surrogates and n_models < bases:
        raise UsageError(f"-N {n_models}: {bases} base models (-cp and {n_surrogates} --surrogate) need at least "
                         f"{bases} perturbed models per step; give -N >= {bases}")


def _read_arch(path: str, checkpoint: str, dataset: str, bits: int) -> str:
    """The architecture a surrogate checkpoint records, after checking it is a base model that fits the
    command's dataset and --bits; each refusal is one UsageError line naming the file."""
    if not Path(path).is_file():
        raise UsageError(f"--surrogate {path}: no such file; give a base-model checkpoint (a train run's best.pt)")
    if checkpoint and os.path.realpath(path) == os.path.realpath(checkpoint):
        raise UsageError(f"--surrogate {path} is the -cp model; name further base models only")
    try:
        ckpt = load_checkpoint(path)
    except CheckpointError as e:
        raise UsageError(f"--surrogate: {e}") from None
    if ckpt.get("kind") != "base" or not isinstance(ckpt.get("arch"), str):
        raise UsageError(f"--surrogate {path} holds a {ckpt.get('kind', 'unknown')!r} checkpoint without a "
                         f"recorded architecture; give a base model of this code (a train run's best.pt)")
    if ckpt.get("dataset") != dataset:
        raise UsageError(f"--surrogate {path} holds a {ckpt['arch']} trained on {ckpt.get('dataset')}, but the "
                         f"command trains on {dataset}; give a base model of {dataset}")
    if ckpt.get("bits", DEFAULT_BITS) != bits:
        raise UsageError(f"--surrogate {path} holds a {ckpt.get('bits', DEFAULT_BITS)}-bit model, but --bits "
                         f"is {bits}")
    try:
        return check_arch(ckpt["arch"])
    except (UnknownName, UsageError) as e:
        raise UsageError(f"--surrogate {path}: {e}") from None


def _check_fits(model: nn.Module, path: str, arch: str, num_classes: int, size: int, device: torch.device) -> None:
    """One probe image of the dataset's size: the model must take it and give one logit per class."""
    try:
        with torch.no_grad():
            out = model(torch.zeros(1, 3, size, size, device=device))
    except RuntimeError:
        raise UsageError(f"--surrogate {path}: its {arch} does not take {size}x{size} px inputs") from None
    if tuple(out.shape) != (1, num_classes):
        raise UsageError(f"--surrogate {path}: its {arch} gives {out.shape[-1]} outputs, the dataset has "
                         f"{num_classes} classes")


def load_surrogates(paths: Sequence[str], checkpoint: str, dataset: str, bits: int, device: torch.device,
                    channels_last: bool = False) -> List[Surrogate]:
    """The frozen surrogate base models of `paths` (--surrogate), each checked against the dataset's
    classes and input size; NHWC under --channels-last, like the -cp model."""
    info = get_dataset_info(dataset)
    out = []
    for path in paths:
        arch = _read_arch(path, checkpoint, dataset, bits)
        try:
            model = load_base(path, arch, dataset, bits, device, num_classes=info.num_classes,
                              input_size=info.image_size)
        except CheckpointError as e:
            raise UsageError(f"--surrogate: {e}") from None
        _check_fits(model, path, arch, info.num_classes, info.image_size, device)
        if channels_last:
            model = model.to(memory_format=torch.channels_last)
        out.append(Surrogate(str(path), arch, model))
    if len({os.path.realpath(s.path) for s in out}) != len(out):
        raise UsageError("--surrogate names one file twice; name each base model once")
    return out


def surrogate_step(gen: nn.Module, bases: Sequence[nn.Module], x: torch.Tensor, y: torch.Tensor,
                   fault: FaultConfig, seeds: Sequence[int], lam: float, batch_models: int = 1, amp: bool = False,
                   runners: Optional[Sequence[Optional[WeightedForward]]] = None) -> Dict[str, torch.Tensor]:
    """Accumulate ∇L (module docstring) into the generator's .grad for one batch over the base models
    `bases`; seed k runs on bases[k % B]. Returns the batch metrics as 0-dim tensors: the loss, the clean
    accuracy averaged over the B clean models, the perturbed accuracy over all N perturbed ones.
    `runners[b]` (a `WeightedForward` of bases[b], e.g. compiled) runs that model's passes."""
    n, b_count = len(seeds), len(bases)
    if n < b_count:
        raise ValueError(f"{n} fault seeds cannot perturb each of {b_count} base models; need >= {b_count}")
    runners = list(runners) if runners is not None else [None] * b_count
    autocast = torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=amp)
    with autocast:
        fx = gen(x)                                       # (B, 3, H, W), graph through G
    low = fx.dtype in (torch.bfloat16, torch.float16)     # under amp: the base models get fp32 input
    z = (fx.float() if low else fx).detach().requires_grad_(True)   # leaf: each model adds its ∂L/∂F(x)
    clean_loss = torch.zeros((), device=x.device)
    clean_correct = torch.zeros((), device=x.device)
    pert_loss = torch.zeros((), device=x.device)
    pert_correct = torch.zeros((), device=x.device)
    for b, (base, runner) in enumerate(zip(bases, runners)):
        with autocast:
            logits = base(z) if runner is None else runner(runner.clean(), z)
        loss_b = F.cross_entropy(logits.float(), y)
        clean_correct += (logits.argmax(1) == y).sum()
        (loss_b / b_count).backward()
        clean_loss += loss_b.detach()
        with autocast:
            for chunk, logits_k in perturbed_logits(base, z, fault, list(seeds)[b::b_count], batch_models, runner):
                k = len(chunk)                            # logits_k: (k, B, classes)
                loss_k = F.cross_entropy(logits_k.flatten(0, 1).float(), y.repeat(k), reduction="sum") / len(y)
                (loss_k * (lam / n)).backward()           # Σ over the chunk of the per-model mean CE
                pert_loss += loss_k.detach()
                pert_correct += (logits_k.argmax(-1) == y).sum()
    fx.backward(z.grad.to(fx.dtype))
    return {"loss": clean_loss / b_count + lam * pert_loss / n,
            "clean_acc": 100 * clean_correct.float() / (b_count * len(y)),
            "pert_acc": 100 * pert_correct.float() / (n * len(y))}


class SurrogateStep:
    """Callable with `train.eopm.eopm_step`'s signature: `surrogate_step` over [base, *surrogates].

    Holds the surrogate models and, with `compile=True`, a compiled `WeightedForward` of each (the
    -cp model's runner is the one the call is given)."""

    def __init__(self, surrogates: Sequence[nn.Module], compile: bool = False):
        self.models = list(surrogates)
        self.runners = [WeightedForward(m, compile=True) if compile else None for m in self.models]

    def __call__(self, gen: nn.Module, base: nn.Module, x: torch.Tensor, y: torch.Tensor, fault: FaultConfig,
                 seeds: Sequence[int], lam: float, batch_models: int = 1, amp: bool = False,
                 runner: Optional[WeightedForward] = None) -> Dict[str, torch.Tensor]:
        return surrogate_step(gen, [base, *self.models], x, y, fault, seeds, lam, batch_models, amp,
                              [runner, *self.runners])

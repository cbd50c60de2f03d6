"""Perturbed copies of a quantized model (docs/DESIGN.md §5, §7, §8) without copying the model.

`perturb` hands every quantized Conv2d/Linear/ConvTranspose2d its faulty int8 weights through
`layer.set_fault`; the float master weights are never touched, so `clear_faults` restores the clean
model exactly. Layer i (in `quant_layers` order) uses layer_index=i: `official` ignores it (one map,
every layer from row 0, as the released code), `stuckat` / `flip` draw an independent stream per layer.
The clean int8 weights are recomputed from the current float weights on every call (a per-layer
quantization; cheap next to a forward pass), so training the base model never leaves stale faults.

Example:
    with perturbed(model, FaultConfig("official", 0.01), seed=50000):
        logits = model(x)                        # perturbed model M_k
    logits = model(x)                            # clean again, even if the block raised
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch
import torch.nn as nn

from bitflip.faults import FaultConfig, inject_cfg
from models.quant import clear_faults, quant_layers

__all__ = ["perturb", "perturbed", "clear_faults"]


def perturb(model: nn.Module, cfg: FaultConfig, seed: int) -> int:
    """Set fault weights on every quantized layer of `model`; returns the number of layers."""
    named = list(quant_layers(model))
    for name, layer in named:                  # refuse before touching any layer
        if layer.bits != cfg.bits:
            raise ValueError(f"layer {name!r} is quantized to {layer.bits} bits but the fault config "
                             f"says bits={cfg.bits}; build FaultConfig with the model's precision")
    with torch.no_grad():
        for index, (_, layer) in enumerate(named):
            q, _ = layer.int8_weight()                               # clean int8, shape of weight
            layer.set_fault(inject_cfg(q, cfg, seed, layer_index=index))
    return len(named)


@contextmanager
def perturbed(model: nn.Module, cfg: FaultConfig, seed: int) -> Iterator[nn.Module]:
    """Context manager: `model` is the perturbed model inside the block and clean after it."""
    try:
        perturb(model, cfg, seed)
        yield model
    finally:
        clear_faults(model)

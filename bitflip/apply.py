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
from typing import Iterator, List, Tuple

import torch
import torch.nn as nn

from bitflip.faults import FaultConfig, inject_cfg
from models.quant import QuantMixin, quant_layers

__all__ = ["faulty_int8", "perturb", "perturbed", "clear_faults", "fault_layers", "weight_key"]


def fault_layers(model: nn.Module, cfg: FaultConfig) -> List[Tuple[str, QuantMixin]]:
    """(name, layer) of every quantized layer, in the order that gives layer i its layer_index i;
    refuses (ValueError) a layer whose precision is not cfg.bits, before anything is computed."""
    named = list(quant_layers(model))
    for name, layer in named:
        if layer.bits != cfg.bits:
            raise ValueError(f"layer {name!r} is quantized to {layer.bits} bits but the fault config "
                             f"says bits={cfg.bits}; build FaultConfig with the model's precision")
    return named


def weight_key(layer_name: str) -> str:
    """The `functional_call` key of a quantized layer's weight."""
    return f"{layer_name}.weight" if layer_name else "weight"


def faulty_int8(model: nn.Module, cfg: FaultConfig, seed: int) -> List[Tuple[str, QuantMixin, torch.Tensor]]:
    """(name, layer, faulty int8 weights) for every quantized layer of `model` under (cfg, seed)."""
    named = fault_layers(model, cfg)
    with torch.no_grad():
        return [(name, layer, inject_cfg(layer.int8_weight()[0], cfg, seed, layer_index=index))
                for index, (name, layer) in enumerate(named)]


def perturb(model: nn.Module, cfg: FaultConfig, seed: int) -> int:
    """Set fault weights on every quantized layer of `model`; returns the number of layers."""
    faulty = faulty_int8(model, cfg, seed)
    for _, layer, q in faulty:
        layer.set_fault(q)
    return len(faulty)


def clear_faults(model: nn.Module) -> None:
    """Restore the clean weights of every quantized layer of `model` (undoes `perturb`)."""
    for _, layer in quant_layers(model):
        layer.set_fault(None)


@contextmanager
def perturbed(model: nn.Module, cfg: FaultConfig, seed: int) -> Iterator[nn.Module]:
    """Context manager: `model` is the perturbed model inside the block and clean after it."""
    try:
        perturb(model, cfg, seed)
        yield model
    finally:
        clear_faults(model)

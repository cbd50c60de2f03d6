"""Perturbed copies of a quantized model (docs/DESIGN.md §5, §7, §8) without copying the model.

`perturb` hands every quantized Conv2d/Linear/ConvTranspose2d its faulty int8 weights through
`layer.set_fault`; the float master weights are never touched, so `clear_faults` restores the clean
model exactly. Layer i (in `quant_layers` order) uses layer_index=i: `official` ignores it (one map,
every layer from row 0, as the released code), `stuckat` / `flip` draw an independent stream per layer.
The clean int8 weights are recomputed from the current float weights on every call (a per-layer
quantization; cheap next to a forward pass), so training the base model never leaves stale faults.
With cfg.ecc set (--ecc secded), each layer's faulty words then go through that code's decoder
(bitflip/ecc.py `ECC_DECODERS`): every perturbed model is the one the decoder delivers.

Example:
    with perturbed(model, FaultConfig("official", 0.01), seed=50000):
        logits = model(x)                        # perturbed model M_k
    logits = model(x)                            # clean again, even if the block raised
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Dict, Iterator, List, Tuple

import torch
import torch.nn as nn

from bitflip.ecc import ECC_DECODERS, word_counts
from bitflip.faults import FaultConfig, inject_cfg, is_clean
from models.quant import QuantMixin, quant_layers

__all__ = ["faulty_int8", "faulty_layer", "ecc_word_counts", "perturb", "perturbed", "clear_faults",
           "fault_layers", "weight_key"]


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


def faulty_layer(q: torch.Tensor, cfg: FaultConfig, seed: int, layer_index: int) -> torch.Tensor:
    """Layer `layer_index`'s int8 weights q as read under (cfg, seed): the faults, then cfg.ecc's decoder."""
    faulty = inject_cfg(q, cfg, seed, layer_index)
    if cfg.ecc == "none" or is_clean(cfg):                # ber 0: nothing to correct
        return faulty
    return ECC_DECODERS[cfg.ecc](q, faulty, cfg, seed, layer_index).q


def faulty_int8(model: nn.Module, cfg: FaultConfig, seed: int) -> List[Tuple[str, QuantMixin, torch.Tensor]]:
    """(name, layer, faulty int8 weights, decoded if cfg.ecc) for every quantized layer of `model`."""
    named = fault_layers(model, cfg)
    with torch.no_grad():
        return [(name, layer, faulty_layer(layer.int8_weight()[0], cfg, seed, index))
                for index, (name, layer) in enumerate(named)]


def ecc_word_counts(model: nn.Module, cfg: FaultConfig, seed: int) -> Dict[str, int]:
    """`bitflip.ecc.word_counts` summed over the quantized layers of `model` under (cfg, seed), cfg.ecc set.

    Draws the same faults as `faulty_int8` (same seeds, same bits) a second time: the perturbed passes
    need only the weights, so the counting is kept out of that hot path."""
    if cfg.ecc == "none":
        raise ValueError("ecc_word_counts needs a FaultConfig with an error-correcting code (ecc != 'none')")
    total: Dict[str, int] = {}
    with torch.no_grad():
        for index, (_, layer) in enumerate(fault_layers(model, cfg)):
            q = layer.int8_weight()[0]
            faulty = inject_cfg(q, cfg, seed, index)
            counts = word_counts(q, faulty, ECC_DECODERS[cfg.ecc](q, faulty, cfg, seed, index))
            total = {k: total.get(k, 0) + v for k, v in counts.items()}
    return total


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

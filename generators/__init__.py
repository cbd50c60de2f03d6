"""NeuralFuse generator zoo (docs/DESIGN.md §6): `get_generator(name)` and `list_generators()`.

A generator module computes F(x) = clamp(x + G(x), -1, 1) on inputs in [-1, 1] (paper Eq. 1); the
raw residual G is `module.G` (also `module.residual(x)`). Every Conv2d / ConvTranspose2d of G is
8-bit fake-quantized like the base models (docs/DESIGN.md §4) and is never touched by the fault models.

Families are code, variants are data: `generators/conv.py` builds ConvL/ConvS/DeConvL/DeConvS from
layer lists, `generators/unet.py` builds UNetL/UNetS from a width tuple, `generators/uip.py` the
universal input perturbation baseline UIP (paper Table 11), the one generator tied to an input size.

Example:
    from generators import get_generator
    gen = get_generator("ConvL")                  # 723,273 parameters
    x_fused = gen(x)                              # same shape as x, values in [-1, 1]
"""
from __future__ import annotations

from typing import Any, Mapping, Optional, Tuple

import torch
import torch.nn as nn

from common.registry import Registry
from models.quant import DEFAULT_BITS, quantize_

GENERATORS = Registry("generator")


class NeuralFuse(nn.Module):
    """Wraps a residual network G: forward(x) = clamp(x + G(x), -1, 1) (docs/DESIGN.md §6)."""

    def __init__(self, G: nn.Module):
        super().__init__()
        self.G = G

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        return self.G(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.clamp(x + self.G(x), -1.0, 1.0)  # (B, 3, H, W)


# Importing the family modules registers their variants (in the order list_generators() reports).
from generators import conv, unet, uip  # noqa: E402,F401


def get_generator(name: str, bits: int = DEFAULT_BITS, input_size: Optional[int] = None,
                  **options) -> NeuralFuse:
    """Build generator `name` wrapped as F(x) = clamp(x + G(x), -1, 1), weights quantized to `bits`.

    `input_size` (pixels per side, e.g. 32 or 224) is required by generators registered `sized`
    (UIP) and ignored by the fully convolutional ones, which take any size divisible by 8.
    `options` go to the family builder (e.g. `up_padding=0` for the UNets, see generators/unet.py).
    """
    builder = GENERATORS.get(name)
    if GENERATORS.meta(name).get("sized", False):
        if input_size is None:
            raise ValueError(f"generator {name!r} is tied to one input size: pass input_size "
                             f"(32 for the 32 px datasets, 224 for imagenet224)")
        options = {**options, "input_size": input_size}
    return quantize_(NeuralFuse(builder(**options)), bits)


def list_generators(**where) -> list:
    """Registered names; keyword filters on the metadata, e.g. list_generators(family='unet')."""
    return GENERATORS.names(**where)


def generator_info(name: str) -> Mapping[str, Any]:
    """Registry metadata of `name`: family ('conv' / 'deconv' / 'unet' / 'perturbation'),
    bounded_residual (|G(x)| <= 1: ends in tanh), options (builder keywords it accepts), and for UIP
    sized=True (needs `input_size`) and size_from_state (reads it from a state dict)."""
    return GENERATORS.meta(name)


def load_generator(path: str, device: torch.device) -> Tuple[NeuralFuse, dict]:
    """The frozen generator of checkpoint `path` (rebuilt from its own 'generator' and 'bits' fields)
    and the checkpoint dict. Checkpoints without 'bits' are DEFAULT_BITS. A sized generator (UIP)
    takes its input size from the saved tensor's shape."""
    from common.ckpt import CheckpointError, load_checkpoint, load_state
    ckpt = load_checkpoint(path, kind="generator")
    size_from_state = GENERATORS.meta(ckpt["generator"]).get("size_from_state")
    try:
        size = size_from_state(ckpt["state_dict"]) if size_from_state is not None else None
    except ValueError as e:  # a state dict without the tensor that gives the size
        raise CheckpointError(f"{path}: {e}") from None
    gen = get_generator(ckpt["generator"], bits=ckpt.get("bits", DEFAULT_BITS), input_size=size)
    load_state(gen, ckpt["state_dict"], path)
    return gen.to(device).eval().requires_grad_(False), ckpt


__all__ = ["get_generator", "list_generators", "generator_info", "load_generator", "GENERATORS",
           "NeuralFuse"]

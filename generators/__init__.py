"""NeuralFuse generator zoo (docs/DESIGN.md §6): `get_generator(name)` and `list_generators()`.

A generator module computes F(x) = clamp(x + G(x), -1, 1) on inputs in [-1, 1] (paper Eq. 1); the
raw residual G is `module.G` (also `module.residual(x)`). Every Conv2d / ConvTranspose2d of G is
8-bit fake-quantized like the base models (docs/DESIGN.md §4) and is never touched by the fault models.

Families are code, variants are data: `generators/conv.py` builds ConvL/ConvS/DeConvL/DeConvS from
layer lists, `generators/unet.py` builds UNetL/UNetS from a width tuple.

Example:
    from generators import get_generator
    gen = get_generator("ConvL")                  # 723,273 parameters
    x_fused = gen(x)                              # same shape as x, values in [-1, 1]
"""
from __future__ import annotations

from typing import Any, Mapping, Tuple

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
from generators import conv, unet  # noqa: E402,F401


def get_generator(name: str, bits: int = DEFAULT_BITS, **options) -> NeuralFuse:
    """Build generator `name` wrapped as F(x) = clamp(x + G(x), -1, 1), weights quantized to `bits`.

    `options` go to the family builder (e.g. `up_padding=0` for the UNets, see generators/unet.py).
    """
    return quantize_(NeuralFuse(GENERATORS.get(name)(**options)), bits)


def list_generators(**where) -> list:
    """Registered names; keyword filters on the metadata, e.g. list_generators(family='unet')."""
    return GENERATORS.names(**where)


def generator_info(name: str) -> Mapping[str, Any]:
    """Registry metadata of `name`: family ('conv' / 'deconv' / 'unet'), bounded_residual (G(x) ends in
    tanh), options (builder keywords it accepts)."""
    return GENERATORS.meta(name)


def load_generator(path: str, device: torch.device) -> Tuple[NeuralFuse, dict]:
    """The frozen generator of checkpoint `path` (rebuilt from its own 'generator' and 'bits' fields)
    and the checkpoint dict. Checkpoints without 'bits' are DEFAULT_BITS."""
    from common.ckpt import load_checkpoint, load_state
    ckpt = load_checkpoint(path, kind="generator")
    gen = get_generator(ckpt["generator"], bits=ckpt.get("bits", DEFAULT_BITS))
    load_state(gen, ckpt["state_dict"], path)
    return gen.to(device).eval().requires_grad_(False), ckpt


__all__ = ["get_generator", "list_generators", "generator_info", "load_generator", "GENERATORS",
           "NeuralFuse"]

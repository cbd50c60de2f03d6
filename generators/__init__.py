"""NeuralFuse generator zoo (SPEC §6): `get_generator(name)` and `list_generators()`.

A generator module computes F(x) = clamp(x + G(x), -1, 1) on inputs in [-1, 1] (paper Eq. 1); the
raw residual G is `module.G` (also `module.residual(x)`). Every Conv2d / ConvTranspose2d of G is
8-bit fake-quantized like the base models (SPEC §4) and is never touched by the fault models.

Families are code, variants are data: `generators/conv.py` builds ConvL/ConvS/DeConvL/DeConvS from
layer lists, `generators/unet.py` builds UNetL/UNetS from a width tuple.

Example:
    from generators import get_generator
    gen = get_generator("ConvL")                  # 723,273 parameters
    x_fused = gen(x)                              # same shape as x, values in [-1, 1]
"""
from __future__ import annotations

import torch
import torch.nn as nn

from common.registry import Registry
from models.quant import DEFAULT_BITS, quantize_

GENERATORS = Registry("generator")


class NeuralFuse(nn.Module):
    """Wraps a residual network G: forward(x) = clamp(x + G(x), -1, 1) (SPEC §6)."""

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


def list_generators() -> list:
    return GENERATORS.names()


__all__ = ["get_generator", "list_generators", "GENERATORS", "NeuralFuse"]

"""Universal input perturbation (UIP), the input-independent baseline of paper Table 11 (docs/DESIGN.md §14).

One learned tensor p of one input's shape (3, H, W), the same for every image:

    G(x) = tanh(p)   (broadcast over the batch)      F(x) = clamp(x + tanh(p), -1, 1)

so it plugs into the zoo's `NeuralFuse` wrapper like every other generator and is trained by EOPM
unchanged. It has 3·H·W parameters (3,072 at 32 px, 150,528 at 224 px), no layers, 0 MACs and 0
weight-memory accesses in the energy model (eval/energy.py counts conv / linear weights only, as it
does not count the BatchNorm or bias parameters of the other generators). p stays float: there is no
conv or linear layer for the 8-bit quantizer to act on. p starts at 0, so F starts as the identity.

Unlike the fully convolutional generators, UIP is tied to one input size: build it with
`get_generator("UIP", input_size=32)`; `load_generator` reads the size back from the state dict.

Example:
    from generators import get_generator
    uip = get_generator("UIP", input_size=32)        # 3,072 parameters
    x_fused = uip(x)                                 # x: (B, 3, 32, 32) in [-1, 1]
"""
from __future__ import annotations

import numbers
from typing import Mapping

import torch
import torch.nn as nn

from generators import GENERATORS

IN_CH = 3          # RGB inputs, as every dataset of the zoo
STATE_KEY = "G.p"  # the perturbation's name in a `NeuralFuse`-wrapped state dict


class UniversalPerturbation(nn.Module):
    """G(x) = tanh(p) for a learned p of shape (1, 3, H, W), expanded to x's batch."""

    def __init__(self, input_size: int, in_ch: int = IN_CH):
        super().__init__()
        if isinstance(input_size, bool) or not isinstance(input_size, numbers.Integral) or input_size < 1:
            raise ValueError(f"UIP input_size must be a positive integer (e.g. 32 or 224), got {input_size!r}")
        self.p = nn.Parameter(torch.zeros(1, in_ch, int(input_size), int(input_size)))  # (1, 3, H, W)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1:] != self.p.shape[1:]:
            raise ValueError(f"UIP was built for inputs of shape {tuple(self.p.shape[1:])}, "
                             f"got {tuple(x.shape[1:])}")
        return torch.tanh(self.p).expand_as(x)  # (B, 3, H, W) in (-1, 1), the same for every image


def input_size_of(state_dict: Mapping[str, torch.Tensor]) -> int:
    """The input size a saved UIP was built for (the side of its (1, 3, H, W) perturbation)."""
    if STATE_KEY not in state_dict:
        raise ValueError(f"not a UIP state dict: no {STATE_KEY!r} among {sorted(state_dict)[:5]}")
    return int(state_dict[STATE_KEY].shape[-1])


# `sized`: the builder needs `input_size`; `size_from_state` recovers it from a checkpoint.
@GENERATORS.register("UIP", family="perturbation", bounded_residual=True, options=(), sized=True,
                     size_from_state=input_size_of)
def uip(input_size: int) -> UniversalPerturbation:
    return UniversalPerturbation(input_size)

"""Convolution-based and deconvolution-based NeuralFuse generators (docs/DESIGN.md §6; paper App. B).

Both families are plain encoder-decoder stacks, so one builder reads a layer list:
    int n   CBR to n channels: Conv 3x3 s1 p1 (bias) -> BatchNorm -> ReLU
    "M"     MaxPool2d(2)
    "U"     nearest x2 Upsample
    "Tn"    DBR to n channels: ConvTranspose 4x4 s2 p1 (bias) -> BatchNorm -> ReLU  (doubles H, W)
and ends with a head to 3 channels -> BatchNorm(3) -> tanh, where the head is a Conv 3x3 s1 p1
(Conv family) or a ConvTranspose 4x4 s2 p1 (DeConv family). Each layer list halves the size three
times and doubles it three times, so any input size divisible by 8 comes back unchanged.

Example:
    from generators import get_generator
    G = get_generator("DeConvS").G                # 156,777 parameters
"""
from __future__ import annotations

from typing import Sequence, Union

import torch
import torch.nn as nn

from generators import GENERATORS

Token = Union[int, str]

# Layer lists, read left to right (docs/DESIGN.md §6). The DeConv encoders are the Conv encoders.
CONV_L = (32, 32, "M", 64, 64, "M", 128, 128, "M",
          128, "U", 128, 64, "U", 64, 32, "U", 32)
CONV_S = (32, "M", 64, "M", 64, "M",
          64, "U", 32, "U", 3, "U")
DECONV_L = (32, 32, "M", 64, 64, "M", 128, 128, "M",
            128, "T64", 64, "T32", 32)
DECONV_S = (32, "M", 64, "M", 64, "M",
            "T64", "T32")


def cbr(c_in: int, c_out: int) -> nn.Sequential:
    """Conv 3x3 s1 p1 with bias, BatchNorm, ReLU (a ReLU module, so MAC counting sees it)."""
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, 1, 1, bias=True), nn.BatchNorm2d(c_out),
                         nn.ReLU(inplace=True))


def dbr(c_in: int, c_out: int) -> nn.Sequential:
    """ConvTranspose 4x4 s2 p1 with bias (H -> 2H), BatchNorm, ReLU."""
    return nn.Sequential(nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=True), nn.BatchNorm2d(c_out),
                         nn.ReLU(inplace=True))


class EncoderDecoder(nn.Module):
    """G(x) for the Conv/DeConv families: `body` from a layer list, then `head` to 3 channels + tanh."""

    def __init__(self, layers: Sequence[Token], head: str, in_ch: int = 3):
        super().__init__()
        blocks, c = [], in_ch
        for tok in layers:
            if tok == "M":
                blocks.append(nn.MaxPool2d(2))
            elif tok == "U":
                blocks.append(nn.Upsample(scale_factor=2, mode="nearest"))
            elif isinstance(tok, str) and tok.startswith("T"):
                blocks.append(dbr(c, int(tok[1:])))
                c = int(tok[1:])
            elif isinstance(tok, int):
                blocks.append(cbr(c, tok))
                c = tok
            else:
                raise ValueError(f"unknown layer token {tok!r}")
        self.body = nn.Sequential(*blocks)
        if head == "conv":
            out = nn.Conv2d(c, in_ch, 3, 1, 1, bias=True)
        elif head == "deconv":
            out = nn.ConvTranspose2d(c, in_ch, 4, 2, 1, bias=True)
        else:
            raise ValueError(f"head must be 'conv' or 'deconv', got {head!r}")
        self.head = nn.Sequential(out, nn.BatchNorm2d(in_ch), nn.Tanh())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))  # (B, 3, H, W) in (-1, 1)


# name -> (layer list, output head): the four variants are data over one builder.
VARIANTS = {"ConvL": (CONV_L, "conv"), "ConvS": (CONV_S, "conv"),
            "DeConvL": (DECONV_L, "deconv"), "DeConvS": (DECONV_S, "deconv")}


def _register(name: str, layers, head: str) -> None:
    # the tanh head bounds the residual G(x) to [-1, 1]
    GENERATORS.register(name, family=head, bounded_residual=True, options=())(
        lambda: EncoderDecoder(layers, head=head))


for _name, (_layers, _head) in VARIANTS.items():
    _register(_name, _layers, _head)

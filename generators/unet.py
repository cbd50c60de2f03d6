"""UNet-based NeuralFuse generators UNetL / UNetS (docs/DESIGN.md §6; paper App. B).

    DoubleConv(a, b) = [Conv 3x3 p1 (no bias) -> BatchNorm -> ReLU] x 2
    inc    DC 3 -> w0
    down   MaxPool2d(2) -> DC, widths w0 -> w1 -> w2 -> w3
    up     ConvTranspose(c -> c/2, kernel 2, stride 2, padding p, bias), zero-pad to the skip's size,
           concat [skip, up], DC(c -> c/2); three times back to w0
    out    Conv 1x1 w0 -> 3 with bias (no BatchNorm, no tanh)
UNetL uses widths (16, 32, 64, 128), UNetS (8, 16, 32, 64).

`up_padding` (default 1) is the released code's setting: the up-convolution then gives 2H-2 pixels,
cropping one pixel off every border of the exact 2x result, and the zero-padding puts a 1-pixel zero
frame around it. `up_padding=0` is the exact 2x up-convolution (2H pixels, nothing padded). Both
variants have the same parameters; only the up-convolution MACs differ. The paper's MAC figures
(Table 7) correspond to `up_padding=0`; with the default they come out about 4% lower (docs/DESIGN.md §10).

Example:
    from generators import get_generator
    exact = get_generator("UNetL", up_padding=0)   # the variant the paper's MAC table counts
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from generators import GENERATORS

UNET_L = (16, 32, 64, 128)
UNET_S = (8, 16, 32, 64)
RELEASED_UP_PADDING = 1  # IBM/NeuralFuse's up-convolution padding (gives 2H-2 pixels)


def double_conv(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, 1, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
        nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
    )


class Up(nn.Module):
    """Up-convolution c -> c/2, zero-pad to the skip's size, concat [skip, up], DoubleConv(c -> c/2)."""

    def __init__(self, c_in: int, c_out: int, up_padding: int):
        super().__init__()
        self.up = nn.ConvTranspose2d(c_in, c_out, kernel_size=2, stride=2, padding=up_padding, bias=True)
        self.conv = double_conv(2 * c_out, c_out)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = self.up(x)  # (B, c/2, 2H - 2p, 2W - 2p)
        dh, dw = skip.shape[2] - x.shape[2], skip.shape[3] - x.shape[3]
        if dh or dw:  # a negative difference crops, which cannot happen for p in {0, 1}
            x = F.pad(x, [dw // 2, dw - dw // 2, dh // 2, dh - dh // 2])
        return self.conv(torch.cat([skip, x], dim=1))  # (B, c/2, 2H, 2W)


class UNet(nn.Module):
    """G(x) for the UNet family with encoder widths `widths` (4 levels)."""

    def __init__(self, widths: Sequence[int], up_padding: int = RELEASED_UP_PADDING, in_ch: int = 3):
        super().__init__()
        if up_padding not in (0, 1):
            raise ValueError(f"up_padding must be 0 (exact 2x) or 1 (released code), got {up_padding}")
        self.inc = double_conv(in_ch, widths[0])
        self.down = nn.ModuleList(nn.Sequential(nn.MaxPool2d(2), double_conv(a, b))
                                  for a, b in zip(widths[:-1], widths[1:]))
        self.up = nn.ModuleList(Up(b, a, up_padding) for a, b in zip(widths[-2::-1], widths[:0:-1]))
        self.outc = nn.Conv2d(widths[0], in_ch, kernel_size=1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = [self.inc(x)]  # (B, w0, H, W)
        for down in self.down:
            skips.append(down(skips[-1]))  # last: (B, w3, H/8, W/8)
        x = skips.pop()
        for up in self.up:
            x = up(x, skips.pop())
        return self.outc(x)  # (B, 3, H, W), unbounded (no tanh)


# no tanh: the UNet residual is unbounded; `up_padding` is the one builder option
UNET_META = dict(family="unet", bounded_residual=False, options=("up_padding",))


@GENERATORS.register("UNetL", **UNET_META)
def unet_l(up_padding: int = RELEASED_UP_PADDING) -> UNet:
    return UNet(UNET_L, up_padding)


@GENERATORS.register("UNetS", **UNET_META)
def unet_s(up_padding: int = RELEASED_UP_PADDING) -> UNet:
    return UNet(UNET_S, up_padding)

"""CIFAR-style ResNet18/50 (docs/DESIGN.md §4): 3x3 stride-1 stem without max-pool, for 32 px inputs.

One `ResNet` class; the depths are data ((block, layers) per name). Inside the blocks each ReLU call
site is its own nn.ReLU module, while the stem ReLU and the global average pool are functional: the
paper counted MACs with ptflops, which sees modules only, and this layout reproduces its Table 7
(ResNet18 557.14M, ResNet50 1.31G) exactly.

Example:
    from models import get_model
    net = get_model("resnet18", num_classes=10)   # 11,173,962 parameters
"""
from __future__ import annotations

from typing import List, Type, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

from models import CIFAR_INPUT, MODELS


def _shortcut(in_ch: int, out_ch: int, stride: int) -> nn.Module:
    """1x1 conv + BN when the shape changes, identity otherwise."""
    if stride == 1 and in_ch == out_ch:
        return nn.Sequential()
    return nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, stride, bias=False), nn.BatchNorm2d(out_ch))


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, in_ch: int, ch: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, ch, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(ch)
        self.conv2 = nn.Conv2d(ch, ch, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(ch)
        self.shortcut = _shortcut(in_ch, ch, stride)
        self.relu1, self.relu2 = nn.ReLU(), nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu2(out + self.shortcut(x))  # ReLU after the residual add


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, in_ch: int, ch: int, stride: int = 1):
        super().__init__()
        out_ch = ch * self.expansion
        self.conv1 = nn.Conv2d(in_ch, ch, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(ch)
        self.conv2 = nn.Conv2d(ch, ch, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(ch)
        self.conv3 = nn.Conv2d(ch, out_ch, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_ch)
        self.shortcut = _shortcut(in_ch, out_ch, stride)
        self.relu1, self.relu2, self.relu3 = nn.ReLU(), nn.ReLU(), nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.relu2(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu3(out + self.shortcut(x))


Block = Type[Union[BasicBlock, Bottleneck]]


class ResNet(nn.Module):
    """Stem conv3x3(64) + BN + ReLU, four stages (64/128/256/512, strides 1/2/2/2), GAP, Linear."""

    def __init__(self, block: Block, layers: List[int], num_classes: int):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        stages, in_ch = [], 64
        for i, (ch, n) in enumerate(zip((64, 128, 256, 512), layers)):
            blocks = []
            for j in range(n):
                stride = 2 if (i > 0 and j == 0) else 1
                blocks.append(block(in_ch, ch, stride))
                in_ch = ch * block.expansion
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.linear = nn.Linear(512 * block.expansion, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (B, 3, 32, 32)
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        out = F.adaptive_avg_pool2d(out, 1).flatten(1)  # (B, 512·expansion)
        return self.linear(out)  # (B, classes)


_DEPTHS = {"resnet18": (BasicBlock, [2, 2, 2, 2]), "resnet50": (Bottleneck, [3, 4, 6, 3])}


def _register(name: str, block: Block, layers: List[int]) -> None:
    MODELS.register(name, family="resnet", style="cifar", input_size=CIFAR_INPUT)(
        lambda num_classes: ResNet(block, layers, num_classes))


for _name, (_block, _layers) in _DEPTHS.items():
    _register(_name, _block, _layers)

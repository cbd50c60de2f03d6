"""CIFAR-style VGG11/16/19 with BatchNorm (docs/DESIGN.md §4): configs A/D/E, global average pool, one Linear.

Example:
    from models import get_model
    net = get_model("vgg16", num_classes=43)
"""
from __future__ import annotations

from typing import List, Union

import torch
import torch.nn as nn

from models import CIFAR_INPUT, MODELS

# Channel counts per conv; "M" is a 2x2 max-pool (Simonyan & Zisserman configs A, D, E).
CONFIGS = {
    "vgg11": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    "vgg19": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
              512, 512, 512, 512, "M"],
}


class VGG(nn.Module):
    def __init__(self, cfg: List[Union[int, str]], num_classes: int):
        super().__init__()
        layers: List[nn.Module] = []
        in_ch = 3
        for v in cfg:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(in_ch, v, 3, padding=1), nn.BatchNorm2d(v), nn.ReLU(inplace=True)]
                in_ch = v
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)  # 1x1 already at 32 px
        self.classifier = nn.Linear(512, num_classes)
        self._init()

    def _init(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (B, 3, 32, 32)
        return self.classifier(torch.flatten(self.pool(self.features(x)), 1))


def _register(name: str, cfg: List[Union[int, str]]) -> None:
    MODELS.register(name, family="vgg", style="cifar", input_size=CIFAR_INPUT)(
        lambda num_classes: VGG(cfg, num_classes))


for _name, _cfg in CONFIGS.items():
    _register(_name, _cfg)

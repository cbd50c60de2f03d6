"""Quantized classifier zoo (SPEC §4): `get_model(name, num_classes)` and `list_models()`.

Example:
    from models import get_model
    net = get_model("resnet18", num_classes=10)    # 8-bit QAT ResNet18 for 32 px inputs
"""
from __future__ import annotations

import torch.nn as nn

from common.registry import Registry
from models.quant import DEFAULT_BITS, quant_layers, quantize_

MODELS = Registry("architecture")

# Importing the family modules registers their variants.
from models import resnet, vgg, torchvision_style  # noqa: E402,F401


def get_model(name: str, num_classes: int, bits: int = DEFAULT_BITS) -> nn.Module:
    """Build architecture `name` with `num_classes` outputs, every Conv2d/Linear quantized to `bits`."""
    return quantize_(MODELS.get(name)(num_classes=num_classes), bits)


def list_models() -> list:
    return MODELS.names()


__all__ = ["get_model", "list_models", "quant_layers", "MODELS"]

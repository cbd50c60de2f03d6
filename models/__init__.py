"""Quantized classifier zoo (docs/DESIGN.md §4): `get_model(name, num_classes)` and `list_models()`.

Registry metadata per architecture: `family` ('resnet' / 'vgg'), `style` ('cifar': 3x3 stem for
32 px inputs; 'torchvision': the ImageNet definitions) and `input_size` (pixels per side it is meant for).

Example:
    from models import get_model, list_models
    net = get_model("resnet18", num_classes=10)    # 8-bit QAT ResNet18 for 32 px inputs
    list_models(input_size=224)                    # the torchvision-style ...Py variants
"""
from __future__ import annotations

from typing import Any, List, Mapping, Optional

import torch.nn as nn

from common.registry import Registry
from models.quant import DEFAULT_BITS, quant_layers, quantize_

MODELS = Registry("architecture")
CIFAR_INPUT = 32        # pixels per side of the CIFAR-style models' inputs (CIFAR, GTSRB)
IMAGENET_INPUT = 224    # pixels per side of the torchvision-style models' inputs (ImageNet-10)

# Importing the family modules registers their variants.
from models import resnet, vgg, torchvision_style  # noqa: E402,F401
from models.checkpoint import base_checkpoint_meta, base_training, load_base  # noqa: E402
from models.external import PREFIX as EXTERNAL_PREFIX, build_torchvision, check_name, is_external  # noqa: E402


def get_model(name: str, num_classes: int, bits: int = DEFAULT_BITS, input_size: Optional[int] = None
              ) -> nn.Module:
    """Build architecture `name` with `num_classes` outputs, every Conv2d/Linear quantized to `bits`.

    `name` may also be torchvision:NAME (models/external.py), built for `input_size` px inputs (default 224).
    """
    if is_external(name):
        return quantize_(build_torchvision(name, num_classes, input_size or IMAGENET_INPUT), bits)
    return quantize_(MODELS.get(name)(num_classes=num_classes), bits)


def check_arch(name: str) -> str:
    """`name` if it is a registered architecture or torchvision:NAME; else UnknownName / ExternalModelError."""
    if is_external(name):
        return check_name(name)
    MODELS.get(name)
    return name


def list_models(**where: Any) -> List[str]:
    """Registered names; keyword filters on the metadata, e.g. list_models(style='cifar')."""
    return MODELS.names(**where)


def model_info(name: str) -> Mapping[str, Any]:
    """The registry metadata of `name` (family, style, input_size)."""
    return MODELS.meta(name)


__all__ = ["get_model", "check_arch", "is_external", "EXTERNAL_PREFIX", "list_models", "model_info", "quant_layers", "MODELS",
           "load_base", "base_checkpoint_meta", "base_training"]

"""torchvision-style classifiers (`...Py`, docs/DESIGN.md §4) for 224 px ImageNet-10.

These wrap torchvision's own definitions (7x7 stride-2 stem + max-pool ResNets; VGG with BN,
AdaptiveAvgPool(7,7) and the 25088-4096-4096-classes classifier with dropout) rather than copying
them; quantization is applied by `models.get_model` like for every other architecture.

Example:
    from models import get_model
    net = get_model("resnet18Py", num_classes=10)   # 11,181,642 parameters
"""
from __future__ import annotations

from torchvision import models as tvm

from models import IMAGENET_INPUT, MODELS

# name -> (torchvision builder, family)
_BUILDERS = {
    "resnet18Py": (tvm.resnet18, "resnet"),
    "resnet50Py": (tvm.resnet50, "resnet"),
    "vgg11Py": (tvm.vgg11_bn, "vgg"),
    "vgg16Py": (tvm.vgg16_bn, "vgg"),
    "vgg19Py": (tvm.vgg19_bn, "vgg"),
}


def _register(name: str, builder, family: str) -> None:
    MODELS.register(name, family=family, style="torchvision", input_size=IMAGENET_INPUT)(
        lambda num_classes: builder(weights=None, num_classes=num_classes))


for _name, (_builder, _family) in _BUILDERS.items():
    _register(_name, _builder, _family)

"""Your own classifier: `ARCH = torchvision:NAME`, any torchvision classification builder.

NeuralFuse protects a classifier that is *not* retrained. `torchvision:NAME` builds
`torchvision.models.NAME(weights=None, num_classes=<dataset's classes>)` (with `image_size` when the
builder needs one for the dataset's input size, as ViTs do), checks one forward pass at the dataset's
input size and quantizes it with the zoo's 8-bit per-tensor quantizer (models/quant.py `quantize_`).
`-cp` is then either our base checkpoint (a `train` run of that ARCH) or a plain float `state_dict`
file (`torch.save(model.state_dict(), path)`, also inside a {"state_dict": ...} or {"model": ...}
dict): the float weights are loaded and quantized post-training; nothing is fine-tuned.

Example:
    python zs_main.py torchvision:mobilenet_v3_small transform_eval cifar10 -cp my_mobilenet.pt
"""
from __future__ import annotations

import functools
from pathlib import Path
from typing import Dict, Optional, Tuple

import torch
import torch.nn as nn

from common.errors import UsageError

PREFIX = "torchvision:"


class ExternalModelError(UsageError):
    """A torchvision name, input size or weight file that does not fit (a user error: one line, exit 2)."""


@functools.lru_cache(maxsize=1)
def torchvision_names() -> Tuple[str, ...]:
    """torchvision's classification builders (detection, segmentation, video models excluded)."""
    import torchvision
    return tuple(torchvision.models.list_models(module=torchvision.models))


def is_external(arch: str) -> bool:
    return isinstance(arch, str) and arch.startswith(PREFIX)


def check_name(arch: str) -> str:
    """`arch` if it is torchvision:NAME of a classification builder; else ExternalModelError."""
    name = arch[len(PREFIX):]
    if name not in torchvision_names():
        near = [n for n in torchvision_names() if n.startswith(name[:3])] or list(torchvision_names()[:8])
        raise ExternalModelError(f"unknown torchvision classifier {name!r}; e.g. {', '.join(near[:8])} "
                                 f"(torchvision.models.list_models(module=torchvision.models))")
    return arch


def _fits(model: nn.Module, image_size: int) -> Optional[str]:
    """None if `model` maps a (1, 3, s, s) batch to (1, classes) logits; else why not."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(torch.zeros(1, 3, image_size, image_size))
    except Exception as e:  # shape errors come as RuntimeError, ValueError, AssertionError
        return f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
    finally:
        model.train(was_training)
    return None if isinstance(out, torch.Tensor) and out.dim() == 2 else \
        f"returns {type(out).__name__}, not a logits tensor (turn auxiliary outputs off)"


def build_torchvision(arch: str, num_classes: int, image_size: int) -> nn.Module:
    """The float torchvision model for `num_classes` classes and image_size x image_size inputs."""
    import torchvision
    builder = torchvision.models.get_model_builder(check_name(arch)[len(PREFIX):])
    model = builder(weights=None, num_classes=num_classes)
    why = _fits(model, image_size)
    if why is not None:
        try:                                      # builders with a fixed input size (ViT) take it
            sized = builder(weights=None, num_classes=num_classes, image_size=image_size)
            if _fits(sized, image_size) is None:
                return sized
        except (TypeError, ValueError):
            pass
        raise ExternalModelError(f"{arch} does not take {image_size}x{image_size} inputs ({why}); choose "
                                 f"another model or a dataset with larger images")
    return model


def read_float_state_dict(path: str) -> Optional[Dict[str, torch.Tensor]]:
    """The float state_dict in `path`, or None when `path` is one of our base checkpoints (read with
    `load_checkpoint` instead)."""
    from common.ckpt import CheckpointError, torch_load
    if not Path(path).is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    obj = torch_load(path)
    if isinstance(obj, dict) and "kind" in obj:
        return None
    for key in ("state_dict", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{path} is neither a NeuralFuse base checkpoint nor a state_dict "
                              f"(a dict of tensors)")
    return {k.removeprefix("module."): v for k, v in obj.items()}    # DDP-saved keys too


def load_float_base(state: Dict[str, torch.Tensor], path: str, arch: str, bits: int, device: torch.device,
                    num_classes: int, image_size: int) -> nn.Module:
    """torchvision:NAME for `num_classes` classes and image_size px inputs (the caller's dataset) from
    the float state_dict `state` (read from `path`), quantized post-training to `bits`, frozen;
    `model.ptq_from` names the file (for `eval.accuracy.print_ptq_accuracy`)."""
    from common.ckpt import load_state
    from models.quant import quantize_
    model = build_torchvision(arch, num_classes, image_size)
    load_state(model, state, path, hint=f"; was it saved from {arch}'s builder with the dataset's number "
                                        f"of classes?")
    model = quantize_(model, bits).to(device).eval().requires_grad_(False)
    model.ptq_from = path
    return model

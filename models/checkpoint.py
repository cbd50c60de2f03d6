"""Base-model checkpoints: the fields that make them self-describing, and loading one back.

A base checkpoint names its architecture, dataset, class count and weight precision, so the model is
rebuilt from the checkpoint's own fields; the command line's ARCH / DATASET / --bits are checked
against them and a mismatch is a one-line user error. It also records how it was trained
(`base_training`: "qat", or a dict for fault-aware training / weight clipping, train/fault_aware.py);
`load_base` hands that on as the model's `base_training` attribute, which results.json repeats.

Example:
    ckpt = {**base_checkpoint_meta("vgg11", "cifar10", 10, 8), "state_dict": net.state_dict()}
    model = load_base("run/best.pt", arch="vgg11", dataset="cifar10", bits=8, device=torch.device("cpu"),
                      num_classes=10, input_size=32)      # the dataset's shape, from the caller
"""
from __future__ import annotations

from typing import Any, Mapping, Optional

import torch

from common.ckpt import CheckpointError, check_kind, load_checkpoint, load_state
from common.errors import UsageError
from models.quant import DEFAULT_BITS


QAT_ONLY = "qat"         # what a base checkpoint written before `base_training` existed was trained with


def base_checkpoint_meta(arch: str, dataset: str, num_classes: int, bits: int, training: Any = None) -> dict:
    """The fields that make a base checkpoint self-describing (checked when it is loaded); `training`,
    when known, is how it was trained (`base_training`)."""
    meta = {"kind": "base", "arch": arch, "dataset": dataset, "bits": bits, "num_classes": num_classes}
    return meta if training is None else {**meta, "base_training": training}


def base_training(ckpt: Mapping[str, Any], path: object = "checkpoint") -> Any:
    """How the base model of `ckpt` was trained: "qat" (plain QAT, also every checkpoint from before the
    field), or {"fault_aware": bool, "fault": FaultConfig fields or None, "clip": W or None}. Anything
    else is a CheckpointError line."""
    value = ckpt.get("base_training", QAT_ONLY)
    if isinstance(value, str) or (isinstance(value, dict) and isinstance(value.get("fault_aware"), bool)):
        return value
    raise CheckpointError(f"{path}: 'base_training' is {type(value).__name__} {str(value)[:40]!r}, not what this "
                          f"code writes (\"qat\" or a dict with 'fault_aware')")


def retrained(training: Optional[Any]) -> bool:
    """Whether a `base_training` value says the model was retrained for bit errors (fault-aware)."""
    return isinstance(training, dict) and training.get("fault_aware") is True


def load_base(path: str, arch: str, dataset: str, bits: int, device: torch.device, num_classes: int,
              input_size: int) -> torch.nn.Module:
    """The frozen base model of checkpoint `path`, checked against ARCH, DATASET and --bits.

    `num_classes` and `input_size` (pixels per side) are the dataset's, given by the caller (a model
    knows no data): a float state_dict is built for them; our checkpoints record their own class count.
    Checkpoints written before --bits existed hold no 'bits' entry: they are DEFAULT_BITS (8-bit).
    An int8 export (models/export.py) loads as its float weights q·Δ.
    For ARCH = torchvision:NAME, `path` may also be a plain float state_dict (models/external.py).
    """
    from models import get_model
    from models.export import float_state_dict
    from models.external import is_external, load_float_base, read_float_state_dict
    if not path:
        raise UsageError("-cp is required: give the base-model checkpoint (a train run's best.pt)")
    state = read_float_state_dict(path) if is_external(arch) else None
    if state is not None:
        return load_float_base(state, path, arch, bits, device, num_classes, input_size)
    ckpt = load_checkpoint(path)
    if ckpt.get("kind") == "generator":     # the usual slip: a transform_eopm_gen run's best.pt
        raise UsageError(f"{path} holds a generator; pass it as --G-path (with --testing-mode generator_base) "
                         f"and give the base model as -cp")
    check_kind(ckpt, path, "base")
    if ckpt.get("arch") != arch or ckpt.get("dataset") != dataset:
        raise UsageError(f"-cp {path} holds a {ckpt.get('arch')} trained on {ckpt.get('dataset')}, but the "
                         f"command asks for {arch} on {dataset}")
    ckpt_bits = ckpt.get("bits", DEFAULT_BITS)
    if ckpt_bits != bits:
        raise UsageError(f"-cp {path} holds a {ckpt_bits}-bit model, but --bits is {bits}")
    if not isinstance(ckpt.get("num_classes"), int):
        raise CheckpointError(f"{path} does not record its class count ('num_classes'); retrain it")
    training = base_training(ckpt, path)
    model = get_model(arch, ckpt["num_classes"], bits, input_size=input_size)
    load_state(model, float_state_dict(ckpt, bits, path), path)   # an int8 export: q·Δ per layer
    model.base_training = training            # results.json repeats it (None: a float state_dict, unknown)
    return model.to(device).eval().requires_grad_(False)

"""The int8 export of a base model: its weights exactly as the SRAM holds them (docs/DESIGN.md §4).

Every quantized layer's weight is stored as the int8 codes q and the per-layer step Δ (a float32
scalar); biases, BatchNorm parameters and buffers stay float. That is the memory image a hardware
researcher needs, and about a quarter of the float checkpoint (ResNet18: ~11 MB instead of ~45 MB).

Loading rebuilds the float master weight as q·Δ. Re-quantizing q·Δ gives back the same q and the same
Δ (max|q·Δ| = qmax·Δ, and fl(fl(qmax·Δ) / qmax) = Δ), so an export evaluates exactly like the
checkpoint it came from; `float_state_dict` checks that per layer instead of assuming it.

Example:
    export = export_int8(model, base_checkpoint_meta("resnet18", "cifar10", 10, 8))
    save_checkpoint(export, "resnet18.int8.pt")      # loadable as -cp by every mode
"""
from __future__ import annotations

from typing import Any, Dict, Mapping

import torch
import torch.nn as nn

from common.ckpt import CheckpointError
from models.quant import quant_layers, quantize_int

INT8_FORMAT = "int8"    # the checkpoint's "format" field; absent or "float" for ordinary checkpoints


def export_int8(model: nn.Module, meta: Mapping[str, Any]) -> Dict[str, Any]:
    """A checkpoint dict of `model` with every quantized weight as int8 codes + Δ (`meta`: the base
    checkpoint's self-describing fields, e.g. `base_checkpoint_meta`)."""
    layers = dict(quant_layers(model))
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()
             if not (k.endswith(".weight") and k[:-len(".weight")] in layers)}
    codes, deltas = {}, {}
    for name, layer in layers.items():
        q, delta = layer.int8_weight()                  # int8 of the weight's shape, 0-dim Δ
        codes[name], deltas[name] = q.cpu().clone(), delta.detach().float().cpu().clone()
    return {**meta, "format": INT8_FORMAT, "state_dict": state, "int8": codes, "delta": deltas}


def is_int8_export(ckpt: Mapping[str, Any]) -> bool:
    return ckpt.get("format") == INT8_FORMAT


def float_state_dict(ckpt: Mapping[str, Any], bits: int, path: object = "checkpoint") -> Dict[str, torch.Tensor]:
    """The float state_dict a model loads: the checkpoint's own, or for an int8 export q·Δ per layer
    (after checking that re-quantizing it reproduces q and Δ exactly)."""
    if not is_int8_export(ckpt):
        return ckpt["state_dict"]
    codes, deltas = ckpt.get("int8"), ckpt.get("delta")
    if not isinstance(codes, dict) or not isinstance(deltas, dict) or codes.keys() != deltas.keys():
        raise CheckpointError(f"{path}: an int8 export needs matching 'int8' and 'delta' tables")
    state = dict(ckpt["state_dict"])
    for name, q in codes.items():
        delta = deltas[name]
        if not (isinstance(q, torch.Tensor) and q.dtype == torch.int8 and isinstance(delta, torch.Tensor)):
            raise CheckpointError(f"{path}: layer {name!r} is not int8 codes with a float step")
        w = q.float() * delta.float()
        q2, delta2 = quantize_int(w, bits)
        if not (torch.equal(q2, q) and torch.equal(delta2, delta.float())):
            raise CheckpointError(f"{path}: layer {name!r} does not re-quantize to its stored codes at "
                                  f"{bits} bits (exported at another precision?)")
        state[f"{name}.weight"] = w
    return state

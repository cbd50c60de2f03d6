"""Parameter and MAC counts by forward hooks on the layers a model actually runs (docs/DESIGN.md §10, paper Table 7).

One forward pass at batch 1 records every call of every leaf module (`layer_stats`); the counts are
sums over those records (`count_macs`), so base models and generators share one code path and an
energy model can reuse the same records (weights, output positions, kernel, stride, padding).

Two MAC figures per layer call:
- `conv_macs`: multiply-accumulates of Conv2d / ConvTranspose2d / Linear only,
  = output positions x in_ch/groups x kernel area x out_ch. A transposed conv is counted by its
  *output* positions too, as the paper did. This is the physically meaningful number.
- `macs`: the ptflops convention the paper's Table 7 used: conv_macs, +1 per output element for each
  bias add, +2 per element for each BatchNorm, +1 per output element for each ReLU-like *module* call
  (functional relu is invisible to it), +1 per input element for each max/avg/adaptive pooling,
  +1 per output element for each Upsample. Anything else (tanh, dropout, adds, concat, pad) is 0.
A module called twice (e.g. a ReLU reused inside a residual block) is recorded and counted twice.

Example:
    from eval.macs import count_macs
    from generators import get_generator
    count_macs(get_generator("ConvL"), (3, 32, 32))   # params 723,273; macs 80,495,616 (Table 7: 80.5M)
    python -m eval.macs --size 32                   # the table for every generator and base model
"""
from __future__ import annotations

import copy
import math
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
from torch.nn.modules.batchnorm import _BatchNorm

ACTIVATIONS = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.ELU)  # the ones ptflops counts
POOLS = (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d,
         nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d, nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d)


def layer_kind(m: nn.Module) -> str:
    """'conv', 'deconv', 'linear', 'bn', 'act', 'pool', 'upsample' or 'other' (not counted)."""
    if isinstance(m, nn.Conv2d):
        return "conv"
    if isinstance(m, nn.ConvTranspose2d):
        return "deconv"
    if isinstance(m, nn.Linear):
        return "linear"
    if isinstance(m, _BatchNorm):
        return "bn"
    if isinstance(m, ACTIVATIONS):
        return "act"
    if isinstance(m, POOLS):
        return "pool"
    if isinstance(m, nn.Upsample):
        return "upsample"
    return "other"


def _numel(shape: Sequence[int]) -> int:
    return math.prod(shape)


def _record(name: str, m: nn.Module, inputs: tuple, y) -> dict:
    """One layer call at batch 1. Shapes drop the batch dimension (None for a non-tensor in/output)."""
    x = inputs[0] if inputs else None
    in_shape = tuple(x.shape[1:]) if isinstance(x, torch.Tensor) else None
    out_shape = tuple(y.shape[1:]) if isinstance(y, torch.Tensor) else None
    kind = layer_kind(m) if in_shape is not None and out_shape is not None else "other"
    rec = {"name": name, "kind": kind, "type": type(m).__name__, "in_shape": in_shape,
           "out_shape": out_shape, "params": sum(p.numel() for p in m.parameters(recurse=False)),
           "weights": 0, "out_positions": None, "in_ch": None, "out_ch": None, "kernel": None,
           "stride": None, "padding": None, "groups": None, "conv_macs": 0, "macs": 0}
    if kind in ("conv", "deconv"):
        pos = _numel(out_shape[1:])  # output pixels, also for transposed convs (paper convention)
        macs = pos * (m.in_channels // m.groups) * _numel(m.kernel_size) * m.out_channels
        rec.update(weights=m.weight.numel(), out_positions=pos, in_ch=m.in_channels,
                   out_ch=m.out_channels, kernel=tuple(m.kernel_size), stride=tuple(m.stride),
                   padding=tuple(m.padding), groups=m.groups, conv_macs=macs,
                   macs=macs + (_numel(out_shape) if m.bias is not None else 0))
    elif kind == "linear":
        pos = _numel(out_shape[:-1])  # 1 for a (B, features) input
        macs = pos * m.in_features * m.out_features
        rec.update(weights=m.weight.numel(), out_positions=pos, in_ch=m.in_features,
                   out_ch=m.out_features, conv_macs=macs,
                   macs=macs + (_numel(out_shape) if m.bias is not None else 0))
    elif kind == "bn":
        rec["macs"] = _numel(in_shape) * (2 if m.affine else 1)
    elif kind in ("act", "upsample"):
        rec["macs"] = _numel(out_shape)
    elif kind == "pool":
        rec["macs"] = _numel(in_shape)
    return rec


def layer_stats(module: nn.Module, input_size: Sequence[int], device: Optional[str] = None) -> List[dict]:
    """Per-call records of every leaf module in execution order, from one batch-1 eval forward.

    Each record: name, kind (see `layer_kind`), type, in_shape / out_shape (no batch dim), params
    (the module's own), weights (weight elements of conv/deconv/linear, else 0), out_positions,
    in_ch, out_ch, kernel, stride, padding, groups (None where meaningless), conv_macs, macs.
    `device="meta"` runs a shape-only forward on a meta copy (no arithmetic, no data); by default the
    forward runs where the module's parameters are. Training flags are restored afterwards.
    """
    if device == "meta":
        module = copy.deepcopy(module).to("meta")
    else:
        p = next(module.parameters(), None)
        device = p.device if p is not None else "cpu"
    records: List[dict] = []
    hooks = []
    for name, m in module.named_modules():
        if next(m.children(), None) is None:  # leaf
            hooks.append(m.register_forward_hook(
                lambda mod, inp, out, name=name: records.append(_record(name, mod, inp, out))))
    modes = {m: m.training for m in module.modules()}
    try:
        module.eval()
        with torch.no_grad():
            module(torch.zeros(1, *input_size, device=device))
    finally:
        for h in hooks:
            h.remove()
        for m, mode in modes.items():
            m.training = mode
    return records


def count_macs(module: nn.Module, input_size: Sequence[int], device: Optional[str] = None) -> Dict:
    """{'params', 'macs' (ptflops convention), 'conv_macs' (conv+linear only), 'by_kind': {kind: macs}}.

    `input_size` is one sample's shape, e.g. (3, 32, 32); see `layer_stats` for `device`.
    """
    records = layer_stats(module, input_size, device)
    by_kind: Dict[str, int] = {}
    for r in records:
        by_kind[r["kind"]] = by_kind.get(r["kind"], 0) + r["macs"]
    return {"params": sum(p.numel() for p in module.parameters()),
            "macs": sum(r["macs"] for r in records),
            "conv_macs": sum(r["conv_macs"] for r in records),
            "by_kind": by_kind}


def human(n: float) -> str:
    """ptflops-style rounding: 80.5 M, 1.31 G."""
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.2f} {unit}"
    return str(n)


def _main(argv: Optional[Sequence[str]] = None) -> None:
    """Print the param/MAC table of every generator (and base model): python -m eval.macs --size 32"""
    import argparse

    ap = argparse.ArgumentParser(description=_main.__doc__)
    ap.add_argument("--size", type=int, default=32,
                    help="input height = width in pixels; base models meant for that size are listed")
    ap.add_argument("--classes", type=int, default=10, help="base-model classes")
    args = ap.parse_args(argv)
    from generators import generator_info, get_generator, list_generators
    from models import get_model, list_models
    rows: List[Tuple[str, nn.Module]] = [(n, get_generator(n, input_size=args.size)) for n in list_generators()]
    rows += [(f"{n}(up_padding=0)", get_generator(n, up_padding=0)) for n in list_generators()
             if "up_padding" in generator_info(n)["options"]]
    rows += [(n, get_model(n, args.classes)) for n in list_models(input_size=args.size)]
    print(f"{'name':22s} {'params':>12s} {'macs':>14s} {'':>9s} {'conv_macs':>14s}")
    for name, net in rows:
        c = count_macs(net, (3, args.size, args.size), device="meta")
        print(f"{name:22s} {c['params']:12,d} {c['macs']:14,d} {human(c['macs']):>9s} {c['conv_macs']:14,d}")


if __name__ == "__main__":
    _main()

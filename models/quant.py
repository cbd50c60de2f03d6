"""8-bit weight-only quantization-aware training (docs/DESIGN.md §4) and the int8 access the fault models use.

Every Conv2d / Linear / ConvTranspose2d of a model is switched in place to a quantized subclass
(`quantize_`): the float weight stays the master copy; each forward uses q·Δ with
Δ = max|W| / (2^(b-1) - 1), q = round_half_even(W / Δ) in [-(2^(b-1)-1), 2^(b-1)-1], and a
straight-through estimator in the backward pass. Activations, biases and BatchNorm stay float.

Bit errors (docs/DESIGN.md §5) are applied by handing a layer perturbed int8 weights with `set_fault(q')`;
the forward then uses q'·Δ with the *clean* Δ (no clamp, -128 allowed). The float master weight is
never modified, so clearing the fault (`set_fault(None)`) restores the clean model exactly. A layer
that is being trained (fault-aware training, train/fault_aware.py) passes the gradient of its faulty
weights straight through to the master weight.

Example:
    model = quantize_(torchvision.models.resnet18())
    for name, layer in quant_layers(model):
        q, delta = layer.int8_weight()      # int8 tensor, 0-dim float tensor
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

DEFAULT_BITS = 8  # docs/DESIGN.md §4: 8-bit symmetric signed per-tensor weights


def qmax_for(bits: int) -> int:
    """Largest quantized magnitude: 127 for 8 bits (the code -128 is never produced by rounding)."""
    return 2 ** (bits - 1) - 1


def weight_delta(w: torch.Tensor, bits: int = DEFAULT_BITS) -> torch.Tensor:
    """Δ = max|W| / qmax as a 0-dim tensor (detached; a tiny floor avoids 0/0 for all-zero weights).

    qmax is a tensor on w's device, not a Python number: CUDA computes a division by a CPU scalar as a
    product with its rounded reciprocal, one ulp off the quotient for ~4% of 8-bit maxima, which would
    give another Δ (and other int8 codes) on CUDA than on the CPU."""
    amax = w.detach().abs().max()
    return (amax / amax.new_full((), qmax_for(bits))).clamp_min(torch.finfo(w.dtype).tiny)


def quantize_int(w: torch.Tensor, bits: int = DEFAULT_BITS) -> Tuple[torch.Tensor, torch.Tensor]:
    """(q, Δ): q = round_half_even(W/Δ) clamped to ±qmax, as int8; Δ a 0-dim float tensor."""
    delta = weight_delta(w, bits)
    qm = qmax_for(bits)
    q = torch.round(w.detach() / delta).clamp_(-qm, qm).to(torch.int8)
    return q, delta


def fake_quant(w: torch.Tensor, bits: int = DEFAULT_BITS) -> torch.Tensor:
    """q·Δ in the forward pass, identity gradient (straight-through estimator) in the backward pass."""
    delta = weight_delta(w, bits)
    qm = qmax_for(bits)
    wq = torch.round(w.detach() / delta).clamp_(-qm, qm) * delta
    return w + (wq - w).detach()


class QuantMixin:
    """Shared by the quantized layer classes: the weight the forward pass uses, and fault hooks.

    The clean (q, Δ, q·Δ) are cached per weight version (the key changes whenever an optimiser step
    or load_state_dict writes the weight), so a frozen base model quantizes once, not every forward.
    """

    bits: int = DEFAULT_BITS
    _fault_w: Optional[torch.Tensor] = None      # q'·Δ of the faulty int8 weights, or None
    _qcache: Optional[tuple] = None
    _as_given: bool = False                      # use `weight` unchanged (see `weights_as_given`)

    def _clean(self) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        w = self.weight
        key = (w.data_ptr(), w._version, w.device, w.dtype, self.bits)
        if self._qcache is None or self._qcache[0] != key:
            q, delta = quantize_int(w, self.bits)
            self._qcache = (key, q, delta, q.to(w.dtype) * delta)
        return self._qcache[1:]

    def int8_weight(self) -> Tuple[torch.Tensor, torch.Tensor]:
        """The clean int8 weights (same shape as `weight`) and Δ. Treat them as read-only."""
        q, delta, _ = self._clean()
        return q, delta

    def clean_weight(self) -> torch.Tensor:
        """The clean q·Δ (cached per weight version; detached): what a frozen layer computes with."""
        return self._clean()[2]

    def set_fault(self, q: Optional[torch.Tensor]) -> None:
        """Use perturbed int8 weights `q` (shape of `weight`) from now on; None restores the clean ones."""
        if q is None:
            self._fault_w = None
            return
        if q.dtype != torch.int8 or q.shape != self.weight.shape:
            raise ValueError(f"fault weights must be int8 of shape {tuple(self.weight.shape)}, "
                             f"got {q.dtype} {tuple(q.shape)}")
        self._fault_w = self.dequantize(q)

    def dequantize(self, q: torch.Tensor) -> torch.Tensor:
        """q'·Δ with the *clean* Δ (no clamp, -128 allowed), in the weight's dtype, device and memory
        layout: the weight a perturbed layer computes with."""
        _, delta, _ = self._clean()
        return torch.empty_like(self.weight).copy_(q).mul_(delta)

    @property
    def is_faulty(self) -> bool:
        return self._fault_w is not None

    @property
    def fault_weight(self) -> Optional[torch.Tensor]:
        """The faulty q'·Δ set by `set_fault` (read-only), or None while the layer is clean."""
        return self._fault_w

    def quant_weight(self) -> torch.Tensor:
        """The weight the forward pass uses: fake-quantized master weight, or faulty q'·(clean Δ)."""
        if self._as_given:
            return self.weight                    # already dequantized (batched perturbed models)
        if self._fault_w is not None:             # trained under faults: straight-through to the master
            if self.weight.requires_grad and torch.is_grad_enabled():
                return self._fault_w + (self.weight - self.weight.detach())   # value q'·Δ exactly
            return self._fault_w
        if not (self.weight.requires_grad and torch.is_grad_enabled()):
            return self._clean()[2]               # frozen or no_grad: the cached q·Δ
        return fake_quant(self.weight, self.bits)


class QConv2d(QuantMixin, nn.Conv2d):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, self.quant_weight(), self.bias)


class QLinear(QuantMixin, nn.Linear):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.quant_weight(), self.bias)


class QConvTranspose2d(QuantMixin, nn.ConvTranspose2d):
    def forward(self, x: torch.Tensor, output_size=None) -> torch.Tensor:
        out_pad = self._output_padding(x, output_size, self.stride, self.padding, self.kernel_size,
                                       2, self.dilation)
        return F.conv_transpose2d(x, self.quant_weight(), self.bias, self.stride, self.padding,
                                  out_pad, self.groups, self.dilation)


_QUANTIZED = {nn.Conv2d: QConv2d, nn.Linear: QLinear, nn.ConvTranspose2d: QConvTranspose2d}
QUANT_TYPES = tuple(_QUANTIZED.values())


def quantize_(model: nn.Module, bits: int = DEFAULT_BITS) -> nn.Module:
    """Switch every Conv2d / Linear / ConvTranspose2d of `model` to its quantized class, in place.

    Parameters, buffers and state-dict keys are unchanged; only the forward pass differs.
    """
    if not 2 <= bits <= 8:
        raise ValueError(f"bits must be in 2..8, got {bits}")
    for m in model.modules():
        cls = _QUANTIZED.get(type(m))
        if cls is not None:
            m.__class__ = cls
        if isinstance(m, QuantMixin):
            m.bits = bits
            m._fault_w = None
            m._qcache = None
            m._as_given = False
    return model


def quant_layers(model: nn.Module) -> Iterator[Tuple[str, QuantMixin]]:
    """(name, layer) for every quantized layer, in `named_modules` order (stable across runs)."""
    for name, m in model.named_modules():
        if isinstance(m, QuantMixin):
            yield name, m


@contextmanager
def weights_as_given(model: nn.Module) -> Iterator[nn.Module]:
    """Inside the block every quantized layer uses its `weight` as it is, without quantizing it.

    For `torch.func.functional_call` with weights that are already q'·Δ (e.g. a stack of perturbed
    copies under `vmap`): quantizing a stack would take one Δ over all copies.
    """
    layers = [m for _, m in quant_layers(model)]
    try:
        for m in layers:
            m._as_given = True
        yield model
    finally:
        for m in layers:
            m._as_given = False

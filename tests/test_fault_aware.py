"""Fault-aware training (train/fault_aware.py): the perturbed pass's gradient reaches the clean weights."""
from __future__ import annotations

import pytest

import torch
import torch.nn.functional as F

from bitflip import FaultConfig
from bitflip.apply import faulty_int8
from models import get_model, quant_layers
from train.fault_aware import clip_weights_, fault_aware_loss


@pytest.mark.slow
def test_perturbed_gradient_is_applied_to_the_clean_weights():
    torch.manual_seed(0)
    model = get_model("vgg11", 10).train()
    x, y = torch.rand(8, 3, 32, 32) * 2 - 1, torch.arange(8) % 10
    cfg = FaultConfig("official", 0.05)
    out = fault_aware_loss(model, model, x, y, cfg, seed=7)
    out["loss"].backward()
    got = [layer.weight.grad.clone() for _, layer in quant_layers(model)]
    assert all(not layer.is_faulty for _, layer in quant_layers(model))      # faults gone after the step

    # reference: half the clean QAT gradient + half the gradient w.r.t. the faulty weights q'·Δ
    model.zero_grad()
    ref = torch.func.functional_call
    faulty = {f"{n}.weight": layer.dequantize(q).requires_grad_(True) for n, layer, q in faulty_int8(model, cfg, 7)}
    F.cross_entropy(model(x), y).div(2).backward()
    clean_grads = [layer.weight.grad.clone() for _, layer in quant_layers(model)]
    from models.quant import weights_as_given
    with weights_as_given(model):
        loss_p = F.cross_entropy(ref(model, faulty, (x,)), y) / 2
    pert_grads = torch.autograd.grad(loss_p, list(faulty.values()))
    for g, c, p in zip(got, clean_grads, pert_grads):
        torch.testing.assert_close(g, c + p, rtol=1e-4, atol=1e-6)
    assert any(not torch.allclose(c, c + p) for c, p in zip(clean_grads, pert_grads))   # faults mattered


def test_clip_weights_bounds_every_quantized_weight():
    model = get_model("vgg11", 10)
    clip_weights_(model, 0.05)
    assert max(layer.weight.abs().max().item() for _, layer in quant_layers(model)) <= torch.tensor(0.05).item()

"""Logits of several perturbed models M_k at once, looped or batched with `torch.func.vmap`.

EOPM (paper Eq. 4-5) and the evaluation both run one frozen base model under K fault seeds. The
plain way (`batch=1`) sets each seed's faulty weights in place (`perturbed`) and runs the model K
times. The batched way stacks the K faulty weight sets, q'·Δ per layer, and runs
`vmap(functional_call(model, weights, x))` once: PyTorch turns the K convolutions into grouped
convolutions, which fills a large GPU better when the per-model batch is small. Both give the same
logits up to float summation order (tested); which is faster depends on the device and the batch
(`bench/eopm_step.py` measures it). A perturbed copy costs its dequantized weights plus the forward's
activations, K times for the batched way.

Example:
    for seeds_k, logits in perturbed_logits(model, x, FaultConfig("official", 0.01), [1, 2, 3], batch=3):
        loss = F.cross_entropy(logits.flatten(0, 1), y.repeat(len(seeds_k)))   # logits (k, B, C)
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Dict, Iterator, List, Sequence, Tuple

import torch
import torch.nn as nn
from torch.func import functional_call, vmap

from bitflip.apply import faulty_int8, perturbed
from bitflip.faults import FaultConfig
from models.quant import weights_as_given


def faulty_weights(model: nn.Module, cfg: FaultConfig, seed: int) -> Dict[str, torch.Tensor]:
    """{'<layer>.weight': q'·Δ} for every quantized layer: the weights a perturbed model computes with."""
    out = {}
    for name, layer, q in faulty_int8(model, cfg, seed):
        out[f"{name}.weight" if name else "weight"] = layer.dequantize(q)
    return out


def chunks(seeds: Sequence[int], size: int) -> Iterator[List[int]]:
    """Consecutive groups of `size` seeds (the last may be shorter)."""
    seeds = [int(s) for s in seeds]
    for i in range(0, len(seeds), size):
        yield seeds[i:i + size]


@contextmanager
def perturbed_ensemble(model: nn.Module, cfg: FaultConfig, seeds: Sequence[int]
                       ) -> Iterator[Callable[[torch.Tensor], torch.Tensor]]:
    """Inside the block, a function x -> logits (k, B, classes) of the k perturbed models `seeds`.

    One seed: the faults are set in place (`perturbed`). Several: their faulty weights are stacked
    once and every call runs them together under `vmap`. Either way the model is clean afterwards.
    """
    seeds = [int(s) for s in seeds]
    if len(seeds) == 1:
        with perturbed(model, cfg, seeds[0]):
            yield lambda x: model(x).unsqueeze(0)
        return
    per_seed = [faulty_weights(model, cfg, s) for s in seeds]
    # (k, *weight shape); vmap supports only the default memory layout (no channels_last) inside
    stacked = {k: torch.stack([w[k].contiguous() for w in per_seed]).contiguous() for k in per_seed[0]}
    del per_seed

    def forward(x: torch.Tensor) -> torch.Tensor:
        x = x.contiguous()
        with weights_as_given(model):
            return vmap(lambda w: functional_call(model, w, (x,)), randomness="error")(stacked)
    yield forward


def perturbed_logits(model: nn.Module, x: torch.Tensor, cfg: FaultConfig, seeds: Sequence[int],
                     batch: int = 1) -> Iterator[Tuple[List[int], torch.Tensor]]:
    """Yield (seeds of the chunk, logits (k, B, classes)) for chunks of up to `batch` seeds.

    The caller may call backward on a chunk's logits before asking for the next chunk (the graph
    keeps the weights it used). `batch=1` is the in-place loop; `batch>1` the vmap path.
    """
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    for chunk in chunks(seeds, batch):
        with perturbed_ensemble(model, cfg, chunk) as forward:
            yield chunk, forward(x)

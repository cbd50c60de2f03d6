"""Logits of several perturbed models M_k at once, looped or batched with `torch.func.vmap`.

EOPM (paper Eq. 4-5) and the evaluation both run one frozen base model under K fault seeds. The
plain way (`batch=1`) sets each seed's faulty weights in place (`perturbed`) and runs the model K
times. The batched way stacks the K faulty weight sets, q'·Δ per layer, and runs
`vmap(functional_call(model, weights, x))` once: PyTorch turns the K convolutions into grouped
convolutions, which fills a large GPU better when the per-model batch is small. Both give the same
logits up to float summation order (tested); which is faster depends on the device and the batch
(`bench/eopm_step.py` measures it). A perturbed copy costs its dequantized weights plus the forward's
activations, K times for the batched way.

`StackedForward` runs k weight sets that are already stacked (`bitflip.batched.BatchedFaults.weights`
makes all N seeds' at once), optionally compiled.

With `--compile`, a `WeightedForward` runs the model as a function of (weights, x) through
`torch.compile`: the perturbed weights are inputs of the compiled graph, so a new fault seed reuses
the compiled code instead of recompiling it, and the model module is never modified.

Example:
    for seeds_k, logits in perturbed_logits(model, x, FaultConfig("official", 0.01), [1, 2, 3], batch=3):
        loss = F.cross_entropy(logits.flatten(0, 1), y.repeat(len(seeds_k)))   # logits (k, B, C)
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
from torch.func import functional_call, vmap

from bitflip.apply import faulty_int8, perturbed, weight_key
from bitflip.faults import FaultConfig
from models.quant import quant_layers, weights_as_given


def faulty_weights(model: nn.Module, cfg: FaultConfig, seed: int) -> Dict[str, torch.Tensor]:
    """{'<layer>.weight': q'·Δ} for every quantized layer: the weights a perturbed model computes with."""
    out = {}
    for name, layer, q in faulty_int8(model, cfg, seed):
        out[weight_key(name)] = layer.dequantize(q)
    return out


class WeightedForward:
    """`model(x)` with every quantized layer's weight given as q'·Δ in a dict, optionally compiled.

    `fwd(weights, x)` runs `functional_call` inside `weights_as_given`, so the layers use the given
    tensors as they are; BatchNorm and biases come from the module. `fwd.clean()` is the dict of the
    clean q·Δ. With `compile=True` the call goes through `torch.compile`: one graph per grad mode (and
    a shape-generic one once a second batch size appears), reused for every fault seed.
    """

    def __init__(self, model: nn.Module, compile: bool = False):
        self.model = model

        def call(weights: Dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
            return functional_call(model, weights, (x,))
        self._call = torch.compile(call) if compile else call

    def clean(self) -> Dict[str, torch.Tensor]:
        return {weight_key(name): layer.clean_weight() for name, layer in quant_layers(self.model)}

    def __call__(self, weights: Dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        with weights_as_given(self.model):
            return self._call(weights, x)


def chunks(seeds: Sequence[int], size: int) -> Iterator[List[int]]:
    """Consecutive groups of `size` seeds (the last may be shorter)."""
    seeds = [int(s) for s in seeds]
    for i in range(0, len(seeds), size):
        yield seeds[i:i + size]


class StackedForward:
    """`fwd(stacked, x)` -> logits (k, B, classes) of k weight sets given as one dict of (k, *shape) stacks
    (q'·Δ per quantized layer, e.g. `BatchedFaults.weights`), run together under `vmap`.

    With `compile=True` the call goes through `torch.compile`: the stacks are graph inputs, so new fault
    seeds reuse the compiled code (one graph per k and grad mode). Default memory layout only (vmap).
    """

    def __init__(self, model: nn.Module, compile: bool = False):
        self.model = model

        def call(stacked: Dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
            return vmap(lambda w: functional_call(model, w, (x,)), randomness="error")(stacked)
        self._call = torch.compile(call) if compile else call

    def __call__(self, stacked: Dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        with weights_as_given(self.model):
            return self._call(stacked, x.contiguous())


def stacked_forward(model: nn.Module, weights: Sequence[Dict[str, torch.Tensor]]
                    ) -> Callable[[torch.Tensor], torch.Tensor]:
    """x -> logits (k, B, classes) of the k weight sets `weights` (dicts as `faulty_weights` makes),
    stacked once and run together under `vmap` (default memory layout only)."""
    stacked = {key: torch.stack([w[key].contiguous() for w in weights]) for key in weights[0]}
    run = StackedForward(model)
    return lambda x: run(stacked, x)


@contextmanager
def perturbed_ensemble(model: nn.Module, cfg: FaultConfig, seeds: Sequence[int],
                       runner: Optional[WeightedForward] = None
                       ) -> Iterator[Callable[[torch.Tensor], torch.Tensor]]:
    """Inside the block, a function x -> logits (k, B, classes) of the k perturbed models `seeds`.

    One seed: handed to `runner` as weights if given (e.g. a compiled one), else set in place
    (`perturbed`; about 5% less host time per pass than `functional_call`, measured on CPU). Several:
    stacked under `vmap` (`stacked_forward`). Either way the model is clean afterwards.
    """
    seeds = [int(s) for s in seeds]
    if len(seeds) > 1:
        if runner is not None:
            raise ValueError("a WeightedForward runs one perturbed model at a time (batch=1)")
        yield stacked_forward(model, [faulty_weights(model, cfg, s) for s in seeds])
    elif runner is not None:
        weights = faulty_weights(model, cfg, seeds[0])
        yield lambda x: runner(weights, x).unsqueeze(0)
    else:
        with perturbed(model, cfg, seeds[0]):
            yield lambda x: model(x).unsqueeze(0)


def perturbed_logits(model: nn.Module, x: torch.Tensor, cfg: FaultConfig, seeds: Sequence[int],
                     batch: int = 1, runner: Optional[WeightedForward] = None
                     ) -> Iterator[Tuple[List[int], torch.Tensor]]:
    """Yield (seeds of the chunk, logits (k, B, classes)) for chunks of up to `batch` seeds.

    The caller may call backward on a chunk's logits before asking for the next chunk (the graph
    keeps the weights it used). `batch=1` is the in-place loop (through `runner` if given, e.g. a
    compiled one); `batch>1` the vmap path.
    """
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    for chunk in chunks(seeds, batch):
        with perturbed_ensemble(model, cfg, chunk, runner) as forward:
            yield chunk, forward(x)

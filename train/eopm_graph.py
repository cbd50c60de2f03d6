"""The batched EOPM step with its N perturbed passes replayed as one CUDA graph (--eopm-step graph).

`BatchedEOPMStep` (train/eopm_fast.py) makes all N seeds' faulty weights in a few ops per layer, but
the N perturbed forward and input-gradient passes still cost the host one launch per kernel, about
2,000 per step for a ResNet18 at N = 10 (docs/DESIGN.md §13). Here those passes are captured once
with `torch.cuda.graph` and replayed every step: one launch for all of them.

A CUDA graph reads and writes fixed addresses, so the passes run on static buffers made at the first
step: the input z = F(x) (a leaf requiring grad), the labels, the N weight stacks (refilled in place
by `BatchedFaults.weights(seeds, out=...)`), the gradient accumulator and the two metric sums. Each
step copies its z, labels and the clean model's ∂L/∂z in, fills the stacks, replays, and copies the
accumulated ∂L/∂z out; G, the clean pass and the push through G stay eager. The captured body is
`BatchedEOPMStep.passes` with `add_grad` = "accumulator += autograd.grad(loss, z)", the same sums in
the same order as the eager step's backward into z.grad.

Capture follows the PyTorch CUDA-graphs notes: a few warm-up calls on a side stream (cuDNN picks its
algorithms, the allocator settles), then one capture on that stream; autocast runs without its cast
cache (`eopm_autocast`). The graph is made for one batch shape (and N, K, --amp, λ): a step of any
other shape, e.g. the last, smaller batch of an epoch, runs the eager batched step instead.

`capture` is injectable: tests on CPU pass an eager stand-in (call the body a few times as the
warm-up would, then "replay" = call it again), which exercises the buffers and their refills.

Example:
    step = GraphEOPMStep(base, fault)                         # base on CUDA
    metrics = step(gen, base, x, y, fault, seeds, lam=5.0)     # as eopm_step
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, Optional, Sequence, Tuple

import torch
import torch.nn as nn

from bitflip import FaultConfig
from bitflip.ensemble import WeightedForward
from train.eopm_fast import BatchedEOPMStep, eopm_autocast

Body = Callable[[], None]
Capture = Callable[[Body], Body]          # body -> replay: run the body's work again on the same buffers
WARMUP_CALLS = 3                          # as torch.cuda.make_graphed_callables' default


def cuda_graph_capture(body: Body, warmup: int = WARMUP_CALLS) -> Body:
    """Warm `body` up on a side stream, capture one call of it into a CUDA graph, return its replay."""
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(warmup):
            body()
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph, stream=stream):
        body()
    return graph.replay                   # the bound method keeps the graph (and its memory pool) alive


@dataclass
class StaticBuffers:
    """The fixed tensors the captured passes read and write."""
    z: torch.Tensor                       # (B, 3, H, W) leaf requiring grad: F(x) of the step
    y: torch.Tensor                       # (B,) labels
    weights: Dict[str, torch.Tensor]      # {'<layer>.weight': (N, *shape)} q'·Δ of the step's seeds
    grad: torch.Tensor                    # (B, 3, H, W) ∂L/∂z: the clean model's in, all models' out
    loss: torch.Tensor                    # 0-dim Σ_k CE_k
    correct: torch.Tensor                 # 0-dim Σ_k correct predictions


class GraphEOPMStep(BatchedEOPMStep):
    """`BatchedEOPMStep` whose perturbed passes are captured once and replayed (CUDA; see above).

    `captures` counts the graphs made (one per run). A call with a `runner` (--compile, refused by
    `resolve_eopm_step`) or of another shape than the captured one runs the eager batched step.
    """

    def __init__(self, base: nn.Module, fault: FaultConfig, capture: Optional[Capture] = None):
        super().__init__(base, fault)
        self._capture = capture if capture is not None else cuda_graph_capture
        self._key: Optional[Tuple] = None
        self._static: Optional[StaticBuffers] = None
        self._replay: Optional[Body] = None
        self.captures = 0

    def perturbed(self, z: torch.Tensor, y: torch.Tensor, seeds: Sequence[int], lam: float, batch_models: int,
                  amp: bool, runner: Optional[WeightedForward]) -> Tuple[torch.Tensor, torch.Tensor]:
        """As `BatchedEOPMStep.perturbed`, by a replay of the captured passes when the shapes match."""
        key = (tuple(z.shape), z.stride(), z.dtype, z.device, tuple(y.shape), len(seeds), batch_models, amp,
               float(lam))
        if runner is not None or (self._key is not None and key != self._key):
            return super().perturbed(z, y, seeds, lam, batch_models, amp, runner)
        s = self._fill(z, y, seeds)
        if self._replay is None:
            scale = lam / len(seeds)
            self._replay = self._capture(lambda: self._body(scale, batch_models, amp))
            self._key = key
            self.captures += 1
        s.grad.copy_(z.grad)              # after the capture: the warm-up calls add to it
        self._replay()
        z.grad.copy_(s.grad)
        return s.loss.clone(), s.correct.clone()      # the next replay overwrites the buffers

    def _fill(self, z: torch.Tensor, y: torch.Tensor, seeds: Sequence[int]) -> StaticBuffers:
        """Copy this step's z, labels and faulty weight stacks into the static buffers (made at the first call)."""
        if self._static is None:
            self._static = StaticBuffers(
                z=torch.empty_like(z).requires_grad_(True), y=torch.empty_like(y),
                weights=self.faults.weights(seeds), grad=torch.zeros_like(z),
                loss=torch.zeros((), device=z.device), correct=torch.zeros((), device=z.device))
        else:
            self.faults.weights(seeds, out=self._static.weights)
        s = self._static
        with torch.no_grad():
            s.z.copy_(z)
            s.y.copy_(y)
        return s

    def _body(self, scale: float, batch_models: int, amp: bool) -> None:
        """What is captured: the perturbed passes on the static buffers, summing into them."""
        s = self._static

        def add_grad(loss: torch.Tensor) -> None:
            (g,) = torch.autograd.grad(loss, s.z)
            s.grad.add_(g)
        s.loss.zero_()
        s.correct.zero_()
        with eopm_autocast(s.z.device, amp):
            self.passes(s.z, s.y, s.weights, scale, batch_models, self.single, add_grad, (s.loss, s.correct))

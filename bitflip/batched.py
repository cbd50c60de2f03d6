"""The faulty weights of N perturbed models at once: a few device ops per layer instead of ~10 per seed.

The per-seed path (`bitflip.apply.faulty_int8`, one `inject_cfg` per layer and seed) issues about ten
small device ops per layer and seed; with N = 10 seeds and 21 layers an EOPM step's ~2,000 launches
keep a GPU waiting on the host (docs/DESIGN.md §13). `BatchedFaults` treats the N seeds of a step as
one batch per layer, through the batched hook its fault model registers (bitflip/faults.py):

- `tiled` (`official`, `chipmap`): the N seeds' packed (keep, s1) maps, built on the host as before
  (ahead, by `FaultPrefetcher`), go to the device as one tensor (R·wpr, 2N) per step. Each layer's
  gather index into a map (`tile_index`) is computed once and kept by this object (one int64 per
  weight, per distinct layer size). Then one gather, one AND and one OR give all N faulty copies.
  Maps of different row counts (measured maps of different heights) cannot share an index: such a
  step falls back to the per-seed path.
- `cells` (`stuckat`, `flip`): the faulty cells are drawn per seed and layer on the host exactly as in
  the per-seed path (that numpy work stays), joined, and set in the N copies with one gather and one
  `index_add_` (`apply_cells_batch`).

Then the sign extension (b < 8 bits) and one dequantize with the clean Δ give a (N, *weight.shape)
tensor per layer. The integer arithmetic is the per-seed path's, so the bytes are the same for every
fault model (tests/test_batched.py).

What it does not implement is refused in one line (`batched_refusal`, raised by the constructor): a
fault model registered without a batched hook, and error correction (`--ecc secded` decodes each word
after the faults, bitflip/ecc.py; the batched op injects raw faults only).

Example:
    faults = BatchedFaults(model, FaultConfig("official", 0.01))
    stacked = faults.weights([3, 4, 5])               # {'<layer>.weight': (3, *shape) q'·Δ}
    logits = StackedForward(model)(stacked, x)        # (3, B, classes)  (bitflip/ensemble.py)
"""
from __future__ import annotations

from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn

from bitflip.apply import fault_layers, faulty_layer, weight_key
from bitflip.faults import FAULT_MODELS, FaultConfig, check_seed, is_clean, sign_extend
from bitflip.official import apply_tiled_batch, tile_index, to_device, words_per_row
from bitflip.sampled import apply_cells_batch
from models.quant import QuantMixin

Layers = List[Tuple[str, QuantMixin, torch.Tensor]]


def batched_fault_models() -> List[str]:
    """The fault models with a batched form (a `tiled` or `cells` hook), in registry order."""
    return [name for name in FAULT_MODELS.names()
            if FAULT_MODELS.meta(name).get("tiled") or FAULT_MODELS.meta(name).get("cells")]


def batched_refusal(cfg: FaultConfig) -> Optional[str]:
    """Why `BatchedFaults` cannot give `cfg`'s faulty weights, as one line; None when it can."""
    if cfg.model not in batched_fault_models():
        return (f"fault model {cfg.model!r} has no batched form (a `tiled` or `cells` hook); the batched "
                f"fault op implements {', '.join(batched_fault_models())}")
    if cfg.ecc != "none":
        return f"--ecc {cfg.ecc} is not implemented by the batched fault op (it injects raw faults, no decoding)"
    return None


class BatchedFaults:
    """Faulty int8 weights (and their q'·Δ) of one model under N seeds, each layer's N copies at once.

    Holds the gather indices of the model's layer sizes on their device (freed with the object);
    `int8(seeds)` / `weights(seeds)` give the same values as `faulty_int8` / `faulty_weights` per seed.
    """

    def __init__(self, model: nn.Module, cfg: FaultConfig):
        refusal = batched_refusal(cfg)
        if refusal is not None:
            raise ValueError(refusal)
        meta = FAULT_MODELS.meta(cfg.model)
        self._tiled: Optional[Callable] = meta.get("tiled")
        self._cells: Optional[Callable] = meta.get("cells")
        self.model, self.cfg = model, cfg
        self._index: Dict[Tuple[int, int, torch.device], torch.Tensor] = {}   # (n, rows, device) -> (n,)

    def int8(self, seeds: Sequence[int]) -> Layers:
        """(name, layer, int8 (N, *weight.shape)) for every quantized layer; row k is seed k's copy."""
        return [(name, layer, faulty.reshape(faulty.shape[0], *shape)) for name, layer, shape, faulty in
                self._faulty(seeds)]

    def weights(self, seeds: Sequence[int], out: Optional[Dict[str, torch.Tensor]] = None
                ) -> Dict[str, torch.Tensor]:
        """{'<layer>.weight': (N, *weight.shape) q'·Δ} with the clean Δ, in the weight's dtype (contiguous):
        the weights the N perturbed models compute with, stacked as `StackedForward` takes them.

        `out` (a dict this method returned before, same N) is filled in place and returned instead of
        new tensors: the fixed addresses a CUDA graph reads (train/eopm_graph.py)."""
        stacks = {} if out is None else out
        with torch.no_grad():
            for name, layer, shape, faulty in self._faulty(seeds):
                w, delta = layer.weight, layer.int8_weight()[1]
                key = weight_key(name)
                if out is None:
                    stacks[key] = torch.empty((faulty.shape[0], *shape), dtype=w.dtype, device=w.device)
                stacks[key].view(faulty.shape).copy_(faulty).mul_(delta)                 # (N, *shape)
        return stacks

    def _faulty(self, seeds: Sequence[int]) -> List[Tuple[str, QuantMixin, torch.Size, torch.Tensor]]:
        """(name, layer, weight shape, int8 (N, n)) per layer; the (N, n) tensor may be a strided view."""
        seeds = [check_seed(s) for s in seeds]
        if not seeds:
            raise ValueError("BatchedFaults needs at least one seed")
        named = fault_layers(self.model, self.cfg)
        clean = is_clean(self.cfg)
        maps = [self._tiled(self.cfg, s) for s in seeds] if self._tiled is not None and not clean else None
        if maps is not None and len({keep.shape for keep, _ in maps}) > 1:
            return self._per_seed(named, seeds)
        masks: Dict[torch.device, torch.Tensor] = {}
        out = []
        with torch.no_grad():
            for index, (name, layer) in enumerate(named):
                q = layer.int8_weight()[0]
                flat = q.reshape(-1).contiguous()                                         # (n,)
                if clean:                                     # as inject_cfg: copies, nothing else
                    faulty = flat.expand(len(seeds), flat.numel())                       # (N, n) view
                elif maps is None:
                    cells = [self._cells(flat.numel(), self.cfg, s, index) for s in seeds]
                    faulty = sign_extend(apply_cells_batch(flat, cells), self.cfg.bits)  # (N, n)
                else:
                    if flat.device not in masks:
                        masks[flat.device] = _stack_maps(maps, flat.device)
                    index_t = self._tile_index(flat, maps[0][0].shape[0])
                    faulty = sign_extend(apply_tiled_batch(flat, masks[flat.device], index_t), self.cfg.bits)
                out.append((name, layer, q.shape, faulty))
        return out

    def _tile_index(self, flat: torch.Tensor, rows: int) -> torch.Tensor:
        key = (flat.numel(), rows, flat.device)
        if key not in self._index:
            self._index[key] = tile_index(flat.numel(), rows, words_per_row(self.cfg.bits), flat.device)
        return self._index[key]

    def _per_seed(self, named: List[Tuple[str, QuantMixin]], seeds: List[int]
                  ) -> List[Tuple[str, QuantMixin, torch.Size, torch.Tensor]]:
        out = []
        for index, (name, layer) in enumerate(named):
            q = layer.int8_weight()[0]
            out.append((name, layer, q.shape, torch.stack([faulty_layer(q, self.cfg, s, index).reshape(-1)
                                                           for s in seeds])))
        return out


def _stack_maps(maps: Sequence[Tuple[np.ndarray, np.ndarray]], device: torch.device) -> torch.Tensor:
    """N host maps (keep, s1), int8 (R, wpr) each -> int8 (R·wpr, 2N) on `device` (column s: keep of
    map s, column N + s: its s1), transposed on the host so that the device gets one copy."""
    host = np.stack([keep.reshape(-1) for keep, _ in maps] + [s1.reshape(-1) for _, s1 in maps], axis=1)
    return to_device(torch.from_numpy(host), device)                                 # (R·wpr, 2N)

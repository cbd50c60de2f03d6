"""The `official` fault model of docs/DESIGN.md §5: the released code's tiled SRAM stuck-at map, bit-exact.

One map of 8192 rows x 128 bit cells per seed s, drawn with numpy's legacy `RandomState`:
    faulty  = RandomState(s).rand(8192, 128) < ber
    stuck1  = RandomState(s + 1).rand(8192, 128) < 0.5      (else stuck-at-0)
Each row packs `wpr = 128 // bits` weights, cell k*bits + j -> bit j of weight column k (LSB first),
giving int8 masks S1 (stuck-at-1) and S0 (stuck-at-0) of shape (8192, wpr). Weight i of a layer's
flattened tensor reads row (i // wpr²) mod 8192, column i mod wpr (16 and 256 for 8 bits): that is
what the released code's `torch.tile` of the map does, restarting at row 0 for every layer. Then
q' = (q AND NOT S0) OR S1.

Position k (`-pos`): the released code drew that map unseeded; here the seeded analogue of its
layout is used: faulty cell (r, c*bits + k) = RandomState(s).rand(8192, wpr)[r, c] < ber, the
stuck values as above.

The map is built once per (seed, ber, bits, position) and cached (LRU): in numpy, and per device
expanded to one period of 8192·wpr² weights (2 MiB at 8 bits), so applying it to a layer is two
contiguous elementwise ops (the period broadcast over whole multiples, then the remainder).

The tiling (`pack_masks`, `tile_period`, `apply_period`) is shared with `chipmap` (bitflip/chipmap.py),
which applies measured maps of any number of rows the same way. For N maps at once
(bitflip/batched.py), `tile_index` gives each weight's map entry and `apply_tiled_batch` gathers it.

Example:
    q2 = apply_official(q.reshape(-1), seed=50000, ber=0.01)   # int8 (n,) -> int8 (n,)
"""
from __future__ import annotations

import functools
from typing import Tuple

import numpy as np
import torch

from models.quant import DEFAULT_BITS

MAP_ROWS = 8192      # rows of the released code's RandomFaultModel SRAM array
MAP_COLS = 128       # bit cells per row
STUCK1_BELOW = 0.5   # released code's ber0: a faulty cell with V < 0.5 is stuck at 1
MAP_CACHE = 128      # numpy maps kept (2 x 8192 x wpr bytes each: 256 KiB at 8 bits); holds the
                     # maps `FaultPrefetcher` builds ahead (at most MAP_CACHE // 2 seeds in flight)
DEVICE_CACHE = 4     # device copies kept (2 x 8192 x wpr² bytes each: 4 MiB at 8 bits, 64 MiB at 2)


def words_per_row(bits: int) -> int:
    """Weights packed in one 128-cell row: 16 for 8-bit weights."""
    return MAP_COLS // bits


def official_cells(seed: int, ber: float, bits: int = DEFAULT_BITS, position: int = -1
                   ) -> Tuple[np.ndarray, np.ndarray]:
    """(sa0, sa1): bool (8192, 128) cell maps of seed s (stuck at 0 / stuck at 1; never both)."""
    wpr = words_per_row(bits)
    if position < 0:
        faulty = np.random.RandomState(seed).rand(MAP_ROWS, MAP_COLS) < ber            # (8192, 128)
    else:
        hit = np.random.RandomState(seed).rand(MAP_ROWS, wpr) < ber                    # (8192, wpr)
        faulty = np.zeros((MAP_ROWS, MAP_COLS), dtype=bool)
        faulty[:, position:wpr * bits:bits] = hit
    stuck1 = np.random.RandomState(seed + 1).rand(MAP_ROWS, MAP_COLS) < STUCK1_BELOW   # (8192, 128)
    return faulty & ~stuck1, faulty & stuck1


def pack_masks(sa0: np.ndarray, sa1: np.ndarray, bits: int) -> Tuple[np.ndarray, np.ndarray]:
    """Cell maps (R, 128) bool -> (keep, s1) int8 (R, wpr): cell k*bits + j is bit j of weight column k.

    keep = NOT S0 (1 where a bit is not stuck at 0). Cells past wpr*bits (128 % bits of them) hold no bit.
    """
    rows, wpr = sa0.shape[0], words_per_row(bits)

    def pack(cells: np.ndarray) -> np.ndarray:                      # (R, 128) bool -> (R, wpr) uint8
        per_weight = cells[:, :wpr * bits].reshape(rows, wpr, bits)
        return np.packbits(per_weight, axis=-1, bitorder="little")[..., 0]   # cell j -> bit j

    return (~pack(sa0)).view(np.int8), pack(sa1).view(np.int8)


@functools.lru_cache(maxsize=MAP_CACHE)
def official_masks_np(seed: int, ber: float, bits: int = DEFAULT_BITS, position: int = -1
                      ) -> Tuple[np.ndarray, np.ndarray]:
    """(keep, s1): int8 (8192, wpr) masks of seed s."""
    return pack_masks(*official_cells(seed, ber, bits, position), bits)


def tile_period(keep: np.ndarray, s1: np.ndarray, device: torch.device) -> Tuple[torch.Tensor, torch.Tensor]:
    """(R, wpr) masks -> flat int8 (keep, s1) of one period of R·wpr² weights on `device`: weight i
    reads row (i // wpr²) mod R, column i mod wpr (the released code's torch.tile layout)."""
    rows, wpr = keep.shape
    keep_t, s1_t = to_device(torch.from_numpy(keep), device), to_device(torch.from_numpy(s1), device)
    return (keep_t[:, None, :].expand(rows, wpr, wpr).reshape(-1),   # (R, wpr) -> (R, wpr, wpr): a row
            s1_t[:, None, :].expand(rows, wpr, wpr).reshape(-1))     # repeats wpr times


def to_device(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Host -> device without waiting for the device's queued work (pinned, asynchronous on CUDA)."""
    if device.type != "cuda":
        return t.to(device)
    return t.pin_memory().to(device, non_blocking=True)


@functools.lru_cache(maxsize=DEVICE_CACHE)
def official_period(seed: int, ber: float, bits: int, position: int, device: torch.device
                    ) -> Tuple[torch.Tensor, torch.Tensor]:
    """(keep, s1) for weights 0 .. 8192·wpr² - 1 as flat int8 tensors on `device`; weight i uses entry
    i mod that period. Shared between calls: callers must not modify them."""
    return tile_period(*official_masks_np(seed, ber, bits, position), device)


def apply_period(q: torch.Tensor, keep: torch.Tensor, s1: torch.Tensor) -> torch.Tensor:
    """q' = (q AND keep) OR s1 for a flat int8 q (n,), the period (keep, s1) repeated over q."""
    period, n = keep.numel(), q.numel()
    reps, tail = divmod(n, period)
    out = torch.empty_like(q)
    if reps:                                   # layers longer than one period wrap to map row 0
        o = out[:reps * period].view(reps, period)
        torch.bitwise_and(q[:reps * period].view(reps, period), keep, out=o)
        o.bitwise_or_(s1)
    o = out[reps * period:]
    torch.bitwise_and(q[reps * period:], keep[:tail], out=o)
    o.bitwise_or_(s1[:tail])
    return out


def tile_index(n: int, rows: int, wpr: int, device: torch.device) -> torch.Tensor:
    """int64 (n,): the entry of a flat (rows·wpr) map that weight i reads, ((i // wpr²) mod rows)·wpr +
    i mod wpr: the same layout as `tile_period`, without expanding the map."""
    i = torch.arange(n, dtype=torch.int64, device=device)                              # (n,)
    return torch.div(i, wpr * wpr, rounding_mode="floor").remainder_(rows).mul_(wpr).add_(i % wpr)


def apply_tiled_batch(q: torch.Tensor, masks: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """q' = (q AND keep_s) OR s1_s for N maps s at once: flat int8 q (n,); masks int8 (R·wpr, 2N), entry
    e of map s's keep in column s and of its s1 in column N + s; `index` from `tile_index`. Returns
    int8 (N, n), a transposed view of an (n, N) tensor: one gather of whole rows (2N bytes each, much
    faster than gathering along the last dim on a CPU), one AND, one OR."""
    n_maps = masks.shape[1] // 2
    picked = masks.index_select(0, index)                                              # (n, 2N)
    out = torch.bitwise_and(q[:, None], picked[:, :n_maps]).bitwise_or_(picked[:, n_maps:])   # (n, N)
    return out.t()                                                                     # (N, n)


def apply_official(q: torch.Tensor, seed: int, ber: float, bits: int = DEFAULT_BITS, position: int = -1
                   ) -> torch.Tensor:
    """q' = (q AND NOT S0) OR S1 with the tiled map, for a flat int8 tensor q (n,); q is not modified."""
    return apply_period(q, *official_period(seed, ber, bits, position, q.device))

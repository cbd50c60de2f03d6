"""Independent-cell fault models of docs/DESIGN.md §5: `stuckat` (stuck-at-0/1) and `flip` (XOR), no tiling.

Every eligible bit of every weight is its own cell, faulty with probability ber, independently; a
faulty `stuckat` cell is stuck at 1 or at 0 with probability 1/2 each (as in `official`).
Drawing one uniform per cell costs ~8 floats per weight; instead the faulty cells are found
exactly by geometric gaps: the number of healthy cells before the next faulty one is
floor(E / -log(1 - ber)) with E ~ Exp(1), which is Geometric(ber) on {0, 1, ...}. The work is
proportional to the number of faults (≈ n·bits·ber), not to n·bits.

Randomness is drawn on the CPU with numpy's PCG64 from a seed sequence (stream, seed, layer index,
purpose), so the same (model, ber, seed, layer) gives the same bytes on any device; only the
fault positions (int64) and bit values (uint8) travel to the weights' device, where only the faulty
bytes are changed (a gather and an `index_add_`; see `apply_cells_`). `apply_cells_batch` does that
for the N seeds of a step at once (bitflip/batched.py); the numpy draws stay one per seed and layer.

Example:
    q2 = apply_flip(q.reshape(-1), ber=0.01, seed=3, layer_index=0)   # int8 (n,) -> int8 (n,)
"""
from __future__ import annotations

import math
from typing import NamedTuple, Optional, Sequence, Tuple

import numpy as np
import torch

from bitflip.official import to_device
from models.quant import DEFAULT_BITS

FLIP_STREAM = 1      # first word of the seed sequence, so flip and stuckat draw unrelated streams
STUCKAT_STREAM = 2
POSITIONS, VALUES = 0, 1   # last word: which cells are faulty / which value a stuck cell holds
CHUNK_SIGMAS = 8     # first draw covers the expected fault count + 8 std; rarely needs a second


def _rng(stream: int, seed: int, layer_index: int, purpose: int) -> np.random.Generator:
    return np.random.default_rng([stream, seed, layer_index, purpose])


def faulty_cells(rng: np.random.Generator, n_cells: int, ber: float) -> np.ndarray:
    """Sorted indices (int64) of the cells in [0, n_cells) that are faulty, each with prob. ber."""
    if ber <= 0 or n_cells == 0:
        return np.empty(0, dtype=np.int64)
    rate = -math.log1p(-ber)                   # Exp(1) / rate, floored, is Geometric(ber) from 0
    mean = n_cells * ber
    chunk = int(mean + CHUNK_SIGMAS * math.sqrt(mean) + 16)
    parts, last = [], -1
    while last < n_cells:                      # almost always one pass
        gaps = np.minimum(rng.standard_exponential(chunk) / rate, n_cells)      # capped: no int64 overflow
        gaps = gaps.astype(np.int64) + 1                                         # trunc = floor (>= 0)
        pos = last + np.cumsum(gaps)           # (chunk,) strictly increasing
        parts.append(pos)
        last = int(pos[-1])
    pos = np.concatenate(parts) if len(parts) > 1 else parts[0]
    return pos[:np.searchsorted(pos, n_cells)]


def _cells_to_bits(cells: np.ndarray, bits: int, position: int) -> Tuple[np.ndarray, np.ndarray]:
    """(weight index int64, bit value uint8 = 2^bit) of each faulty cell."""
    if position >= 0:                          # one cell per weight, at bit `position`
        return cells, np.full(cells.shape, 1 << position, dtype=np.uint8)
    if bits & (bits - 1) == 0:                 # 2, 4, 8 bits: shifts are cheaper than divmod
        shift = bits.bit_length() - 1
        weight, bit = cells >> shift, cells & (bits - 1)
    else:
        weight, bit = np.divmod(cells, bits)
    return weight, np.left_shift(np.uint8(1), bit.astype(np.uint8))


class Cells(NamedTuple):
    """One seed's faulty cells in one layer (host arrays): the byte each is in (int64), its bit value
    2^bit (uint8), and for stuck-at cells the value it is stuck at (0 or 2^bit, uint8; None: flipped)."""
    weight: np.ndarray
    value: np.ndarray
    stuck: Optional[np.ndarray]


def _cells(stream: int, n: int, ber: float, seed: int, layer_index: int, bits: int, position: int
           ) -> Tuple[np.random.Generator, np.ndarray, np.ndarray]:
    """(rng for cell values, weight index of each faulty cell, its bit value 2^bit) for n weights."""
    n_cells = n if position >= 0 else n * bits
    cells = faulty_cells(_rng(stream, seed, layer_index, POSITIONS), n_cells, ber)
    weight, value = _cells_to_bits(cells, bits, position)
    return _rng(stream, seed, layer_index, VALUES), weight, value


def flip_cells(n: int, ber: float, seed: int, layer_index: int = 0, bits: int = DEFAULT_BITS,
               position: int = -1) -> Cells:
    """The cells `flip` flips in a layer of n weights."""
    _, weight, value = _cells(FLIP_STREAM, n, ber, seed, layer_index, bits, position)
    return Cells(weight, value, None)


def stuckat_cells(n: int, ber: float, seed: int, layer_index: int = 0, bits: int = DEFAULT_BITS,
                  position: int = -1) -> Cells:
    """The stuck cells of `stuckat` in a layer of n weights, each stuck at 1 or 0 (a fair bit each)."""
    rng, weight, value = _cells(STUCKAT_STREAM, n, ber, seed, layer_index, bits, position)
    k = value.shape[0]
    stuck1 = np.unpackbits(rng.integers(0, 256, (k + 7) // 8, dtype=np.uint8), count=k)   # 1 = stuck at 1
    return Cells(weight, value, value * stuck1)


def apply_cells_(out: torch.Tensor, cells: Cells) -> torch.Tensor:
    """Set the faulty bits of flat int8 `out` in place (a fresh tensor the caller owns); returns it.

    Only the faulty bytes change: uint8 delta[k] = target - current is added (mod 256) to byte
    weight[k]. Each delta is +2^bit (set a 0 bit), -2^bit (clear a 1 bit) or 0: no carry or borrow
    leaves the bit, and the faulty bits of one byte are distinct, so the additions commute and
    `index_add_` is exact in any order, on any device.
    """
    weight = to_device(torch.from_numpy(cells.weight), out.device)       # (faults,) int64
    value = to_device(torch.from_numpy(cells.value), out.device)         # (faults,) uint8 2^bit
    current = out.view(torch.uint8).index_select(0, weight) & value     # 0 or 2^bit
    target = current ^ value if cells.stuck is None else to_device(torch.from_numpy(cells.stuck), out.device)
    out.view(torch.uint8).index_add_(0, weight, target - current)       # uint8 wrap: -2^bit = 256 - 2^bit
    return out


def apply_flip(q: torch.Tensor, ber: float, seed: int, layer_index: int = 0, bits: int = DEFAULT_BITS,
               position: int = -1) -> torch.Tensor:
    """q XOR mask, each eligible bit of each weight flipped with prob. ber; flat int8 (n,) in and out."""
    return apply_cells_(q.clone(), flip_cells(q.numel(), ber, seed, layer_index, bits, position))


def apply_stuckat(q: torch.Tensor, ber: float, seed: int, layer_index: int = 0, bits: int = DEFAULT_BITS,
                  position: int = -1) -> torch.Tensor:
    """(q AND NOT S0) OR S1 with independent stuck cells; flat int8 (n,) in and out."""
    return apply_cells_(q.clone(), stuckat_cells(q.numel(), ber, seed, layer_index, bits, position))


def apply_cells_batch(q: torch.Tensor, cells: Sequence[Cells]) -> torch.Tensor:
    """Flat int8 q (n,) -> (N, n): row i is q with the faulty cells `cells[i]` of seed i, all N seeds
    in one gather and one `index_add_` (the same integer arithmetic as `apply_cells_`, so the same bytes)."""
    n, rows = q.numel(), len(cells)
    joined = Cells(np.concatenate([c.weight + i * n for i, c in enumerate(cells)]),   # row i's bytes
                   np.concatenate([c.value for c in cells]),                          # at i*n .. i*n+n-1
                   None if cells[0].stuck is None else np.concatenate([c.stuck for c in cells]))
    out = q.expand(rows, n).contiguous()                                             # (N, n) copies of q
    apply_cells_(out.view(-1), joined)
    return out

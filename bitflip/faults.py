"""Bit-error models on int8 weights (docs/DESIGN.md §5): the config, the registry and the tensor-level entry point.

A fault model maps (flat int8 weights, config, seed, layer index) to new int8 weights. Four are
registered, in this order: `official` (default; the released code's tiled stuck-at SRAM map,
bit-exact), `stuckat` (stuck-at-0/1, an independent cell per bit), `flip` (each bit XOR-ed with
prob. ber) and `chipmap` (measured stuck-at maps, tiled like `official`; bitflip/chipmap.py).
Every hook a fault model has is named in its one `register` call: `prepare(cfg, seed)`, host work
that `FaultPrefetcher` may run early; and the batched form (bitflip/batched.py): `tiled(cfg, seed)`,
the packed (keep, s1) map of a seed, or `cells(n, cfg, seed, layer_index)`, a seed's faulty cells.
Bits are two's complement, bit 0 = LSB. With b < 8 precision bits the int8 holds a
sign-extended b-bit value: faults touch bits 0..b-1 only and the result is sign-extended again
from bit b-1, so a fault on the b-bit sign bit changes the sign.

Example:
    from bitflip import FaultConfig, inject, inject_cfg
    q2 = inject(q, "flip", ber=0.01, seed=3)                      # int8 tensor of q's shape
    q2 = inject_cfg(q, FaultConfig("official", 0.01), seed=50000)
"""
from __future__ import annotations

import numbers
import operator
from dataclasses import dataclass
from typing import List, Tuple

import numpy as np
import torch

from bitflip.chipmap import apply_chipmap, chipmap_masks_np, map_source
from bitflip.official import apply_official, official_masks_np
from bitflip.sampled import Cells, apply_flip, apply_stuckat, flip_cells, stuckat_cells
from common.cli import opt
from common.registry import Registry
from models.quant import DEFAULT_BITS

FAULT_MODELS = Registry("fault model")
ECC_CODES = ("none", "secded")   # --ecc: no correction, or SECDED (72,64) over every 8 int8 weights
ECC_LABELS = {"none": "", "secded": " + SECDED"}   # how a fault description names the code (console lines)
MAX_SEED = 2 ** 32 - 2   # numpy's legacy RandomState takes seeds < 2^32, and `official` uses seed + 1


@dataclass(frozen=True)
class FaultConfig:
    """Which bit errors a perturbed model gets (CLI: --fault-model, -ber, -pos, --bits).

    `bits` is also the weight precision of the base model and generator: the one place it is set.
    """
    model: str = opt("official", "fault model; `official` reproduces the released code's SRAM map",
                     flag="--fault-model", folder="{}")
    ber: float = opt(0.01, "bit error rate in (0,1): probability that a bit cell is faulty", flag="-ber",
                     folder="ber{}")
    position: int = opt(-1, "bit position 0..bits-1 to fault, -1 = any", flag="-pos", folder="pos{}")
    bits: int = opt(DEFAULT_BITS, "weight precision in bits, 2..8; faults touch bits 0..bits-1", flag="--bits",
                    folder="{}bit")
    maps: Tuple[str, ...] = opt((), "chipmap only: measured map sources (--fault-map); the injector's seed i "
                                "selects map i", flag="--fault-map")
    ecc: str = opt("none", "error correction of the weight memory: none, or secded (a (72,64) Hamming code per "
                   "8 int8 weights, decoded after the faults; bitflip/ecc.py)", flag="--ecc", folder="ecc-{}")

    def __post_init__(self):
        if not isinstance(self.model, str) or self.model not in FAULT_MODELS:
            raise ValueError(f"unknown fault model {self.model!r}; choose from "
                             f"{', '.join(FAULT_MODELS.names())}")
        if isinstance(self.ber, bool) or not isinstance(self.ber, numbers.Real) or not 0 <= self.ber < 1:
            raise ValueError(f"ber must be a number in [0, 1), got {self.ber!r}")
        if (isinstance(self.bits, bool) or not isinstance(self.bits, numbers.Integral)
                or not 2 <= self.bits <= 8):
            raise ValueError(f"bits must be an integer in 2..8, got {self.bits!r}")
        if (isinstance(self.position, bool) or not isinstance(self.position, numbers.Integral)
                or not -1 <= self.position < self.bits):
            raise ValueError(f"position must be -1 (any bit) or 0..{self.bits - 1} for "
                             f"{self.bits}-bit weights, got {self.position!r}")
        if self.ecc not in ECC_CODES:
            raise ValueError(f"unknown error correction {self.ecc!r}; choose from {', '.join(ECC_CODES)}")
        if self.ecc != "none":
            _check_ecc_layout(self)
        object.__setattr__(self, "maps", tuple(str(m) for m in self.maps))
        if FAULT_MODELS.meta(self.model).get("measured", False) != bool(self.maps):
            raise ValueError("--fault-model chipmap needs --fault-map (measured maps)" if self.maps == ()
                             else f"--fault-map is only used with --fault-model chipmap, not {self.model!r}")
        object.__setattr__(self, "ber", float(self.ber))          # plain Python types: hashable, JSON-able
        object.__setattr__(self, "position", int(self.position))
        object.__setattr__(self, "bits", int(self.bits))


def _check_ecc_layout(cfg: FaultConfig) -> None:
    """Refuse (ValueError, CLI flags named) what an ECC over words of 8 whole int8 weights cannot model:
    measured chip maps (cells of a chip, not our word layout), one bit position, b < 8 bit weights."""
    code = f"--ecc {cfg.ecc}"
    if FAULT_MODELS.meta(cfg.model).get("measured", False):
        raise ValueError(f"{code} needs a rate fault model ({', '.join(FAULT_MODELS.names(measured=False))}), "
                         f"not --fault-model {cfg.model}: a measured map gives chip cells, not 72-bit code words")
    if cfg.position != -1:
        raise ValueError(f"{code} protects whole weights: -pos must be -1 (any bit), got -pos {cfg.position}")
    if cfg.bits != 8:
        raise ValueError(f"{code} needs --bits 8 (a 64-bit word holds 8 int8 weights), got --bits {cfg.bits}")


def _official_host_work(cfg: FaultConfig, seed: int) -> None:
    official_masks_np(seed, cfg.ber, cfg.bits, cfg.position)     # numpy map, kept in its LRU cache


def _official_tiled(cfg: FaultConfig, seed: int) -> Tuple[np.ndarray, np.ndarray]:
    return official_masks_np(seed, cfg.ber, cfg.bits, cfg.position)


@FAULT_MODELS.register("official", measured=False, prepare=_official_host_work, tiled=_official_tiled)
def _official(q: torch.Tensor, cfg: FaultConfig, seed: int, layer_index: int) -> torch.Tensor:
    # Every layer restarts at map row 0, as in the released code: layer_index is not used.
    return apply_official(q, seed, cfg.ber, cfg.bits, cfg.position)


def _stuckat_cells(n: int, cfg: FaultConfig, seed: int, layer_index: int) -> Cells:
    return stuckat_cells(n, cfg.ber, seed, layer_index, cfg.bits, cfg.position)


@FAULT_MODELS.register("stuckat", measured=False, cells=_stuckat_cells)
def _stuckat(q: torch.Tensor, cfg: FaultConfig, seed: int, layer_index: int) -> torch.Tensor:
    return apply_stuckat(q, cfg.ber, seed, layer_index, cfg.bits, cfg.position)


def _flip_cells(n: int, cfg: FaultConfig, seed: int, layer_index: int) -> Cells:
    return flip_cells(n, cfg.ber, seed, layer_index, cfg.bits, cfg.position)


@FAULT_MODELS.register("flip", measured=False, cells=_flip_cells)
def _flip(q: torch.Tensor, cfg: FaultConfig, seed: int, layer_index: int) -> torch.Tensor:
    return apply_flip(q, cfg.ber, seed, layer_index, cfg.bits, cfg.position)


def _chipmap_tiled(cfg: FaultConfig, seed: int) -> Tuple[np.ndarray, np.ndarray]:
    return chipmap_masks_np(map_source(cfg.maps, seed), cfg.bits, cfg.position)


def _chipmap_host_work(cfg: FaultConfig, seed: int) -> None:
    if 0 <= seed < len(cfg.maps):     # a bad index is refused where the map is used, in the caller's thread
        _chipmap_tiled(cfg, seed)      # reads and packs the map file, kept in its LRU cache


@FAULT_MODELS.register("chipmap", measured=True, prepare=_chipmap_host_work, tiled=_chipmap_tiled)
def _chipmap(q: torch.Tensor, cfg: FaultConfig, seed: int, layer_index: int) -> torch.Tensor:
    # Measured maps (FaultConfig.maps), tiled like `official` (every layer from row 0); the seed is
    # the map index.
    return apply_chipmap(q, cfg.maps, seed, cfg.bits, cfg.position)


def list_fault_models() -> List[str]:
    return FAULT_MODELS.names()


def rate_fault_models() -> List[str]:
    """The fault models drawn from (ber, seed), i.e. all but the measured-map ones."""
    return FAULT_MODELS.names(measured=False)


def is_clean(cfg: FaultConfig) -> bool:
    """True when `cfg` changes no bit: ber 0 for a rate model (chipmap ignores ber: its maps say it)."""
    return cfg.ber == 0 and not cfg.maps


def prepare_cfg(cfg: FaultConfig, seed: int) -> None:
    """Do the host-side (numpy) part of `inject_cfg` for (cfg, seed) now, so that a later
    `inject_cfg` with the same arguments only runs device ops. A no-op for fault models without a
    `prepare` hook."""
    prepare = FAULT_MODELS.meta(cfg.model).get("prepare")
    if prepare is not None and not is_clean(cfg):
        prepare(cfg, check_seed(seed))


def check_seed(seed: int) -> int:
    """`seed` as an int if it is an integer in 0..MAX_SEED; else a ValueError naming it and the range."""
    try:
        value = operator.index(seed)
    except TypeError:
        raise ValueError(f"seed must be an integer in 0..{MAX_SEED}, got {seed!r}") from None
    if not 0 <= value <= MAX_SEED:
        raise ValueError(f"seed must be in 0..{MAX_SEED}, got {value}")
    return value


def sign_extend(q: torch.Tensor, bits: int) -> torch.Tensor:
    """Reinterpret the low `bits` bits of int8 q as a two's-complement value (identity for 8 bits)."""
    if bits == 8:
        return q
    sign = 1 << (bits - 1)
    return ((q & (2 * sign - 1)) ^ sign) - sign    # x in [0, 2^b): (x XOR s) - s, no int8 overflow


def inject_cfg(q: torch.Tensor, cfg: FaultConfig, seed: int, layer_index: int = 0) -> torch.Tensor:
    """Faulty copy of int8 weights q (any shape, any device) under `cfg`; q itself is not modified.

    The same (cfg, seed, layer_index) gives the same bytes on every device. `layer_index` selects an
    independent stream for `stuckat` / `flip`; `official` uses one map for every layer.
    """
    if not isinstance(q, torch.Tensor) or q.dtype != torch.int8:
        raise ValueError(f"inject expects an int8 tensor, got {getattr(q, 'dtype', type(q).__name__)}")
    if not isinstance(cfg, FaultConfig):
        raise ValueError(f"cfg must be a FaultConfig, got {type(cfg).__name__}")
    seed = check_seed(seed)
    if int(layer_index) < 0:
        raise ValueError(f"layer_index must be >= 0, got {layer_index}")
    flat = q.reshape(-1).contiguous()                     # (n,) PyTorch contiguous order
    if is_clean(cfg):
        return q.clone()
    out = FAULT_MODELS.get(cfg.model)(flat, cfg, seed, int(layer_index))
    return sign_extend(out, cfg.bits).view(q.shape)


def inject(q: torch.Tensor, fault_model: str = "official", ber: float = 0.01, seed: int = 0,
           position: int = -1, bits: int = DEFAULT_BITS, layer_index: int = 0) -> torch.Tensor:
    """`inject_cfg` with the fields spelled out: inject(q, "flip", 0.01, seed=3, position=-1)."""
    return inject_cfg(q, FaultConfig(fault_model, ber, position, bits), seed, layer_index)

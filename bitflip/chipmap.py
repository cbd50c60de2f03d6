"""The `chipmap` fault model: stuck-at maps measured on a real SRAM, applied with the `official` tiling.

A chip folder holds, per supply voltage V, two files of comma-separated 0/1 values, one line per SRAM
row, 128 bit cells per row, at least 8192 rows (the array of the released code's random map):
    fmap_sa0_v_<V>.txt    1 = the cell reads 0 whatever is written (stuck at 0)
    fmap_sa1_v_<V>.txt    1 = the cell reads 1 (stuck at 1)
or an `.npz` file with arrays `sa0` and `sa1` of the same shape. A folder's voltages are read from its
file names. The maps are packed and tiled exactly like `official` (bitflip/official.py: cell k*bits + j
is bit j of weight column k; weight i reads row (i // wpr²) mod R, every layer from row 0), with R the
map's row count, then q' = (q AND NOT S0) OR S1. A cell marked in both files therefore reads 1: the
stuck-at-1 value is applied last, as in that formula (`describe` counts such cells). With `-pos k`
only the cells of bit k are used. `-ber` is not used: each map's measured BER is its fraction of
faulty cells.

A fault config names its maps (`FaultConfig.maps`, one source string each: the sa0 file or the .npz)
and the injector's `seed` selects one: seed i = map i. Several maps (chips, or voltages of a chip
given as several --fault-map) so take the place of the evaluation fault seeds (mean ± std over maps)
and of EOPM's training fault seeds. Maps are read once per source (LRU, like `official`'s seeds).

Example:
    python zs_main.py faultmap export --seed 50000 -ber 0.01 --out chips/s50000
    python zs_main.py vgg11 transform_eval cifar10 -cp BASE.pt --fault-model chipmap --fault-map chips/
"""
from __future__ import annotations

import functools
import re
import zipfile
from pathlib import Path
from typing import List, Sequence, Tuple

import numpy as np
import torch

from bitflip.official import (DEVICE_CACHE, MAP_CACHE, MAP_COLS, MAP_ROWS, apply_period, official_cells,
                              pack_masks, tile_period, words_per_row)

FMAP = re.compile(r"^fmap_sa([01])_v_([^/]+)\.txt$")   # sa0/sa1, voltage label
ALL_VOLTAGES = "all"                                     # resolve_maps: every voltage of each chip


class FaultMapError(ValueError):
    """A missing or malformed fault-map file (a user error: one line, exit code 2)."""


def _voltage_key(v: str):
    try:
        return (0, float(v), v)
    except ValueError:
        return (1, 0.0, v)


def map_file(folder: Path, kind: int, voltage: str) -> Path:
    return Path(folder) / f"fmap_sa{kind}_v_{voltage}.txt"


def voltages(folder: Path) -> List[str]:
    """The voltages of a chip folder (from its file names), sorted; both files must exist for each."""
    found = {}
    for f in Path(folder).iterdir():
        m = FMAP.match(f.name)
        if m:
            found.setdefault(m.group(2), set()).add(int(m.group(1)))
    for v, kinds in found.items():
        if kinds != {0, 1}:
            have, miss = map_file(folder, min(kinds), v).name, map_file(folder, 1 - min(kinds), v).name
            raise FaultMapError(f"{folder} has {have} but no {miss}")
    return sorted(found, key=_voltage_key)


def resolve_maps(paths: Sequence[str], voltage: str = None) -> Tuple[str, ...]:
    """--fault-map paths -> map sources. A path is an .npz file, a chip folder (its map at `voltage`;
    the only one when it has a single voltage; every one for ALL_VOLTAGES), or a folder of those
    (sorted by name)."""
    out: List[str] = []
    for p in map(Path, paths):
        if p.is_file() and p.suffix == ".npz":
            out.append(str(p))
        elif p.is_dir() and any(FMAP.match(f.name) for f in p.iterdir()):
            vs = voltages(p)
            if voltage is None and len(vs) > 1:
                raise FaultMapError(f"{p} holds maps for voltages {', '.join(vs)}; pick one with --voltage")
            chosen = vs if voltage == ALL_VOLTAGES else [vs[0] if voltage is None else str(voltage)]
            for v in chosen:
                if v not in vs:
                    raise FaultMapError(f"--voltage {v}: {p} has no map for it; it has {', '.join(vs)}")
                out.append(str(map_file(p, 0, v)))
        elif p.is_dir():
            children = sorted(c for c in p.iterdir() if c.is_dir() or c.suffix == ".npz")
            if not children:
                raise FaultMapError(f"{p} holds no fmap_sa0_v_<V>.txt / fmap_sa1_v_<V>.txt files, "
                                    f".npz maps or chip folders")
            out.extend(resolve_maps([str(c) for c in children], voltage))
        else:
            raise FaultMapError(f"--fault-map {p}: not found; give a chip folder (fmap_sa0_v_<V>.txt, "
                                f"fmap_sa1_v_<V>.txt), an .npz with sa0 and sa1, or a folder of them")
    return tuple(out)


def _read_txt(path: Path) -> np.ndarray:
    if not path.is_file():
        raise FaultMapError(f"{path}: not found")
    try:
        a = np.loadtxt(path, delimiter=",", dtype=np.int64, ndmin=2)
    except ValueError as e:
        raise FaultMapError(f"{path}: not comma-separated 0/1 integers ({str(e).splitlines()[0]})") from None
    return a


def _check(name: str, a: np.ndarray) -> np.ndarray:
    if a.ndim != 2 or a.shape[0] < MAP_ROWS or a.shape[1] != MAP_COLS:
        raise FaultMapError(f"{name}: shape {'x'.join(map(str, a.shape))}; need at least {MAP_ROWS} rows "
                            f"x {MAP_COLS} columns")
    bad = ~np.isin(a, (0, 1))
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raise FaultMapError(f"{name}: value {a[r, c].item()!r} at row {r}, column {c}; only 0 and 1 are allowed")
    return a.astype(bool)


@functools.lru_cache(maxsize=MAP_CACHE)
def read_map(source: str) -> Tuple[np.ndarray, np.ndarray]:
    """(sa0, sa1): bool (R, 128) cell maps of a source (an sa0 .txt file or an .npz), checked."""
    path = Path(source)
    if path.suffix == ".npz":
        try:
            with np.load(path, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:     # EOFError: a 0-byte file
            why = (str(e).splitlines() or [type(e).__name__])[0]
            raise FaultMapError(f"{path}: not a readable .npz ({why})") from None
        missing = [k for k in ("sa0", "sa1") if k not in arrays]
        if missing:
            raise FaultMapError(f"{path}: no array {' or '.join(missing)} (has {', '.join(arrays)})")
        sa0, sa1 = arrays["sa0"], arrays["sa1"]
        names = (f"{path}[sa0]", f"{path}[sa1]")
    else:
        m = FMAP.match(path.name)
        if not m or m.group(1) != "0":
            raise FaultMapError(f"{path}: a map source is an fmap_sa0_v_<V>.txt file or an .npz")
        sa1_path = map_file(path.parent, 1, m.group(2))
        sa0, sa1 = _read_txt(path), _read_txt(sa1_path)
        names = (str(path), str(sa1_path))
    sa0, sa1 = _check(names[0], np.asarray(sa0)), _check(names[1], np.asarray(sa1))
    if sa0.shape != sa1.shape:
        raise FaultMapError(f"{names[0]} has {sa0.shape[0]} rows but {names[1]} has {sa1.shape[0]}")
    return sa0, sa1


def describe(source: str) -> str:
    """One line: the source, its measured BER and the stuck-at counts."""
    sa0, sa1 = read_map(source)
    both = int((sa0 & sa1).sum())
    m = FMAP.match(Path(source).name)
    where = f"{Path(source).parent} at V={m.group(2)}" if m else source
    return (f"{where}: measured BER {(sa0 | sa1).mean():.4%} ({int(sa0.sum())} stuck-at-0, "
            f"{int(sa1.sum())} stuck-at-1{f', {both} in both: read as 1' if both else ''}; "
            f"{sa0.shape[0]}x{sa0.shape[1]} cells)")


def measured_ber(sources: Sequence[str]) -> float:
    """Mean fraction of faulty cells over the maps."""
    return float(np.mean([(lambda a, b: (a | b).mean())(*read_map(s)) for s in sources]))


@functools.lru_cache(maxsize=MAP_CACHE)
def chipmap_masks_np(source: str, bits: int, position: int) -> Tuple[np.ndarray, np.ndarray]:
    """(keep, s1): int8 (R, wpr) masks of a map; with position k only the cells of bit k count."""
    sa0, sa1 = read_map(source)
    if position >= 0:
        cell = np.zeros(MAP_COLS, dtype=bool)
        cell[position:words_per_row(bits) * bits:bits] = True           # (128,) cells of bit k
        sa0, sa1 = sa0 & cell, sa1 & cell
    return pack_masks(sa0, sa1, bits)


@functools.lru_cache(maxsize=DEVICE_CACHE)
def chipmap_period(source: str, bits: int, position: int, device: torch.device):
    return tile_period(*chipmap_masks_np(source, bits, position), device)


def map_source(maps: Sequence[str], index: int) -> str:
    """The map that seed `index` selects: maps[index], or a ValueError naming the valid indices."""
    if not 0 <= index < len(maps):
        raise ValueError(f"chipmap seed {index} selects map {index}, but {len(maps)} map(s) are given "
                         f"(seeds are map indices 0..{len(maps) - 1})")
    return maps[index]


def apply_chipmap(q: torch.Tensor, maps: Sequence[str], index: int, bits: int = 8, position: int = -1
                  ) -> torch.Tensor:
    """q' = (q AND NOT S0) OR S1 with map `maps[index]` tiled like `official`; q: flat int8 (n,)."""
    return apply_period(q, *chipmap_period(map_source(maps, index), bits, position, q.device))


def write_map(folder: Path, voltage: str, sa0: np.ndarray, sa1: np.ndarray) -> Tuple[Path, Path]:
    """Write fmap_sa0_v_<V>.txt and fmap_sa1_v_<V>.txt (comma-separated 0/1 rows), atomically."""
    from common.ckpt import atomic_write
    paths = []
    for kind, cells in ((0, sa0), (1, sa1)):
        rows, cols = cells.shape
        text = np.full((rows, 2 * cols), ord(","), dtype=np.uint8)     # "c,c,...,c\n" per row
        text[:, 0::2] = cells.astype(np.uint8) + ord("0")
        text[:, -1] = ord("\n")
        path = map_file(folder, kind, voltage)
        atomic_write(path, lambda tmp: Path(tmp).write_bytes(text.tobytes()))
        paths.append(path)
    return tuple(paths)


def export_official(folder: Path, seed: int, ber: float, voltage: str = "0", bits: int = 8,
                    position: int = -1) -> Tuple[Path, Path]:
    """Write the `official` map of `seed` as a chip folder: chipmap on it gives official's faults."""
    return write_map(Path(folder), voltage, *official_cells(seed, ber, bits, position))

"""The grid file schema: every key checked by type, range and registry before a run is planned.

A grid file is a JSON object (see grids/). Each violation is one GridError line naming the file, the
key and the offending value, and what is accepted. Text values may hold no control characters
(newline, carriage return, NUL, ...): they end up in process arguments and in the #SBATCH lines of a
Slurm script, where a newline would start a line of its own. Relative paths (`out`,
`base_checkpoints`) are made absolute against the folder the sweep is started from, so the runs,
the status check and report.md all mean the same folder.

Example:
    kwargs = check_grid(json.loads(text), "grids/cifar10_table1.json")   # -> Grid(**kwargs)
"""
from __future__ import annotations

import math
import os
import re
from typing import Any, Callable, Dict, List, Sequence

CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")   # C0, DEL, C1, Unicode line/paragraph separators
MAX_SEED = 2 ** 32 - 1                                      # what zs_main.py's --seed accepts
REQUIRED = ("dataset", "archs")


class GridError(Exception):
    """A bad grid file or flag: printed as one line, exit code 2."""


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def check_text(what: str, value: Any) -> str:
    """A non-empty string without control characters, else GridError naming `what`."""
    if not isinstance(value, str) or not value:
        raise GridError(f"{what}: {_show(value)} is not a non-empty string")
    bad = CONTROL.search(value)
    if bad:
        raise GridError(f"{what}: {_show(value)} holds the control character {bad.group()!r}; "
                        f"write it on one line without control characters")
    return value


def _path(what: str, value: Any) -> str:
    return os.path.abspath(check_text(what, value))       # relative to where the sweep is started


def _flag(what: str, value: Any) -> str:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)                                 # "flags": ["-E", 300] reads as it is meant
    return check_text(what, value)


def _registered(names: Callable[[], Sequence[str]], kind: str) -> Callable[[str, Any], str]:
    def check(what: str, value: Any) -> str:
        if check_text(what, value) not in names():
            raise GridError(f"{what}: unknown {kind} {value!r}; choose from {', '.join(names())}")
        return value
    return check


def _arch(what: str, value: Any) -> str:
    from common.runs import UsageError
    from common.registry import UnknownName
    from models import check_arch
    try:
        return check_arch(check_text(what, value))
    except (UnknownName, UsageError) as e:
        raise GridError(f"{what}: {e}") from None


def _number(low: float, high: float, closed_low: bool, what_range: str) -> Callable[[str, Any], float]:
    def check(what: str, value: Any) -> float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) \
            and (low <= value if closed_low else low < value) and value < high
        if not ok:
            raise GridError(f"{what}: {_show(value)} is not {what_range}")
        return value
    return check


def _seed(what: str, value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_SEED:
        raise GridError(f"{what}: {_show(value)} is not an integer seed in 0..{MAX_SEED}")
    return value


def _datasets() -> List[str]:
    from datasets import list_datasets
    return list_datasets()


def _generators() -> List[str]:
    from generators import list_generators
    return list_generators()


# key -> (check of one value, list?, list may be empty?)
SCHEMA: Dict[str, tuple] = {
    "dataset": (_registered(_datasets, "dataset"), False, False),
    "archs": (_arch, True, False),
    "generators": (_registered(_generators, "generator"), True, False),
    "bers": (_number(0.0, 1.0, False, "a bit error rate in (0, 1)"), True, False),
    "lambdas": (_number(0.0, math.inf, True, "a finite lambda >= 0"), True, False),
    "seeds": (_seed, True, False),
    "base_seed": (_seed, False, False),
    "out": (_path, False, False),
    "flags": (_flag, True, True),
    "train_flags": (_flag, True, True),
    "eopm_flags": (_flag, True, True),
    "base_checkpoints": (None, False, False),             # checked below: {arch: path}
    "comment": (check_text, False, False),
}


def check_grid(data: Any, source: str) -> Dict[str, Any]:
    """The grid file's keys, checked and normalised (tuples, absolute paths), without 'comment'."""
    if not isinstance(data, dict):
        raise GridError(f"grid file {source}: need a JSON object with at least 'dataset' and 'archs'")
    unknown = sorted(set(data) - set(SCHEMA))
    if unknown:
        raise GridError(f"grid file {source}: unknown key(s) {', '.join(map(_show, unknown))}; accepted: "
                        f"{', '.join(sorted(SCHEMA))}")
    missing = [k for k in REQUIRED if k not in data]
    if missing:
        raise GridError(f"grid file {source}: need a JSON object with at least 'dataset' and 'archs' "
                        f"(missing {', '.join(missing)})")
    out: Dict[str, Any] = {}
    for key, value in data.items():
        check, is_list, may_be_empty = SCHEMA[key]
        where = f"grid file {source}: '{key}'"
        if key == "base_checkpoints":
            out[key] = _checkpoints(where, value, data["archs"])
        elif not is_list:
            out[key] = check(where, value)
        elif not isinstance(value, list) or not (value or may_be_empty):
            raise GridError(f"{where} must be a {'' if may_be_empty else 'non-empty '}list, got {_show(value)}")
        else:
            items = [check(f"{where}[{i}]", v) for i, v in enumerate(value)]
            if key != "flags" and not key.endswith("_flags") and len(set(items)) != len(items):
                first = next(v for v in items if items.count(v) > 1)
                raise GridError(f"{where} repeats a value ({_show(first)}); make every list distinct")
            out[key] = tuple(items)
    out.pop("comment", None)
    return out


def _checkpoints(where: str, value: Any, archs: Any) -> Dict[str, str]:
    if not isinstance(value, dict):
        raise GridError(f"{where} must be an object {{arch: path of its best.pt}}, got {_show(value)}")
    for arch in value:
        if not isinstance(archs, list) or arch not in archs:
            raise GridError(f"{where}: {_show(arch)} is not one of the grid's archs")
    return {arch: _path(f"{where}[{arch!r}]", path) for arch, path in value.items()}


def check_launch_options(partition: Any, slurm_extra: Sequence[str]) -> None:
    """--partition and --slurm-extra reach the #SBATCH lines: refuse control characters and
    anything that is not KEY=VALUE."""
    if partition is not None:
        check_text("--partition", partition)
    for kv in slurm_extra:
        check_text("--slurm-extra", kv)
        if "=" not in kv:
            raise GridError(f"--slurm-extra {kv!r}: give KEY=VALUE, e.g. account=abc")

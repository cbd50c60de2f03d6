"""Run files as JSON (docs/DESIGN.md §9): one JSON line of metrics per epoch, args.json and results,
written atomically; and the progress bars. How a run starts and ends lives in common/session.py.

Example:
    append_jsonl(run_dir / "metrics.jsonl", {"epoch": 1, "val_acc": 41.2})
    rows = read_jsonl(run_dir / "metrics.jsonl", skip_bad=True)     # a torn last line is skipped
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional

from common.errors import UsageError  # noqa: F401  (re-exported: modes and models import it from here)


def progress(iterable, desc: str, in_logs: bool = True, is_main: Optional[bool] = None, **kwargs):
    """A tqdm bar: live on a terminal; in a log file (nohup, sbatch) one line a minute at most, or
    nothing when `in_logs` is False (short inner loops such as one evaluation pass). Under torchrun
    only rank 0 draws bars: `is_main` (DistInfo.is_main), or, from callers without a DistInfo,
    torchrun's RANK variable."""
    from tqdm import tqdm
    live = sys.stderr.isatty()
    if is_main is None:
        is_main = os.environ.get("RANK", "0") == "0"
    return tqdm(iterable, desc=desc, leave=False, disable=not is_main or not (live or in_logs),
                mininterval=0.5 if live else 60, maxinterval=60 if live else 600, **kwargs)


def write_json(path: os.PathLike, obj: Any) -> None:
    from common.ckpt import atomic_write
    text = json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n"
    atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def write_jsonl(path: os.PathLike, rows: List[Dict[str, Any]]) -> None:
    """Replace a JSON-lines file atomically."""
    from common.ckpt import atomic_write
    text = "".join(json.dumps(r, default=str) + "\n" for r in rows)
    atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def append_jsonl(path: os.PathLike, row: Dict[str, Any]) -> None:
    with open(path, "a") as f:
        f.write(json.dumps(row, default=str) + "\n")


def read_jsonl(path: os.PathLike, skip_bad: bool = False) -> List[Dict[str, Any]]:
    """The rows of a JSON-lines file ([] when absent); `skip_bad` drops lines that are not JSON objects
    (such as the torn last line of a killed append, or bytes that are not text) instead of raising."""
    path = Path(path)
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text(errors="replace" if skip_bad else "strict").splitlines():
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            if skip_bad:
                continue
            raise
        if isinstance(row, dict) or not skip_bad:
            rows.append(row)
    return rows


def interrupted_message(run_dir: Optional[os.PathLike], trains: bool) -> str:
    """common.session.interrupted_message, for callers that import it from here (zs_main.py)."""
    from common.session import interrupted_message as message   # session imports this module
    return message(run_dir, trains)

"""Run files as JSON (docs/DESIGN.md §9): one JSON line of metrics per epoch, args.json and results,
written atomically (progress bars: common/progress.py). How a run starts and ends lives in common/session.py.

Example:
    append_jsonl(run_dir / "metrics.jsonl", {"epoch": 1, "val_acc": 41.2})
    rows = read_jsonl(run_dir / "metrics.jsonl", skip_bad=True)     # a torn last line is skipped
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Dict, List

from common.errors import UsageError  # noqa: F401  (re-exported: modes and models import it from here)


def write_json(path: os.PathLike, obj: Any) -> None:
    """Replace a JSON file atomically (a failed write: one WriteError line, the old file kept)."""
    from common.ckpt import atomic_write
    text = json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n"
    atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def write_jsonl(path: os.PathLike, rows: List[Dict[str, Any]]) -> None:
    """Replace a JSON-lines file atomically."""
    from common.ckpt import atomic_write
    text = "".join(json.dumps(r, default=str) + "\n" for r in rows)
    atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def append_jsonl(path: os.PathLike, row: Dict[str, Any]) -> None:
    """Append one row; a failed write (disk full, read-only, a folder of that name) is one WriteError
    line. A row torn by a failure or a kill is dropped by read_jsonl (and -rt rewrites the log)."""
    from common.ckpt import write_failed
    try:
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps(row, default=str) + "\n")
    except OSError as e:
        raise write_failed(path, e) from None


def read_jsonl(path: os.PathLike, skip_bad: bool = False) -> List[Dict[str, Any]]:
    """The rows (JSON objects) of a JSON-lines file of ours ([] when absent).

    The last line is dropped when it is torn (not a JSON object, not UTF-8): what a killed or failed
    append leaves. Any other bad line is dropped with `skip_bad`, else refused as one UsageError line
    naming the file and the line; so is a path that is a folder or cannot be read."""
    path = Path(path)
    if not path.exists():
        return []
    try:
        lines = [ln for ln in path.read_bytes().split(b"\n") if ln.strip()]
    except OSError as e:
        raise UsageError(f"cannot read {path}: {e.strerror or e}"
                         f"{'; move the folder away' if path.is_dir() else ''}") from None
    rows = []
    for number, line in enumerate(lines, 1):
        try:
            row = json.loads(line.decode("utf-8"))
        except ValueError:                  # UnicodeDecodeError is a ValueError too
            row = None
        if isinstance(row, dict):
            rows.append(row)
        elif not (skip_bad or number == len(lines)):
            raise UsageError(f"{path}: line {number} is not a JSON object ({line[:40]!r}); repair or "
                             f"delete the line")
    return rows


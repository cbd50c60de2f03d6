"""Self-describing checkpoints (docs/DESIGN.md §9), written atomically and read with `weights_only=True`.

Example:
    save_checkpoint({"kind": "base", "arch": "resnet18", "state_dict": net.state_dict()}, "run/last.pt")
    ckpt = load_checkpoint("run/last.pt")
"""
from __future__ import annotations

import os
import subprocess
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Any, Dict, Optional

import torch

FORMAT_VERSION = 1  # bump when the checkpoint dict changes incompatibly


class CheckpointError(Exception):
    """A checkpoint that is missing, unreadable or of the wrong kind (a user error, not a bug)."""


@lru_cache(maxsize=1)
def code_version() -> str:
    """The git commit of this checkout (with '+dirty' for local edits), or 'unknown'."""
    here = Path(__file__).resolve().parent.parent
    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=here, capture_output=True,
                             text=True, timeout=5).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (sha + ("+dirty" if dirty else "")) if sha else "unknown"


def atomic_write(path: os.PathLike, write_fn) -> None:
    """Call write_fn(tmp_path) then rename over `path`, so a crash never leaves a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write_fn(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def save_checkpoint(obj: Dict[str, Any], path: os.PathLike) -> None:
    obj = {"format_version": FORMAT_VERSION, "code_version": code_version(), **obj}
    atomic_write(path, lambda tmp: torch.save(obj, tmp))


def load_checkpoint(path: os.PathLike, kind: Optional[str] = None) -> Dict[str, Any]:
    """Load a checkpoint dict on the CPU; `kind` ('base' or 'generator') is checked when given."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # unpickling errors come in many types
        raise CheckpointError(f"cannot read checkpoint {path}: {type(e).__name__}: {e}".splitlines()[0]) from None
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        raise CheckpointError(f"{path} is not a NeuralFuse checkpoint (no 'state_dict' entry)")
    if kind is not None and ckpt.get("kind") != kind:
        raise CheckpointError(f"{path} holds a {ckpt.get('kind', 'unknown')!r} checkpoint, expected a {kind!r} one")
    return ckpt

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
from typing import Any, Dict, Optional, Sequence

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


TMP_SUFFIX = ".tmp"  # atomic_write's temporary files are ".<name>.<random>.tmp" beside the target


@lru_cache(maxsize=1)
def _file_mode() -> int:
    """The mode open() would give a new file under this process's umask (mkstemp's 0600 would not)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def atomic_write(path: os.PathLike, write_fn) -> None:
    """Call write_fn(tmp_path) then rename over `path`, so a crash never leaves a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TMP_SUFFIX, dir=path.parent)
    os.close(fd)
    try:
        write_fn(tmp)
        os.chmod(tmp, _file_mode())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def remove_stale_temps(folder: os.PathLike) -> int:
    """Delete temporary files a killed atomic_write left in `folder`; returns how many."""
    stale = [p for p in Path(folder).glob(f".*{TMP_SUFFIX}") if p.is_file()]
    for p in stale:
        p.unlink(missing_ok=True)
    return len(stale)


def share_file(src: os.PathLike, dst: os.PathLike) -> None:
    """Make `dst` hold exactly `src`'s bytes without storing them twice: a hard link (a copy where the
    file system has none), put in place atomically. Safe with atomic_write: a later rewrite of `src`
    renames a new file over it, and `dst` keeps the old bytes."""
    import shutil
    src, dst = Path(src), Path(dst)

    def link(tmp: str) -> None:
        os.unlink(tmp)                   # os.link needs a free name
        try:
            os.link(src, tmp)
        except OSError:                  # no hard links here (some network / FAT file systems)
            shutil.copyfile(src, tmp)
    atomic_write(dst, link)


def save_checkpoint(obj: Dict[str, Any], path: os.PathLike) -> None:
    obj = {"format_version": FORMAT_VERSION, "code_version": code_version(), **obj}
    atomic_write(path, lambda tmp: torch.save(obj, tmp))


# fields a checkpoint of each kind must carry to be used (besides "state_dict")
REQUIRED_FIELDS = {"base": ("arch", "dataset"), "generator": ("generator", "arch", "dataset")}


def load_checkpoint(path: os.PathLike, kind: Optional[str] = None, require: Sequence[str] = ()) -> Dict[str, Any]:
    """Load a checkpoint dict on the CPU; `kind` ('base' or 'generator') is checked when given, and so
    are that kind's metadata fields and the extra fields named in `require`."""
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
    absent = [f for f in (*REQUIRED_FIELDS.get(kind, ()), *require) if f not in ckpt]
    if absent:
        raise CheckpointError(f"{path} lacks the field(s) {', '.join(absent)}; it was not written by this "
                              f"code's train/transform_eopm_gen modes (or was edited)")
    return ckpt


def load_state(module: Any, state: Dict[str, Any], path: os.PathLike, what: str = "state_dict",
               hint: str = "") -> None:
    """module.load_state_dict(state), with a mismatch reported as one CheckpointError line: for a
    model, the first missing, unexpected and other-shape keys; `hint` is appended."""
    if isinstance(module, torch.nn.Module) and isinstance(state, dict):
        own = module.state_dict()
        groups = (("missing", [k for k in own if k not in state]),
                  ("unexpected", [k for k in state if k not in own]),
                  ("other shape", [k for k in own if k in state and own[k].shape != getattr(state[k], "shape", None)]))
        what_differs = "; ".join(f"{label} {', '.join(keys[:3])}{' ...' if len(keys) > 3 else ''}"
                                 for label, keys in groups if keys)
        if what_differs:
            raise CheckpointError(f"{path}: its {what} does not fit the model the command builds "
                                  f"({what_differs}){hint}")
    try:
        module.load_state_dict(state)
    except (RuntimeError, ValueError, KeyError, TypeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"{path}: its {what} does not fit the model the command builds ({first}){hint}") from None

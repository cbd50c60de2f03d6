"""Self-describing checkpoints (docs/DESIGN.md §9), written atomically, checksummed, and read with
`weights_only=True`; every write failure of ours is one line naming the file (WriteError).

Checksum: torch's zip reader checks no CRC, so a flipped bit in a tensor would load silently. The
SHA-256 of the archive torch.save writes is taken as the bytes stream to disk (no second pass, no
copy in memory) and stored as the zip archive's comment: the last bytes of the same file, which
torch.load ignores and `unzip -z` shows. One file, so copies and hard links (best.pt) keep their
checksum. Loading hashes the file in 4 MiB chunks before torch.load reads it. Checkpoints written
before this have no comment: they load with a one-line warning.

Example:
    save_checkpoint({"kind": "base", "arch": "resnet18", "state_dict": net.state_dict()}, "run/last.pt")
    ckpt = load_checkpoint("run/last.pt")
"""
from __future__ import annotations

import errno
import hashlib
import os
import struct
import subprocess
import tempfile
import warnings
from functools import lru_cache
from pathlib import Path
from typing import Any, BinaryIO, Dict, Optional, Sequence, Tuple

import torch

from common.runs import UsageError

FORMAT_VERSION = 1  # bump when the checkpoint dict changes incompatibly


class CheckpointError(Exception):
    """A checkpoint that is missing, unreadable, corrupt or of the wrong kind (a user error, not a bug)."""


class WriteError(UsageError):
    """A file we could not write (disk full, read-only file system, no permission, a folder in the
    way): one line naming the path and the cause. A UsageError, so zs_main prints it with exit 2."""


def write_failed(path: os.PathLike, e: OSError) -> WriteError:
    """The one-line WriteError for an OSError raised while writing `path`."""
    hint = {errno.ENOSPC: "; free some space", errno.EDQUOT: "; free some space",
            errno.EROFS: "; choose a writable folder", errno.EACCES: "; choose a folder you can write to",
            errno.EPERM: "; choose a folder you can write to",
            errno.EISDIR: "; a folder has that name: move it away"}.get(e.errno, "")
    return WriteError(f"cannot write {path}: {e.strerror or e}{hint}")


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
    """Call write_fn(tmp_path) then rename over `path`, so a crash never leaves a half-written file
    and a failed write leaves the previous `path` as it was. An OSError (disk full, read-only, no
    permission, a folder named `path`) becomes one WriteError line naming `path`."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TMP_SUFFIX, dir=path.parent)
    except OSError as e:
        above = next((p for p in path.parents if p.exists()), None)   # a file where a folder should be
        if above is not None and not above.is_dir():
            raise WriteError(f"cannot write {path}: {above} is a file, not a folder") from None
        raise write_failed(path, e) from None
    os.close(fd)
    try:
        write_fn(tmp)
        os.chmod(tmp, _file_mode())
        os.replace(tmp, path)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(e, OSError):
            raise write_failed(path, e) from None
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


CHECKSUM_TAG = b"neuralfuse-sha256:"               # the zip comment: this tag, then 64 hex digits
CHECKSUM_LEN = len(CHECKSUM_TAG) + 64
EOCD = b"PK\x05\x06"                             # zip end-of-central-directory record: 22 bytes + comment
EOCD_SIZE = 22
CHUNK = 1 << 22                                   # bytes hashed at a time when verifying


class _HashingWriter:
    """What torch.save streams its archive into: the file, with every byte also fed to SHA-256."""

    def __init__(self, f: BinaryIO):
        self.f, self.sha = f, hashlib.sha256()

    def write(self, b) -> int:
        self.sha.update(b)
        return self.f.write(b)

    def flush(self) -> None:
        self.f.flush()


def _write_with_checksum(obj: Any, tmp: str) -> None:
    """torch.save(obj) into `tmp`, hashed on the way; then its empty archive comment is replaced by the
    digest (the comment length, the archive's last 2 bytes, is rewritten in place)."""
    with open(tmp, "w+b") as f:
        sink = _HashingWriter(f)
        torch.save(obj, sink)
        f.seek(-EOCD_SIZE, os.SEEK_END)
        end = f.read(EOCD_SIZE)
        if end[:4] != EOCD or end[-2:] != b"\x00\x00":
            raise ValueError("torch.save did not end its archive with an empty-comment end record")
        f.seek(-2, os.SEEK_END)
        f.write(struct.pack("<H", CHECKSUM_LEN) + CHECKSUM_TAG + sink.sha.hexdigest().encode())


def _checksum_tail(f: BinaryIO) -> Optional[Tuple[int, bytes]]:
    """(where our checksum comment starts, the end record from there on) of the open file `f`, or None
    when it does not end in an archive end record with a comment of our length."""
    end = f.seek(0, os.SEEK_END) - CHECKSUM_LEN
    if end < EOCD_SIZE:
        return None
    f.seek(end - EOCD_SIZE)
    tail = f.read()
    return (end, tail) if tail[:4] == EOCD else None


def stored_checksum(path: os.PathLike) -> Optional[str]:
    """The SHA-256 (64 hex digits) that save_checkpoint stored at the end of `path`, read without
    hashing the file; None for a file without one (or none at all). It names the file's content:
    a copy elsewhere has the same one."""
    try:
        with open(path, "rb") as f:
            found = _checksum_tail(f)
    except OSError:
        return None
    if found is None or not found[1][EOCD_SIZE - 2:].startswith(struct.pack("<H", CHECKSUM_LEN) + CHECKSUM_TAG):
        return None
    return found[1][-64:].decode("ascii", errors="replace")


def verify_checksum(f: BinaryIO, path: os.PathLike) -> bool:
    """Check the open checkpoint file `f`: True when it ends in an archive end record carrying our
    checksum comment and the SHA-256 of the archive as torch wrote it (comment empty) matches;
    CheckpointError when it has that layout and anything differs; False otherwise (no checksum:
    written before checksums, or by torch.save directly; torch.load judges the rest)."""
    found = _checksum_tail(f)
    if found is None:
        return False
    end, tail = found
    sha, left, buf = hashlib.sha256(), end - 2, bytearray(CHUNK)
    f.seek(0)
    while left > 0:
        n = f.readinto(memoryview(buf)[:min(CHUNK, left)])
        if not n:
            break
        sha.update(memoryview(buf)[:n])
        left -= n
    sha.update(b"\x00\x00")                          # the comment length torch wrote
    if tail[EOCD_SIZE - 2:] != struct.pack("<H", CHECKSUM_LEN) + CHECKSUM_TAG + sha.hexdigest().encode():
        raise CheckpointError(f"{path} is corrupt: checksum mismatch (the file changed after it was "
                              f"written); use another copy or train it again")
    return True


def save_checkpoint(obj: Dict[str, Any], path: os.PathLike) -> None:
    """Write `obj` (plus the format and code versions) to `path` atomically, with its checksum."""
    obj = {"format_version": FORMAT_VERSION, "code_version": code_version(), **obj}
    atomic_write(path, lambda tmp: _write_with_checksum(obj, tmp))


def read_checkpoint_file(path: os.PathLike) -> Any:
    """torch.load(path, weights_only=True) on the CPU after checking the file's checksum (a file
    without one loads with a warning). Every failure is one CheckpointError line naming `path`."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    check_torch_file(path)                          # before the checksum warning: a text file gets one line
    try:
        with open(path, "rb") as f:
            checked = verify_checksum(f, path)
    except OSError as e:
        raise CheckpointError(f"cannot read checkpoint {path}: {e.strerror or e}") from None
    if not checked:
        warnings.warn(f"{path} has no checksum (written before checksums, or not by this code); "
                      f"it is read unverified", stacklevel=2)
    return torch_load(path)


# how torch.save's files begin: a zip archive (torch >= 1.6), or a pickle (protocol 2+: 0x80) in the legacy format
TORCH_FILE_STARTS = (b"PK\x03\x04", b"\x80")


def check_torch_file(path: os.PathLike) -> None:
    """One CheckpointError line unless `path` begins as torch.save's files do."""
    try:
        with open(path, "rb") as f:
            start = f.read(4)
    except OSError as e:
        raise CheckpointError(f"cannot read checkpoint {path}: {e.strerror or e}") from None
    if not start.startswith(TORCH_FILE_STARTS):
        raise CheckpointError(f"{path} is not a checkpoint of this tool (not a torch zip/pickle file)")


def torch_load(path: os.PathLike) -> Any:
    """torch.load(path, weights_only=True) on the CPU, every failure one CheckpointError line naming
    `path`. A file that is no torch file at all (a text file, an image) is said to be one, and torch's
    advice to retry with weights_only=False is never passed on: that would run the file's code."""
    check_torch_file(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # unpickling errors come in many types
        if "weights_only" in str(e) or "Weights only" in str(e):
            raise CheckpointError(f"{path} is not a checkpoint of this tool (it holds Python objects beyond "
                                  f"tensors and plain containers; refused unread)") from None
        raise CheckpointError(f"cannot read checkpoint {path}: {type(e).__name__}: {e}".splitlines()[0]) from None


# fields a checkpoint of each kind must carry to be used (besides "state_dict")
REQUIRED_FIELDS = {"base": ("arch", "dataset"), "generator": ("generator", "arch", "dataset")}


def load_checkpoint(path: os.PathLike, kind: Optional[str] = None, require: Sequence[str] = ()) -> Dict[str, Any]:
    """Load a checkpoint dict on the CPU; `kind` ('base' or 'generator') is checked when given, and so
    are that kind's metadata fields and the extra fields named in `require`."""
    path = Path(path)
    ckpt = read_checkpoint_file(path)
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        raise CheckpointError(f"{path} is not a NeuralFuse checkpoint (no 'state_dict' entry)")
    if not isinstance(ckpt["state_dict"], dict):
        raise CheckpointError(f"{path}: 'state_dict' is a {type(ckpt['state_dict']).__name__}, not a dict "
                              f"of tensors; the file was not written by this code (or was edited)")
    check_kind(ckpt, path, kind, require)
    return ckpt


def check_kind(ckpt: Dict[str, Any], path: os.PathLike, kind: Optional[str], require: Sequence[str] = ()) -> None:
    """One CheckpointError line unless `ckpt` is of `kind` (when given) and has that kind's metadata
    fields and the extra fields named in `require`."""
    if kind is not None and ckpt.get("kind") != kind:
        raise CheckpointError(f"{path} holds a {ckpt.get('kind', 'unknown')!r} checkpoint, expected a {kind!r} one")
    absent = [f for f in (*REQUIRED_FIELDS.get(kind, ()), *require) if f not in ckpt]
    if absent:
        raise CheckpointError(f"{path} lacks the field(s) {', '.join(absent)}; it was not written by this "
                              f"code's train/transform_eopm_gen modes (or was edited)")


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

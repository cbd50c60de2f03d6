"""One writer per run folder: an exclusive lock on RUN_DIR/.lock, held while a run writes there.

The lock is `fcntl.flock` on a file inside the folder. The kernel ties it to the open file, so it is
released when the holder closes it or dies for any reason (SIGKILL, OOM kill, node reboot for a local
disk): there is never a stale lock to delete by hand. The file's text, "PID HOST START-TIME", only
names the holder in the refusal message; it is rewritten by each new holder and left in place on
release (deleting it would race with a process that has just opened it, and could give two holders).

NFS: since Linux 2.6.12 the NFS client emulates flock with an fcntl byte-range lock on the whole file,
which NFSv4 (and NFSv3 through lockd/NLM) enforces on the server. So two nodes sharing a run folder
on NFS do exclude each other as long as the lock service works (NFSv4, or NFSv3 with lockd/statd
running and not mounted with `nolock`/`local_lock=flock|all`). With `nolock` or `local_lock`, and on
file systems whose flock is node-local (some FUSE and cluster file systems), the lock only excludes
processes on the same node. Acquiring never blocks: a held lock is refused at once.

Example:
    with RunLock(run_dir):                # UsageError naming the holder's PID and host if taken
        train(...)
"""
from __future__ import annotations

import errno
import fcntl
import os
import socket
import time
from pathlib import Path
from typing import Optional

from common.runs import UsageError

LOCK_NAME = ".lock"      # inside the run folder; not a run artefact (the folder guard ignores it)


class RunLock:
    """An exclusive, non-blocking lock on one run folder (created if missing); a context manager.

    flock locks belong to the open file description, so a second RunLock on the same folder is
    refused even inside the same process."""

    def __init__(self, run_dir: os.PathLike):
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_NAME
        self._fd: Optional[int] = None

    def acquire(self) -> "RunLock":
        """Take the lock or raise UsageError naming the process (PID, host, start time) that holds it."""
        if self._fd is not None:
            return self
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
        except OSError as e:
            raise UsageError(f"cannot lock run folder {self.run_dir}: {e.strerror or e} ({self.path}); "
                             f"give a folder you can write to") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            holder = _read_holder(fd)
            os.close(fd)
            if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise UsageError(f"run folder {self.run_dir} is in use by {holder}; wait for it to finish "
                                 f"or stop it, or choose another --run-dir") from None
            raise UsageError(f"cannot lock run folder {self.run_dir}: {e.strerror or e} (the file system "
                             f"may not support locks)") from None
        self._fd = fd
        started = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime())
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()} {socket.gethostname()} {started}\n".encode(), 0)
        except OSError:
            pass                   # the lock holds without its label; a refusal then says "pid unknown"
        return self

    def release(self) -> None:
        """Give the lock up (also done by the OS when the process ends)."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            try:
                fcntl.flock(fd, fcntl.LOCK_UN)
            finally:
                os.close(fd)

    @property
    def held(self) -> bool:
        return self._fd is not None

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def _read_holder(fd: int) -> str:
    """'process PID on HOST (since TIME)' from the lock file's text, as far as it can be read."""
    try:
        text = os.pread(fd, 512, 0).decode("utf-8", "replace").split()
    except OSError:
        text = []
    if len(text) >= 2 and text[0].isdigit():
        return f"process {text[0]} on {text[1]}" + (f" (since {text[2]})" if len(text) > 2 else "")
    return "another process (pid unknown: it is just starting)"

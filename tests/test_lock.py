"""common.lock.RunLock: one writer per run folder. A second process (or a second lock in this one) is
refused with a line naming the holder's PID and host; a SIGKILLed holder leaves no stale lock."""
from __future__ import annotations

import multiprocessing
import os
import signal
import socket

import pytest

from common.lock import LOCK_NAME, RunLock
from common.runs import UsageError


def _hold(run_dir, ready) -> None:
    lock = RunLock(run_dir).acquire()
    ready.set()
    signal.pause()                       # until killed; the lock is never released by hand
    lock.release()


@pytest.fixture
def holder(tmp_path):
    """A forked process holding the lock on tmp_path/run (fork: no second torch import)."""
    ctx = multiprocessing.get_context("fork")
    ready = ctx.Event()
    proc = ctx.Process(target=_hold, args=(tmp_path / "run", ready), daemon=True)
    proc.start()
    assert ready.wait(20), "the holder never took the lock"
    yield proc
    if proc.is_alive():
        proc.kill()
    proc.join(10)


def test_second_process_is_refused_with_the_holders_pid(holder, tmp_path):
    with pytest.raises(UsageError) as e:
        RunLock(tmp_path / "run").acquire()
    msg = str(e.value)
    assert f"process {holder.pid} on {socket.gethostname()}" in msg and str(tmp_path / "run") in msg
    assert "\n" not in msg


def test_lock_is_free_once_the_holder_is_sigkilled(holder, tmp_path):
    os.kill(holder.pid, signal.SIGKILL)
    holder.join(10)
    assert holder.exitcode == -signal.SIGKILL
    assert (tmp_path / "run" / LOCK_NAME).is_file()              # the file stays; the lock does not
    with RunLock(tmp_path / "run") as lock:
        assert lock.held
        assert (tmp_path / "run" / LOCK_NAME).read_text().split()[0] == str(os.getpid())


def test_same_process_second_lock_is_refused_until_released(tmp_path):
    first = RunLock(tmp_path).acquire()
    with pytest.raises(UsageError, match=f"process {os.getpid()} "):
        RunLock(tmp_path).acquire()
    first.release()
    with RunLock(tmp_path):
        pass
    assert not first.held


def test_folder_that_cannot_hold_a_lock_is_one_line(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(UsageError, match="cannot lock run folder .*file"):
        RunLock(tmp_path / "file" / "run").acquire()

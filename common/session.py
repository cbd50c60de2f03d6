"""One run's lifecycle (docs/DESIGN.md §9): device, process group, speed settings, run folder, teardown.

Every mode (train, transform_eopm_gen, transform_eval) runs inside one `Session`:

    with Session(cfgs.run, cfgs.perf) as s:          # device, speed checks, torchrun's process group
        data = ...; model = ...                       # read the inputs first: a bad one fails before -F
        run_dir = s.claim(cfgs.to_dict())             # guard (-F / -rt), seed, args.json
        fit(..., on_epoch=s.tensorboard(start_epoch))
    # leaving: TensorBoard and registered objects (s.closing) closed, process group left, on error too

and one rule says what a run folder holds: `folder_state(run_dir, epochs)` -> "done" / "partial" / "new",
used by the folder guard, the Ctrl-C message, `demo.py` and `zs_main.py sweep` (grid.py).
"""
from __future__ import annotations

import importlib.util
import os
import random
import shutil
from contextlib import ExitStack
from pathlib import Path
from typing import Any, List, Mapping, Optional, Protocol, TypeVar

import numpy as np
import torch

from common.ckpt import code_version, remove_stale_temps
from common.dist import DistInfo, init_distributed, shutdown
from common.errors import UsageError
from common.lock import RunLock
from common.runs import read_jsonl, write_json
from common.tblog import TensorBoardLog

T = TypeVar("T")

RESUME_FROM = "last.pt"       # what -rt continues from
RESULTS = "results.json"      # written last by the modes that evaluate: its presence means finished
# removed by -F (the last two: names used before per_seed/summary); args.json is rewritten anyway
STALE_ON_FORCE = ("metrics.jsonl", "last.pt", "best.pt", "results.json", "per_seed.csv", "summary.csv",
                  "sweep.png", "results.csv", "sweep.csv")
RUN_ARTEFACTS = ("args.json", *STALE_ON_FORCE)   # any of them: the folder holds a run; -F or -rt needed


class RunSpec(Protocol):
    """What a Session reads of a run's settings (config.RunConfig has these fields)."""
    run_dir: Optional[str]
    seed: int
    device: str
    force: bool
    resume: bool
    tensorboard: bool


class PerfSpec(Protocol):
    """What a Session checks of the speed settings (config.PerfConfig has these fields)."""
    amp: bool
    compile: bool
    batch_models: int


# --- the run folder ---------------------------------------------------------------------------------

def run_artefacts(run_dir: os.PathLike) -> List[str]:
    """The names in RUN_ARTEFACTS present in `run_dir` (none for a missing folder or a file)."""
    return [f for f in RUN_ARTEFACTS if (Path(run_dir) / f).is_file()]


def saved_epoch(run_dir: os.PathLike) -> Optional[int]:
    """The epoch count in `run_dir/last.pt`, or None when it is missing or unreadable (nothing to resume).
    Memory-mapped: only the few bytes holding the epoch are read, not the weights."""
    path = Path(run_dir) / RESUME_FROM
    if not path.is_file():
        return None
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # a torn or foreign file: unpickling errors come in many types
        return None
    epoch = ckpt.get("epoch") if isinstance(ckpt, dict) else None
    return epoch if isinstance(epoch, int) and not isinstance(epoch, bool) else None


def logged_epoch(run_dir: os.PathLike) -> Optional[int]:
    """The highest epoch in `run_dir/metrics.jsonl`; a torn or undecodable line (a killed append) is skipped."""
    epochs = [r["epoch"] for r in read_jsonl(Path(run_dir) / "metrics.jsonl", skip_bad=True)
              if isinstance(r.get("epoch"), int)]
    return max(epochs, default=None)


def folder_state(run_dir: os.PathLike, epochs: Optional[int] = None) -> str:
    """'done', 'partial' (-rt continues it) or 'new' (nothing to resume; it may still hold files).

    Done: with `epochs`, a training run whose last.pt and metrics log both reached `epochs` and that
    has its best.pt; without, a run that wrote results.json (its last step). Partial: not done, and
    last.pt is readable. Torn log lines and an unreadable last.pt never raise."""
    run_dir = Path(run_dir)
    saved = saved_epoch(run_dir)
    if epochs is None:
        done = (run_dir / RESULTS).is_file()
    else:
        done = ((run_dir / "best.pt").is_file() and (saved or 0) >= epochs
                and (logged_epoch(run_dir) or 0) >= epochs)
    return "done" if done else "partial" if saved is not None else "new"


def prepare_run_dir(path: os.PathLike, force: bool, resume: bool) -> Path:
    """Create the run folder. Refuse one holding any run file unless resuming (-rt) or forced (-F), -rt
    without a readable last.pt, and a path that is a file or cannot be created. -F removes the old
    run's files; temporary files of killed writes are removed."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UsageError(f"--run-dir {path} is a file, not a folder; give a folder path")
    saved = saved_epoch(path)
    taken = run_artefacts(path)
    if resume and not (path / RESUME_FROM).is_file():     # unreadable: train.resume says what is wrong
        raise UsageError(f"-rt: nothing to resume in {path} (no {RESUME_FROM}); drop -rt to start a "
                         f"new run{' (with -F: the folder holds ' + ', '.join(taken) + ')' if taken else ''}")
    if taken and not resume and not force:
        what = {"done": "a finished run", "partial": f"a run stopped after epoch {saved}",
                "new": "files of an earlier run, nothing to resume"}[folder_state(path)]
        raise UsageError(f"run folder {path} already holds {what} ({', '.join(taken)}); pass -F to overwrite"
                         f"{', -rt to resume' if saved is not None else ''} or --run-dir to choose another folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"--run-dir {path} cannot be created ({e.strerror or e}); give a folder you can "
                         f"write to") from None
    if force and not resume:
        for stale in STALE_ON_FORCE:
            if (path / stale).is_dir():           # not ours to delete: refuse before touching anything else
                raise UsageError(f"-F: {path / stale} is a folder where the run writes a file; move it away")
        for stale in STALE_ON_FORCE:
            (path / stale).unlink(missing_ok=True)
    remove_stale_temps(path)
    return path


def interrupted_message(run_dir: Optional[os.PathLike], trains: bool) -> str:
    """What Ctrl-C leaves behind, said truthfully: how many epochs are saved and whether -rt can resume."""
    if not trains or run_dir is None:
        return "interrupted; no results were written"
    run_dir = Path(run_dir)
    state = folder_state(run_dir)
    if state == "done":
        return f"interrupted after the results were written ({run_dir / RESULTS}); nothing is lost"
    if state == "new":
        again = " with -F" if run_artefacts(run_dir) else ""
        return (f"interrupted before the first epoch finished; nothing to resume in {run_dir} "
                f"(run the command again{again}, without -rt)")
    return (f"interrupted; epochs 1-{saved_epoch(run_dir)} are saved in {run_dir / RESUME_FROM} "
            f"(continue with the same command plus -rt)")


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices) from the run seed."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


# --- device and speed settings ----------------------------------------------------------------------

def resolve_device(name: str) -> torch.device:
    """'auto' -> cuda (this process's local rank under torchrun) if available, else cpu. A cuda:N device
    becomes the process's current CUDA device: side streams, CUDA graphs and compiled kernels go to the
    current device, and the tensors must be there too."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UsageError(f"--device {name}: CUDA is not available here; use --device cpu or auto")
        if name == "cuda" and "LOCAL_RANK" in os.environ:
            name = f"cuda:{int(os.environ['LOCAL_RANK'])}"
    elif name != "cpu":
        raise UsageError(f"--device {name!r}: choose auto, cpu, cuda or cuda:N")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UsageError(f"--device {name!r}: choose auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and device.index is not None:
        if device.index >= torch.cuda.device_count():
            raise UsageError(f"--device {name}: this machine has {torch.cuda.device_count()} CUDA device(s), "
                             f"cuda:0 to cuda:{torch.cuda.device_count() - 1}")
        torch.cuda.set_device(device)
    return device


def check_speed(perf: PerfSpec, device: torch.device, training: bool) -> None:
    """Refuse speed settings this run cannot honour, as one line (exit 2): --amp off CUDA, or where
    nothing trains (evaluation is float32 always); --compile without what torch.compile builds with
    (Triton on CUDA, a C++ compiler on CPU), or with --batch-models (it runs the models one at a time)."""
    if perf.amp and device.type != "cuda":
        raise UsageError(f"--amp needs a CUDA GPU (bfloat16 autocast); this run is on {device}, where "
                         f"bf16 is emulated on CPUs without native support (about 45x slower here); drop --amp")
    if perf.amp and not training:
        raise UsageError("--amp is for training: evaluation always runs in float32, so it would be ignored; "
                         "drop --amp")
    if not perf.compile:
        return
    if perf.batch_models > 1:
        raise UsageError(f"--compile runs the perturbed models one at a time; drop --batch-models "
                         f"{perf.batch_models} or --compile")
    if device.type == "cuda":
        if importlib.util.find_spec("triton") is None:
            raise UsageError("--compile on CUDA needs the triton package (it comes with PyTorch's CUDA "
                             "wheels); install it or drop --compile")
    elif device.type == "cpu":
        cxx = os.environ.get("CXX") or "c++"
        if not any(shutil.which(c) for c in (cxx, "g++", "clang++")):
            raise UsageError(f"--compile on CPU needs a C++ compiler ({cxx!r}, g++ or clang++ on PATH); "
                             f"install one or drop --compile")


# --- the session ------------------------------------------------------------------------------------

class Session:
    """A run from start-up to teardown. Built: the device is resolved and the speed settings checked
    (`training` False for evaluation). Entered: cuDNN autotuning on CUDA (fixed input shapes) and
    torchrun's process group joined. Left, on success and on error alike: TensorBoard and every object
    given to `closing` closed (last registered first), the process group left, cuDNN's setting restored."""

    def __init__(self, run: RunSpec, perf: PerfSpec, training: bool = True):
        self.run, self.perf = run, perf
        self.device = resolve_device(run.device)
        check_speed(perf, self.device, training)
        self.dist = DistInfo()
        self.run_dir: Optional[Path] = None
        self._closing = ExitStack()
        self._benchmark = torch.backends.cudnn.benchmark

    def __enter__(self) -> "Session":
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True   # fastest conv algorithms for the fixed input shapes
        try:
            self.dist = init_distributed(self.device)
        except BaseException:
            torch.backends.cudnn.benchmark = self._benchmark
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        try:
            self._closing.close()
        finally:
            shutdown(self.dist)
            torch.backends.cudnn.benchmark = self._benchmark

    def claim(self, record: Mapping[str, Any], run_dir: Optional[os.PathLike] = None) -> Path:
        """Take the run folder: guard it (-F / -rt), seed everything from the run seed, and write
        args.json (`record` + the code version; a resumed run's is written by train.resume once checked).
        Call it only after the inputs were read: -F must not replace a run for a command that fails.
        `run_dir` defaults to the run settings' (transform_eval's is named after the generator it reads).
        Returns the folder on every rank; only rank 0 touches it."""
        folder = run_dir or self.run.run_dir
        if not folder:
            raise ValueError("Session.claim needs a resolved run folder (config.Configs.with_run_dir)")
        self.run_dir = Path(folder)
        if self.dist.is_main:
            if self.run_dir.is_file():
                raise UsageError(f"--run-dir {self.run_dir} is a file, not a folder; give a folder path")
            lock = RunLock(self.run_dir).acquire()    # one writer per folder, before the guard looks at it
            self._closing.callback(lock.release)      # released when the session ends (or the process dies)
            prepare_run_dir(self.run_dir, self.run.force, self.run.resume)
        seed_everything(self.run.seed)
        if self.dist.is_main and not self.run.resume:
            write_json(self.run_dir / "args.json", {"code_version": code_version(), **record})
        return self.run_dir

    def tensorboard(self, start_epoch: int) -> Optional[TensorBoardLog]:
        """The TensorBoard log (--tensorboard, rank 0; closed with the session), else None."""
        if not (self.run.tensorboard and self.dist.is_main):
            return None
        if self.run_dir is None:
            raise RuntimeError("Session.tensorboard needs the run folder: call claim first")
        return self.closing(TensorBoardLog(self.run_dir, start_epoch))

    def closing(self, obj: T) -> T:
        """Close `obj` (anything with .close(), e.g. a FaultPrefetcher) when the session ends; returns it."""
        self._closing.callback(obj.close)
        return obj

"""The paper's grids as one command: expand a grid file into runs, skip finished ones, launch the rest.

A grid file (JSON; see grids/) names a dataset, base models, generators, BERs, λ values and seeds.
It expands into one `train` run per base model (unless its checkpoint is given) and one
`transform_eopm_gen` run per (base, generator, BER, λ, seed), each in its own run folder under
`out`. A run whose result exists is skipped (a base model whose metrics.jsonl reached -E, a generator
with results.json); a started one is resumed with -rt. Each run is a fresh `zs_main.py` process,
launched one after another here (default) or as Slurm jobs through the optional `submitit` package
(`--slurm`); generator jobs wait for their base job (afterok). The grid ends with the `report` table.

Grid files are checked key by key first (grid_schema.py). Relative paths in a grid file mean what they
would mean typed in the folder the sweep is started from: `out` and `base_checkpoints` are made
absolute there, and local runs start in that folder (so do paths inside `flags`). SIGINT/SIGTERM sent
to a local sweep reach its running run, which saves and stops; the sweep waits for it (at most
KILL_AFTER_S, then kills it) and exits 130/143, leaving nothing running.

Example:
    python zs_main.py sweep grids/cifar10_table1.json                          # locally, one after another
    python zs_main.py sweep grids/cifar10_table1.json --slurm --partition gpu --gpus 1 --time 2880
"""
from __future__ import annotations

import argparse
import contextlib
import io
import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from config import RUNS_ROOT
from grid_schema import GridError, check_grid, check_launch_options

ROOT = Path(__file__).resolve().parent
LAUNCHES = ("local", "slurm", "submitit-local", "submitit-debug")   # the last two: submitit without a cluster
FORWARDED = (signal.SIGINT, signal.SIGTERM)   # passed on to the running run (local launch)
KILL_AFTER_S = 60.0                            # how long a stopped run may take to save and exit
POLL_S = 0.2                                   # how often the wait looks at the clock after a signal
# a run in its own process group: Ctrl-C on the terminal reaches the sweep only, which forwards it once
OWN_GROUP = {"process_group": 0} if sys.version_info >= (3, 11) else {"preexec_fn": os.setpgrp}


class SweepInterrupted(Exception):
    """SIGINT/SIGTERM stopped the sweep; its running run (if any) was stopped too. Exit 128 + signal."""

    def __init__(self, signum: int, run: str = "", code: Optional[int] = None):
        super().__init__(signum, run, code)
        self.signum, self.run, self.code = signum, run, code

    def __str__(self) -> str:
        name = signal.Signals(self.signum).name
        if not self.run:
            return f"interrupted by {name}"
        return (f"interrupted by {name}: run {self.run} was stopped (exit {self.code}); run the same sweep "
                f"command again to resume it (finished runs are skipped)")


@dataclass(frozen=True)
class Grid:
    dataset: str
    archs: Tuple[str, ...]
    generators: Tuple[str, ...] = ("ConvL",)
    bers: Tuple[float, ...] = (0.01,)
    lambdas: Tuple[float, ...] = (5.0,)
    seeds: Tuple[int, ...] = (0,)                 # generator (EOPM) run seeds
    base_seed: int = 0                            # --seed of the base-model runs
    out: str = f"{RUNS_ROOT}/grid"                # every run folder goes under here
    flags: Tuple[str, ...] = ()                   # passed to every run (e.g. --data-root, -BS)
    train_flags: Tuple[str, ...] = ()             # base-model runs only (e.g. -E 300 -LR 0.001)
    eopm_flags: Tuple[str, ...] = ()              # generator runs only (e.g. -E 150 -N 10 --eval-bers ...)
    base_checkpoints: Dict[str, str] = field(default_factory=dict)  # arch -> existing best.pt: no base run


@dataclass(frozen=True)
class Run:
    name: str
    stage: str                  # "base" (train) or "gen" (transform_eopm_gen)
    run_dir: Path
    argv: Tuple[str, ...]       # zs_main.py arguments, without -rt
    epochs: int
    needs: Optional[str] = None  # name of the base run this one waits for


def load_grid(path: str) -> Grid:
    """The grid file at `path`, checked key by key (grid_schema.SCHEMA); one GridError line otherwise."""
    try:
        data = json.loads(Path(path).read_bytes().decode("utf-8"))
    except (OSError, ValueError) as e:               # ValueError: not UTF-8, not JSON
        raise GridError(f"grid file {path}: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
    kwargs = check_grid(data, path)
    kwargs.setdefault("out", os.path.abspath(Grid.out))  # relative to where the sweep is started
    return Grid(**kwargs)


def _parsed(argv: Sequence[str], name: str) -> argparse.Namespace:
    """The run parser checks every run before anything starts (and supplies defaults such as -E);
    its refusal becomes part of one GridError line."""
    from run_args import build_parser
    said = io.StringIO()
    try:
        with contextlib.redirect_stderr(said):
            return build_parser(("train", "transform_eopm_gen")).parse_args(list(argv))
    except SystemExit:
        why = [ln.split("error: ", 1)[-1] for ln in said.getvalue().splitlines() if "error: " in ln]
        raise GridError(f"run {name}: the arguments were refused ({why[-1] if why else 'see above'}): "
                        f"{' '.join(argv)}") from None


def expand(grid: Grid) -> List[Run]:
    """Base-model runs first, then generator runs, each with its own folder under grid.out."""
    out = Path(grid.out)
    runs, base_ckpt, base_run = [], {}, {}
    for arch in grid.archs:
        if arch in grid.base_checkpoints:
            base_ckpt[arch] = grid.base_checkpoints[arch]
            if not Path(base_ckpt[arch]).is_file():
                raise GridError(f"base_checkpoints: {base_ckpt[arch]} (for {arch}) does not exist; train it "
                                f"first (its grid file, or zs_main.py {arch} train {grid.dataset})")
            continue
        name = f"{arch}_{grid.dataset}_s{grid.base_seed}"
        run_dir = out / "base" / name
        argv = (arch, "train", grid.dataset, *grid.flags, *grid.train_flags, "--seed", str(grid.base_seed),
                "--run-dir", str(run_dir))
        runs.append(Run(name, "base", run_dir, argv, _parsed(argv, name).E))
        base_ckpt[arch], base_run[arch] = str(run_dir / "best.pt"), name
    for arch, gen, ber, lam, seed in itertools.product(grid.archs, grid.generators, grid.bers, grid.lambdas,
                                                      grid.seeds):
        name = f"{arch}_{gen}_ber{ber:g}_lam{lam:g}_s{seed}"
        run_dir = out / "gen" / name
        argv = (arch, "transform_eopm_gen", grid.dataset, *grid.flags, *grid.eopm_flags, "-cp", base_ckpt[arch],
                "-G", gen, "-ber", f"{ber:g}", "-LM", f"{lam:g}", "--seed", str(seed), "--run-dir", str(run_dir))
        runs.append(Run(name, "gen", run_dir, argv, _parsed(argv, name).E, needs=base_run.get(arch)))
    names = [r.name for r in runs]
    if len(set(names)) != len(names):
        raise GridError("the grid repeats a value (two runs would share a folder); make every list distinct")
    return runs


def status(run: Run) -> str:
    """'done' (a generator's results.json; a base model trained for -E epochs), 'partial' (resume with
    -rt) or 'new' (start it, with -F over anything a failed attempt left): common.session.folder_state."""
    from common.session import folder_state
    return folder_state(run.run_dir, None if run.stage == "gen" else run.epochs)


def command(run: Run, gpus: int) -> List[str]:
    """The process to start: zs_main.py, under torchrun when a job has several GPUs."""
    from common.session import run_artefacts
    state = status(run)            # 'new' but holding files (a failed first attempt): replace them
    argv = [*run.argv, *(["-rt"] if state == "partial" else ["-F"] if state == "new" and run_artefacts(run.run_dir)
                         else [])]
    launcher = [sys.executable] if gpus <= 1 else \
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(gpus)]
    return [*launcher, str(ROOT / "zs_main.py"), *argv]


def run_process(cmd: List[str], forward: bool = True) -> int:
    """Start one run as a clean process (in the caller's folder) and wait for it; returns its exit code.
    With `forward` (local launch), SIGINT/SIGTERM received meanwhile are forwarded to it; once it has
    stopped (or been killed after KILL_AFTER_S), SweepInterrupted is raised. A Slurm job leaves
    signals to Slurm, which signals every process of the job, and to submitit's own handlers."""
    if not forward:
        return subprocess.run(cmd).returncode
    received: List[int] = []
    child: List[subprocess.Popen] = []

    def pass_on(signum, frame) -> None:
        received.append(signum)
        if child and child[0].poll() is None:
            child[0].send_signal(signum)
    main_thread = threading.current_thread() is threading.main_thread()   # signal handlers live there only
    old = {s: signal.signal(s, pass_on) for s in FORWARDED} if main_thread else {}
    try:
        child.append(subprocess.Popen(cmd, **OWN_GROUP))
        if received:                                   # a signal came while the process was starting
            child[0].send_signal(received[0])
        code = _wait(child[0], received)
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)
    if received:
        raise SweepInterrupted(received[0], code=code)
    return code


def _wait(proc: subprocess.Popen, received: List[int]) -> int:
    """proc's exit code; after a forwarded signal, at most KILL_AFTER_S more, then SIGKILL."""
    deadline = None
    while True:
        try:
            return proc.wait(timeout=POLL_S if received else 1.0)
        except subprocess.TimeoutExpired:
            if not received:
                continue
            deadline = deadline or time.monotonic() + KILL_AFTER_S
            if time.monotonic() >= deadline:
                print(f"[sweep] the run did not stop within {KILL_AFTER_S:g} s of "
                      f"{signal.Signals(received[0]).name}; killing it", file=sys.stderr, flush=True)
                proc.kill()
                return proc.wait()


def run_command(cmd: List[str]) -> int:
    """The function a submitit job executes on its node: one run, an exception when it fails."""
    rc = run_process(cmd, forward=False)
    if rc != 0:
        raise RuntimeError(f"exit code {rc}: {' '.join(cmd)}")
    return rc


def launch_local(stages: List[List[Run]], opts) -> List[str]:
    """One run after another in this terminal; returns the names of failed runs."""
    failed: List[str] = []
    for run in itertools.chain(*stages):
        if run.needs in failed:
            print(f"[sweep] skip {run.name}: its base run {run.needs} failed")
            failed.append(run.name)
            continue
        cmd = command(run, opts.gpus)
        print(f"[sweep] {run.name}: {' '.join(cmd[1:])}", flush=True)
        try:
            code = run_process(cmd)
        except SweepInterrupted as e:
            raise SweepInterrupted(e.signum, run.name, e.code) from None
        if code != 0:
            print(f"[sweep] {run.name} failed")
            failed.append(run.name)
    return failed


def launch_submitit(stages: List[List[Run]], opts) -> List[str]:
    """Every run as a submitit job (Slurm, or submitit's local/debug executors for tests)."""
    try:
        import submitit
    except ImportError:
        raise GridError("--slurm needs the optional package submitit: pip install -r requirements-optional.txt") \
            from None
    import cloudpickle
    cloudpickle.register_pickle_by_value(sys.modules[__name__])   # jobs need not import this file
    cluster = {"slurm": "slurm", "submitit-local": "local", "submitit-debug": "debug"}[opts.launch]
    jobs: Dict[str, object] = {}
    for stage in stages:
        if not stage:
            continue
        ex = submitit.AutoExecutor(folder=Path(opts.grid_out) / "submitit" / "%j", cluster=cluster)
        if cluster != "slurm":      # no dependencies without Slurm: finish the base runs first
            for job in jobs.values():
                job.wait()
        params = job_parameters(stage, opts, cluster, jobs)
        ex.update_parameters(**{k: v for k, v in params.items() if v is not None})
        cmds = [command(r, opts.gpus) for r in stage]
        if opts.array:
            submitted = ex.map_array(run_command, cmds)
        else:
            submitted = [ex.submit(run_command, c) for c in cmds]
        for run, job in zip(stage, submitted):
            jobs[run.name] = job
            print(f"[sweep] {run.name}: job {job.job_id}")
    if opts.no_wait:
        print("[sweep] submitted; run the same sweep command again later for the report (finished runs are skipped)")
        return []
    failed = []
    for name, job in jobs.items():
        if job.exception() is not None:
            print(f"[sweep] {name} failed (job {job.job_id}): see {job.paths.stderr}")
            failed.append(name)
    return failed


def job_parameters(stage: List[Run], opts, cluster: str, jobs: Dict[str, object]) -> Dict[str, object]:
    """submitit parameters for a stage (submitit shell-quotes each value in its #SBATCH lines; values
    with control characters were refused before: grid_schema)."""
    params = dict(timeout_min=opts.time, gpus_per_node=opts.gpus, tasks_per_node=1,
                  cpus_per_task=opts.cpus, name="neuralfuse")
    if cluster == "slurm":
        extra = dict(kv.split("=", 1) for kv in opts.slurm_extra)
        waits = sorted({jobs[r.needs].job_id for r in stage if r.needs in jobs})
        if waits:
            extra["dependency"] = "afterok:" + ":".join(waits)
        params.update(slurm_partition=opts.partition, slurm_array_parallelism=opts.array_parallelism,
                      slurm_additional_parameters=extra)
    return params


LAUNCHERS = {"local": launch_local, "slurm": launch_submitit, "submitit-local": launch_submitit,
             "submitit-debug": launch_submitit}


def build_parser() -> argparse.ArgumentParser:
    from common.cli import OneLineParser
    p = OneLineParser(prog="zs_main.py sweep", description="Run a grid of NeuralFuse runs (grids/*.json), "
                "skipping finished ones, then print the report table.")
    p.add_argument("grid", metavar="GRIDFILE", help="a grid file such as grids/cifar10_table1.json")
    p.add_argument("--launch", choices=LAUNCHES, default="local",
                   help="local (one zs_main.py process after another), slurm (via submitit), or submitit's "
                        "local/debug executors (no cluster needed) (default local)")
    p.add_argument("--slurm", dest="launch", action="store_const", const="slurm", help="same as --launch slurm")
    p.add_argument("--dry-run", action="store_true", help="list the runs and their status, start nothing")
    p.add_argument("--gpus", type=int, default=1, metavar="N",
                   help="GPUs per run; above 1 a run starts under torchrun (default 1)")
    p.add_argument("--partition", default=None, metavar="NAME", help="Slurm partition")
    p.add_argument("--time", type=int, default=24 * 60, metavar="MIN",
                   help="Slurm time limit per job, minutes (default 1440)")
    p.add_argument("--cpus", type=int, default=None, metavar="N", help="CPUs per job")
    p.add_argument("--array", action="store_true", help="submit each stage as one Slurm job array")
    p.add_argument("--array-parallelism", type=int, default=None, metavar="N",
                   help="--array: most array tasks running at once")
    p.add_argument("--slurm-extra", nargs="*", default=[], metavar="KEY=VALUE",
                   help="more sbatch options, e.g. account=abc qos=high")
    p.add_argument("--no-wait", action="store_true", help="submit and return without waiting (Slurm)")
    return p


def _sweep(opts: argparse.Namespace) -> int:
    grid = load_grid(opts.grid)
    opts.grid_out = grid.out
    check_launch_options(opts.partition, opts.slurm_extra)
    runs = expand(grid)
    todo = [r for r in runs if status(r) != "done"]
    print(f"[sweep] {opts.grid}: {len(runs)} runs, {len(runs) - len(todo)} done, {len(todo)} to run "
          f"({opts.launch})")
    if opts.dry_run:
        for r in runs:
            print(f"  {status(r):7} {r.name}: zs_main.py {' '.join(r.argv)}")
        return 0
    stages = [[r for r in todo if r.stage == s] for s in ("base", "gen")]
    try:
        failed = LAUNCHERS[opts.launch](stages, opts) if todo else []
    except SweepInterrupted as e:
        print(f"zs_main.py sweep: {e}", file=sys.stderr)
        return 128 + e.signum
    finished = [str(r.run_dir) for r in runs if r.stage == "gen" and status(r) == "done"]
    if finished:
        from eval.report import main as report_main
        report_main([*finished, "--out", str(Path(grid.out) / "report.md")])
    if failed:
        print(f"[sweep] {len(failed)} run(s) failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


def main(argv: Sequence[str]) -> int:
    from common.cli import EXIT_USAGE, run_subcommand
    return run_subcommand(build_parser(), argv, _sweep, {GridError: EXIT_USAGE})


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""The paper's grids as one command: expand a grid file into runs, skip finished ones, launch the rest.

A grid file (JSON; see grids/) names a dataset, base models, generators, BERs, λ values and seeds.
It expands into one `train` run per base model (unless its checkpoint is given) and one
`transform_eopm_gen` run per (base, generator, BER, λ, seed), each in its own run folder under
`out`. A run whose result exists is skipped (a base model whose metrics.jsonl reached -E, a generator
with results.json); a started one is resumed with -rt. Each run is a fresh `zs_main.py` process,
launched one after another here (default) or as Slurm jobs through the optional `submitit` package
(`--slurm`); generator jobs wait for their base job (afterok). The grid ends with the `report` table.

Example:
    python zs_main.py sweep grids/cifar10_table1.json                          # locally, one after another
    python zs_main.py sweep grids/cifar10_table1.json --slurm --partition gpu --gpus 1 --time 2880
"""
from __future__ import annotations

import argparse
import itertools
import json
import subprocess
import sys
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from config import RUNS_ROOT

ROOT = Path(__file__).resolve().parent
LAUNCHES = ("local", "slurm", "submitit-local", "submitit-debug")   # the last two: submitit without a cluster


class GridError(Exception):
    """A bad grid file or flag: printed as one line, exit code 2."""


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
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise GridError(f"grid file {path}: {e}") from None
    known = {f.name for f in fields(Grid)}
    if not isinstance(data, dict) or not {"dataset", "archs"} <= set(data):
        raise GridError(f"grid file {path}: need a JSON object with at least 'dataset' and 'archs'")
    unknown = sorted(set(data) - known - {"comment"})
    if unknown:
        raise GridError(f"grid file {path}: unknown key(s) {', '.join(unknown)}; accepted: {', '.join(sorted(known))}")
    for k, v in data.items():
        if k not in ("dataset", "out", "base_seed", "base_checkpoints", "comment") and not isinstance(v, list):
            raise GridError(f"grid file {path}: '{k}' must be a list, got {v!r}")
    data.pop("comment", None)
    return Grid(**{k: tuple(str(x) if k.endswith("flags") else x for x in v) if isinstance(v, list) else v
                   for k, v in data.items()})


def _parsed(argv: Sequence[str], name: str) -> argparse.Namespace:
    """The run parser checks every run before anything starts (and supplies defaults such as -E)."""
    from run_args import build_parser
    try:
        return build_parser(("train", "transform_eopm_gen")).parse_args(list(argv))
    except SystemExit:
        raise GridError(f"run {name}: the arguments above were refused: {' '.join(argv)}") from None


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


def run_process(cmd: List[str]) -> int:
    """Start one run as a clean process and wait for it; returns its exit code."""
    return subprocess.run(cmd, cwd=ROOT).returncode


def run_command(cmd: List[str]) -> int:
    """The function a submitit job executes on its node: one run, an exception when it fails."""
    rc = run_process(cmd)
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
        if run_process(cmd) != 0:
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
        params = dict(timeout_min=opts.time, gpus_per_node=opts.gpus, tasks_per_node=1,
                      cpus_per_task=opts.cpus, name="neuralfuse")
        if cluster == "slurm":
            extra = dict(kv.split("=", 1) for kv in opts.slurm_extra)
            waits = sorted({jobs[r.needs].job_id for r in stage if r.needs in jobs})
            if waits:
                extra["dependency"] = "afterok:" + ":".join(waits)
            params.update(slurm_partition=opts.partition, slurm_array_parallelism=opts.array_parallelism,
                          slurm_additional_parameters=extra)
        else:                      # no dependencies without Slurm: finish the base runs first
            for job in jobs.values():
                job.wait()
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


LAUNCHERS = {"local": launch_local, "slurm": launch_submitit, "submitit-local": launch_submitit,
             "submitit-debug": launch_submitit}


def build_parser() -> argparse.ArgumentParser:
    from common.cli import OneLineParser
    p = OneLineParser(prog="zs_main.py sweep", description="Run a grid of NeuralFuse runs (grids/*.json), "
                "skipping finished ones, then print the report table.")
    p.add_argument("grid", metavar="GRIDFILE", help="a grid file such as grids/cifar10_table1.json")
    p.add_argument("--launch", choices=LAUNCHES, default="local",
                   help="local (default: one zs_main.py process after another), slurm (via submitit), or "
                        "submitit's local/debug executors (no cluster needed)")
    p.add_argument("--slurm", dest="launch", action="store_const", const="slurm", help="same as --launch slurm")
    p.add_argument("--dry-run", action="store_true", help="list the runs and their status, start nothing")
    p.add_argument("--gpus", type=int, default=1, help="GPUs per run; above 1 a run starts under torchrun")
    p.add_argument("--partition", default=None, help="Slurm partition")
    p.add_argument("--time", type=int, default=24 * 60, help="Slurm time limit per job, minutes (default 1440)")
    p.add_argument("--cpus", type=int, default=None, help="CPUs per job")
    p.add_argument("--array", action="store_true", help="submit each stage as one Slurm job array")
    p.add_argument("--array-parallelism", type=int, default=None, help="most array tasks running at once")
    p.add_argument("--slurm-extra", nargs="*", default=[], metavar="KEY=VALUE",
                   help="more sbatch options, e.g. account=abc qos=high")
    p.add_argument("--no-wait", action="store_true", help="submit and return without waiting (Slurm)")
    return p


def _sweep(opts: argparse.Namespace) -> int:
    grid = load_grid(opts.grid)
    opts.grid_out = grid.out
    bad = [kv for kv in opts.slurm_extra if "=" not in kv]
    if bad:
        raise GridError(f"--slurm-extra {bad[0]!r}: give KEY=VALUE, e.g. account=abc")
    runs = expand(grid)
    todo = [r for r in runs if status(r) != "done"]
    print(f"[sweep] {opts.grid}: {len(runs)} runs, {len(runs) - len(todo)} done, {len(todo)} to run "
          f"({opts.launch})")
    if opts.dry_run:
        for r in runs:
            print(f"  {status(r):7} {r.name}: zs_main.py {' '.join(r.argv)}")
        return 0
    stages = [[r for r in todo if r.stage == s] for s in ("base", "gen")]
    failed = LAUNCHERS[opts.launch](stages, opts) if todo else []
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

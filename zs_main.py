"""NeuralFuse command line (README "Command line"): parse -> build Configs -> call one function per mode,
or hand the arguments to a subcommand.

Examples:
    python zs_main.py resnet18 train cifar10 --train-limit 2000 -E 5
    python zs_main.py resnet18 transform_eopm_gen cifar10 -ber 0.01 -cp checkpoints/resnet18_cifar10_qat/best.pt
    python zs_main.py resnet18 transform_eval cifar10 -cp BASE.pt --testing-mode generator_base --G-path G.pt
    python zs_main.py resnet18 energy cifar10 -G all
    python zs_main.py report RUN_DIR [RUN_DIR ...]
    python zs_main.py faultmap export --seed 50000 -ber 0.01 --out chips/s50000
    python zs_main.py sweep grids/cifar10_table1.json [--slurm --partition gpu --gpus 1]
"""
from __future__ import annotations

import argparse
import os
import sys
import warnings
from typing import Callable, Dict, List, NamedTuple, Optional, Sequence

import config
import grid
import run_args
from bitflip import FaultConfig, faultmap_cli
from bitflip.faults import ECC_LABELS
from common.ckpt import CheckpointError, code_version, stored_checksum
from common.cli import EXIT_INTERRUPTED, EXIT_USAGE, field_default, one_line_warning, run_subcommand, values_from
from common.registry import UnknownName
from common.runs import UsageError
from common.session import interrupted_message
from config import (Configs, DataConfig, EnergyConfig, EOPMConfig, EvalConfig, LatencyConfig, PerfConfig, RunConfig,
                    TrainConfig)
from datasets import DataMissingError
from eval import energy_mode, export_mode, latency, neuralfuse, report
from generators import list_generators
from train import eopm, qat
from train.loop import NonFiniteLoss

# mode -> the function that runs it; each takes the Configs built below and returns an exit code.
MODES: Dict[str, Callable[[Configs], int]] = {
    "train": qat.run,
    "transform_eopm_gen": eopm.run,
    "transform_eval": neuralfuse.run,
    "energy": energy_mode.run,
    "export": export_mode.run,
    "latency": latency.run,
}


class Subcommand(NamedTuple):
    main: Callable[[Sequence[str]], int]    # argv after the name -> exit code
    usage: str                              # its arguments and purpose, for the main usage line


# `zs_main.py NAME ...` with NAME here runs a subcommand with its own parser instead of a mode.
SUBCOMMANDS: Dict[str, Subcommand] = {
    "report": Subcommand(report.main, "RUN_DIR [RUN_DIR ...] [--out FILE] [--html FILE] [--compare]  (results tables)"),
    "faultmap": Subcommand(faultmap_cli.main, "{export,info} ...  (measured fault maps for chipmap)"),
    "sweep": Subcommand(grid.main, "GRIDFILE [--slurm ...]  (a grid of runs, grids/*.json)"),
}
EXIT_DIVERGED = 3        # training stopped at a non-finite loss (last good checkpoint kept)
TRAINING_MODES = ("train", "transform_eopm_gen")   # modes that save epochs into a run folder
# exceptions that are a user's or the environment's mistake, printed as one line -> exit code
ERRORS = {(UsageError, CheckpointError, DataMissingError, UnknownName): EXIT_USAGE, NonFiniteLoss: EXIT_DIVERGED}


def build_parser() -> argparse.ArgumentParser:
    """The run parser (run_args.py), its usage listing the subcommands."""
    return run_args.build_parser(list(MODES), {name: s.usage for name, s in SUBCOMMANDS.items()})


def build_configs(args: argparse.Namespace) -> Configs:
    """Turn parsed arguments into the one frozen Configs every mode receives (no raw namespace in it)."""
    if args.G == run_args.ALL_GENERATORS and args.mode not in ("energy", "latency"):
        raise UsageError(f"-G {run_args.ALL_GENERATORS} is only valid for the energy and latency modes; name one generator "
                         f"({', '.join(list_generators())})")
    if args.mode == "transform_eval" and not args.testing_mode \
            and field_default(EvalConfig, "testing_mode") not in config.TESTING_MODES:
        raise UsageError(f"config.py: testing_mode {field_default(EvalConfig, 'testing_mode')!r} is not one of "
                         f"{', '.join(config.TESTING_MODES)} (or pass --testing-mode)")
    if args.pos < -1 or args.pos >= args.bits:
        raise UsageError(f"-pos {args.pos} is outside -1..{args.bits - 1} (-1 = any bit of a "
                         f"{args.bits}-bit weight)")
    fault, seeds = chipmap_configs(args)
    generators = tuple(list_generators()) if args.G == run_args.ALL_GENERATORS else (args.G,)
    run = values_from(RunConfig, args)
    return Configs(
        run=RunConfig(**run, checkpoint_sha256=stored_checksum(run["checkpoint"]) if run["checkpoint"] else None),
        data=DataConfig(**values_from(DataConfig, args)),
        train=TrainConfig(**values_from(TrainConfig, args, **{k.partition(".")[2]: v for k, v in
                                                              args.recipe_settings.items() if k.startswith("train.")})),
        eopm=EOPMConfig(**values_from(EOPMConfig, args, generator=generators[0],
                                               surrogates=tuple(args.surrogate or ()), **seeds.get("eopm", {}))),
        fault=fault,
        eval=EvalConfig(**values_from(
            EvalConfig, args, seeds=seeds.get("eval", args.eval_seeds),
            testing_mode=args.testing_mode or field_default(EvalConfig, "testing_mode"),
            g_path=args.G_path or field_default(EvalConfig, "g_path"),
            testing_mode_source="command line" if args.testing_mode else "config.py",
            g_path_source="command line" if args.G_path else "config.py")),
        energy=EnergyConfig(**values_from(EnergyConfig, args, generators=generators)),
        perf=PerfConfig(**values_from(PerfConfig, args)),
        latency=LatencyConfig(**values_from(LatencyConfig, args)),
    )


def chipmap_configs(args: argparse.Namespace):
    """(FaultConfig, seed overrides). With chipmap the maps are the seeds: map i is evaluation seed i,
    EOPM trains on all of them and monitors the first few; -ber is replaced by the measured BER."""
    from bitflip.chipmap import FaultMapError, measured_ber, resolve_maps
    maps, seeds, default_seeds = (), {}, field_default(EvalConfig, "seeds")
    try:
        if args.fault_map and args.fault_model == "chipmap":
            if args.eval_bers:
                raise UsageError("--eval-bers does not apply to chipmap: each map has its measured BER")
            maps = resolve_maps(args.fault_map, args.voltage)
            n = len(maps)
            if tuple(args.eval_seeds) != default_seeds and max(args.eval_seeds) >= n:
                raise UsageError(f"--eval-seeds with chipmap are map indices 0..{n - 1}")
            seeds = {"eval": tuple(range(n)) if tuple(args.eval_seeds) == default_seeds else tuple(args.eval_seeds),
                     "eopm": {"train_seeds": (0, n - 1),
                              "monitor_seeds": tuple(range(min(n, len(config.MONITOR_FAULT_SEEDS))))}}
        return FaultConfig(model=args.fault_model, ber=measured_ber(maps) if maps else args.ber,
                           position=args.pos, bits=args.bits, ecc=args.ecc,
                           maps=maps if args.fault_model == "chipmap" else tuple(args.fault_map or ())), seeds
    except (ValueError, FaultMapError) as e:
        raise UsageError(str(e)) from None


def _seed_text(seeds: Sequence[int]) -> str:
    seeds = list(seeds)
    contiguous = seeds == list(range(seeds[0], seeds[0] + len(seeds))) if seeds else False
    return f"{seeds[0]}:{seeds[-1] + 1}" if contiguous and len(seeds) > 2 else ",".join(map(str, seeds))


def _data_text(c: Configs, parts: str = "train val test") -> str:
    d = c.data
    sizes = {"train": d.train_limit or "all", "test": d.test_limit or "all",
             "val": "default" if d.val_size is None else d.val_size}
    return f"{d.root}: " + ", ".join(f"{part} {sizes[part]}" for part in parts.split())


def _fault_text(c: Configs, bers: Sequence[float] = ()) -> str:
    f = c.fault
    where = "" if f.position == -1 else f" bit {f.position}"
    maps = f" from {len(f.maps)} map(s) ({', '.join(f.maps[:3])}{', ...' if len(f.maps) > 3 else ''})" * bool(f.maps)
    return (f"{f.model} faults{where}{maps} at BER {','.join(f'{b:g}' for b in (bers or (f.ber,)))}, "
            f"{f.bits}-bit{ECC_LABELS[f.ecc]}")


def _cp_text(c: Configs) -> str:
    return f"-cp {c.run.checkpoint}" if c.run.checkpoint else "-cp missing"


# What each mode's start-up line shows: only the settings it uses (the full set goes to args.json).
SUMMARIES: Dict[str, Callable[[Configs], List[str]]] = {
    "train": lambda c: [_data_text(c), f"-E {c.train.epochs} -LR {c.train.lr:g} -BS {c.data.batch_size}",
                        *([f"fault-aware: {_fault_text(c)}"] if c.train.fault_aware else []),
                        *([f"--clip-weights {c.train.clip_weights:g}"] if c.train.clip_weights is not None else [])],
    "transform_eopm_gen": lambda c: [
        _cp_text(c), f"-G {c.eopm.generator} -N {c.eopm.n_models} -LM {c.eopm.lam:g}", _fault_text(c),
        _data_text(c), f"-E {c.eopm.epochs} -LR {c.eopm.lr:g} -BS {c.data.batch_size}",
        f"eval seeds {_seed_text(c.eval.seeds)}"],
    "transform_eval": lambda c: [
        _cp_text(c), f"testing_mode {c.eval.testing_mode}"
        + (f", G_PATH {c.eval.g_path}" if c.eval.testing_mode == "generator_base" else ""),
        # 'clean' measures CA only: no faults to name
        *([_fault_text(c, c.eval.bers)] if c.eval.testing_mode == "generator_base" else []),
        _data_text(c, "test"), f"eval seeds {_seed_text(c.eval.seeds)}"],
    "export": lambda c: [f"-cp {c.run.checkpoint}", f"--out {c.run.out}", f"{c.fault.bits}-bit"],
    "energy": lambda c: [f"-G {','.join(c.energy.generators)}",
                         (f"S = {c.energy.saving:g}%" if c.energy.saving is not None else f"-ber {c.fault.ber:g}")
                         + ECC_LABELS[c.fault.ecc]],
    "latency": lambda c: [f"-G {','.join(c.energy.generators)}", f"batch 1, median of {c.latency.repeats} after "
                          f"{c.latency.warmup} warm-up passes"],
}


def _args_path(cfgs: Configs) -> str:
    """RUN_DIR/args.json; transform_eval's default folder is named after the generator it reads,
    known only once G_PATH is read, so without --run-dir it is named by what decides it."""
    if cfgs.run.run_dir or cfgs.run.mode != "transform_eval" or cfgs.eval.testing_mode != "generator_base":
        return os.path.join(cfgs.with_run_dir().run.run_dir, "args.json")
    return "args.json in the run folder named after G_PATH's generator"


def summary_line(cfgs: Configs) -> str:
    """One compact line: code version, what runs, and the settings this mode uses; for the modes that
    write a run folder, where their settings go (said before the folder exists: the run may fail first)."""
    writes = config.RUN_SETTINGS[cfgs.run.mode]         # the modes with no run settings write no folder
    where = f" | settings go to {_args_path(cfgs)}" if writes else ""
    return (f"NeuralFuse {code_version()} | {cfgs.run.arch} {cfgs.run.mode} {cfgs.data.dataset} | "
            + " | ".join(SUMMARIES[cfgs.run.mode](cfgs)) + f" | seed {cfgs.run.seed}, device {cfgs.run.device}"
            + where)


def run_mode(args: argparse.Namespace) -> int:
    """Build the Configs, print the start-up line and run the mode; Ctrl-C says what was saved."""
    cfgs = None
    try:
        cfgs = build_configs(args)
        print(summary_line(cfgs), file=sys.stderr if cfgs.energy.json else sys.stdout, flush=True)
        return MODES[cfgs.run.mode](cfgs)
    except KeyboardInterrupt:
        trains = cfgs is not None and cfgs.run.mode in TRAINING_MODES
        run_dir = cfgs.with_run_dir().run.run_dir if trains else None
        print(f"\nzs_main.py: {interrupted_message(run_dir, trains)}", file=sys.stderr)
        return EXIT_INTERRUPTED


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] and argv[0] in SUBCOMMANDS:
        return SUBCOMMANDS[argv[0]].main(argv[1:])
    return run_subcommand(build_parser(), argv, run_mode, ERRORS)


if __name__ == "__main__":
    warnings.showwarning = one_line_warning   # user-facing warnings as one line (not under pytest)
    sys.exit(main())

"""NeuralFuse command line (README "Command line"): parse -> build Configs -> call one function per mode.

Examples:
    python zs_main.py resnet18 train cifar10 --train-limit 2000 -E 5
    python zs_main.py resnet18 transform_eopm_gen cifar10 -ber 0.01 -cp checkpoints/resnet18_cifar10_qat/best.pt
    python zs_main.py resnet18 transform_eval cifar10 -cp BASE.pt --testing-mode generator_base --G-path G.pt
    python zs_main.py resnet18 energy cifar10 -G all
    python zs_main.py report RUN_DIR [RUN_DIR ...]
    python zs_main.py sweep grids/cifar10_table1.json [--slurm --partition gpu --gpus 1]
"""
from __future__ import annotations

import argparse
import math
import sys
import warnings
from typing import Callable, Dict, List, Optional, Sequence

import config
from bitflip import FaultConfig, list_fault_models
from common.ckpt import CheckpointError, code_version
from common.cli import OneLineParser, bit_error_rate, field_default, from_field
from common.registry import UnknownName
from common.runs import UsageError, interrupted_message
from config import (Configs, DataConfig, EnergyConfig, EOPMConfig, EvalConfig, PerfConfig, RunConfig,
                    TrainConfig)
from datasets import DataMissingError, list_datasets
from eval import energy_mode, neuralfuse, report
from generators import list_generators
from models import EXTERNAL_PREFIX, check_arch, list_models
from train import eopm, qat
from train.loop import NonFiniteLoss

# mode -> the function that runs it; each takes the Configs built below and returns an exit code.
MODES: Dict[str, Callable[[Configs], int]] = {
    "train": qat.run,
    "transform_eopm_gen": eopm.run,
    "transform_eval": neuralfuse.run,
    "energy": energy_mode.run,
}
ALL_GENERATORS = "all"   # -G all: every generator, for the energy mode only
MAX_SEED = 2 ** 32 - 1   # --seed: what every RNG the run seeds accepts
EXIT_USAGE = 2           # a user mistake, reported as one line
EXIT_DIVERGED = 3        # training stopped at a non-finite loss (last good checkpoint kept)
TRAINING_MODES = ("train", "transform_eopm_gen")   # modes that save epochs into a run folder


def _ber_list(text: str) -> tuple:
    return tuple(bit_error_rate(t) for t in text.split(",") if t.strip())


def _positive(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer")
    if v < 1:
        raise argparse.ArgumentTypeError(f"{text} must be a positive integer")
    return v


def _real(low: float, low_ok: bool, what: str):
    """An argparse type: a finite float above `low` (or equal to it when `low_ok`)."""
    def parse(text: str) -> float:
        try:
            v = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number; give {what}") from None
        if not math.isfinite(v) or v < low or (v == low and not low_ok):
            raise argparse.ArgumentTypeError(f"{text} is not allowed; give {what}")
        return v
    return parse


def _seed(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer; give a seed in 0..{MAX_SEED}") from None
    if not 0 <= v <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"{text} is outside 0..{MAX_SEED}; give a non-negative seed")
    return v


def _seeds(text: str) -> tuple:
    """'50000:50010' (end exclusive) or '1,2,3'."""
    try:
        if ":" in text:
            lo, hi = (int(t) for t in text.split(":"))
            seeds = tuple(range(lo, hi))
        else:
            seeds = tuple(int(t) for t in text.split(",") if t.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give seeds as START:END (end exclusive) or a comma list")
    if not seeds or min(seeds) < 0:
        raise argparse.ArgumentTypeError(f"{text!r}: need at least one non-negative seed")
    return seeds


def _arch(text: str) -> str:
    """A zoo architecture or torchvision:NAME (any torchvision classification builder)."""
    try:
        return check_arch(text)
    except (UnknownName, UsageError) as e:
        raise argparse.ArgumentTypeError(f"{e} (or {EXTERNAL_PREFIX}NAME for a torchvision classifier)"
                                         if not text.startswith(EXTERNAL_PREFIX) else str(e)) from None


def build_parser() -> argparse.ArgumentParser:
    """Every option's default and help come from a config dataclass field (config.py, bitflip.FaultConfig)."""
    p = OneLineParser(prog="zs_main.py", description="NeuralFuse: train, protect and evaluate 8-bit "
                      "classifiers under low-voltage SRAM bit errors.",
                      epilog="Reports: python zs_main.py report RUN_DIR [RUN_DIR ...] [--out FILE] collects "
                             "results.json files into a markdown table beside the paper's numbers (--html: one "
                             "page with the pictures). Fault maps: python zs_main.py faultmap export|info ... "
                             "Grids: python zs_main.py sweep GRIDFILE (grids/*.json), here or on Slurm.")
    p.add_argument("arch", metavar="ARCH", type=_arch, help=", ".join(list_models()) + f", or {EXTERNAL_PREFIX}"
                   "NAME (any torchvision classifier; -cp may then be a float state_dict)")
    p.add_argument("mode", metavar="MODE", choices=list(MODES), help=", ".join(MODES))
    p.add_argument("dataset", metavar="DATASET", choices=list_datasets(), help=", ".join(list_datasets()))
    g = p.add_argument_group("original flags")
    g.add_argument("-ber", type=bit_error_rate, **from_field(FaultConfig, "ber"))
    g.add_argument("-pos", type=int, **from_field(FaultConfig, "position"))
    g.add_argument("-cp", **from_field(RunConfig, "checkpoint"))
    g.add_argument("-rt", action="store_true", **from_field(RunConfig, "resume"))
    g.add_argument("-F", action="store_true", **from_field(RunConfig, "force"))
    g.add_argument("-E", type=_positive, **from_field(TrainConfig, "epochs"))
    g.add_argument("-LR", type=_real(0.0, False, "a finite learning rate > 0"), **from_field(TrainConfig, "lr"))
    g.add_argument("-LM", type=_real(0.0, True, "a finite λ >= 0"), **from_field(EOPMConfig, "lam"))
    g.add_argument("-N", type=_positive, **from_field(EOPMConfig, "n_models"))
    g.add_argument("-BS", type=_positive, **from_field(DataConfig, "batch_size"))
    g.add_argument("-TBS", type=_positive, **from_field(DataConfig, "test_batch_size"))
    gen_help = from_field(EOPMConfig, "generator")
    g.add_argument("-G", choices=list_generators() + [ALL_GENERATORS], metavar="GEN",
                   default=gen_help["default"],
                   help=f"{', '.join(list_generators())}, or '{ALL_GENERATORS}' for energy; {gen_help['help']}")
    n = p.add_argument_group("additions")
    n.add_argument("--data-root", **from_field(DataConfig, "root"))
    n.add_argument("--download", action=argparse.BooleanOptionalAction, **from_field(DataConfig, "download"))
    n.add_argument("--device", **from_field(RunConfig, "device"))
    n.add_argument("--seed", type=_seed, **from_field(RunConfig, "seed"))
    n.add_argument("--workers", type=int, **from_field(DataConfig, "workers"))
    n.add_argument("--run-dir", **from_field(RunConfig, "run_dir", show=f"{config.RUNS_ROOT}/<named after the mode and its settings>"))
    n.add_argument("--train-limit", type=_positive, **from_field(DataConfig, "train_limit"))
    n.add_argument("--test-limit", type=_positive, **from_field(DataConfig, "test_limit"))
    n.add_argument("--val-size", type=int, **from_field(DataConfig, "val_size",
                                                        show="10%% of the training split, at most 1000"))
    n.add_argument("--fault-model", choices=list_fault_models(), **from_field(FaultConfig, "model"))
    n.add_argument("--fault-map", action="append", default=None, metavar="DIR",
                   help="chipmap: a chip folder (fmap_sa0_v_<V>.txt, fmap_sa1_v_<V>.txt), an .npz with sa0/sa1, "
                        "or a folder of them; repeatable; each map is one evaluation / training 'seed'")
    n.add_argument("--voltage", default=None, help="chipmap: which voltage's map of each chip folder "
                   "(default: the only one)")
    n.add_argument("--tensorboard", action="store_true", **from_field(RunConfig, "tensorboard"))
    n.add_argument("--bits", type=int, choices=range(2, 9), metavar="B", **from_field(FaultConfig, "bits"))
    n.add_argument("--eval-seeds", type=_seeds, **from_field(EvalConfig, "seeds", show="50000:50010"))
    n.add_argument("--eval-bers", type=_ber_list, **from_field(EvalConfig, "bers", show="-ber"))
    n.add_argument("--eval-train", action="store_true", **from_field(EvalConfig, "on_train"))
    n.add_argument("--testing-mode", choices=config.TESTING_MODES,
                   **from_field(EvalConfig, "testing_mode", default=False))
    n.add_argument("--G-path", dest="g_path", **from_field(EvalConfig, "g_path", default=False))
    n.add_argument("--no-hflip", dest="hflip", action="store_false", **from_field(DataConfig, "hflip"))
    n.add_argument("--no-augment", dest="augment", action="store_false", **from_field(DataConfig, "augment"))
    n.add_argument("--n-global", action="store_true", **from_field(EOPMConfig, "n_global"))
    n.add_argument("--sync-bn", action="store_true", **from_field(EOPMConfig, "sync_bn"))
    f = p.add_argument_group("speed (docs/DESIGN.md §13)")
    f.add_argument("--amp", action="store_true", **from_field(PerfConfig, "amp"))
    f.add_argument("--channels-last", nargs="?", const="on", choices=("on", "off"),
                   **from_field(PerfConfig, "channels_last"))
    f.add_argument("--batch-models", type=_positive, metavar="K", **from_field(PerfConfig, "batch_models"))
    f.add_argument("--prefetch-workers", type=int, metavar="W", **from_field(PerfConfig, "prefetch_workers"))
    f.add_argument("--device-data", choices=("auto", "on", "off"), **from_field(PerfConfig, "device_data"))
    f.add_argument("--compile", action="store_true", **from_field(PerfConfig, "compile"))
    n.add_argument("--json", action="store_true", **from_field(EnergyConfig, "json"))
    n.add_argument("--saving", type=float, **from_field(EnergyConfig, "saving", show="from -ber's operating point"))
    return p


def build_configs(args: argparse.Namespace) -> Configs:
    """Turn parsed arguments into the one frozen Configs every mode receives (no raw namespace in it)."""
    if args.G == ALL_GENERATORS and args.mode != "energy":
        raise UsageError(f"-G {ALL_GENERATORS} is only valid for the energy mode; name one generator "
                         f"({', '.join(list_generators())})")
    if args.mode == "transform_eval" and not args.testing_mode \
            and field_default(EvalConfig, "testing_mode") not in config.TESTING_MODES:
        raise UsageError(f"config.py: testing_mode {field_default(EvalConfig, 'testing_mode')!r} is not one of "
                         f"{', '.join(config.TESTING_MODES)} (or pass --testing-mode)")
    if args.pos < -1 or args.pos >= args.bits:
        raise UsageError(f"-pos {args.pos} is outside -1..{args.bits - 1} (-1 = any bit of a "
                         f"{args.bits}-bit weight)")
    fault, seeds = chipmap_configs(args)
    generators = tuple(list_generators()) if args.G == ALL_GENERATORS else (args.G,)
    return Configs(
        run=RunConfig(arch=args.arch, mode=args.mode, run_dir=args.run_dir, seed=args.seed, device=args.device,
                      resume=args.rt, force=args.F, checkpoint=args.cp, tensorboard=args.tensorboard),
        data=DataConfig(dataset=args.dataset, root=args.data_root, download=args.download,
                        train_limit=args.train_limit, test_limit=args.test_limit, val_size=args.val_size,
                        batch_size=args.BS, test_batch_size=args.TBS, workers=args.workers, hflip=args.hflip,
                        augment=args.augment),
        train=TrainConfig(epochs=args.E, lr=args.LR),
        eopm=EOPMConfig(generator=generators[0], epochs=args.E, lr=args.LR, lam=args.LM, n_models=args.N,
                        n_global=args.n_global, sync_bn=args.sync_bn, **seeds.get("eopm", {})),
        fault=fault,
        eval=EvalConfig(testing_mode=args.testing_mode or field_default(EvalConfig, "testing_mode"),
                        g_path=args.g_path or field_default(EvalConfig, "g_path"),
                        seeds=seeds.get("eval", tuple(args.eval_seeds)),
                        bers=tuple(args.eval_bers), on_train=args.eval_train,
                        testing_mode_source="command line" if args.testing_mode else "config.py",
                        g_path_source="command line" if args.g_path else "config.py"),
        energy=EnergyConfig(generators=generators, json=args.json, saving=args.saving),
        perf=PerfConfig(amp=args.amp, channels_last=args.channels_last, batch_models=args.batch_models,
                        prefetch_workers=args.prefetch_workers, device_data=args.device_data,
                        compile=args.compile),
    )


def chipmap_configs(args: argparse.Namespace):
    """(FaultConfig, seed overrides). With chipmap the maps are the seeds: map i is evaluation seed i,
    EOPM trains on all of them and monitors the first few; -ber is replaced by the measured BER."""
    from bitflip.chipmap import FaultMapError, describe, measured_ber, resolve_maps
    maps, seeds = (), {}
    try:
        if args.fault_map and args.fault_model == "chipmap":
            if args.eval_bers:
                raise UsageError("--eval-bers does not apply to chipmap: each map has its measured BER")
            maps = resolve_maps(args.fault_map, args.voltage)
            for i, source in enumerate(maps):
                print(f"fault map {i}: {describe(source)}")
            n = len(maps)
            if tuple(args.eval_seeds) != field_default(EvalConfig, "seeds") and max(args.eval_seeds) >= n:
                raise UsageError(f"--eval-seeds with chipmap are map indices 0..{n - 1}")
            seeds = {"eval": tuple(range(n)) if tuple(args.eval_seeds) == field_default(EvalConfig, "seeds")
                     else tuple(args.eval_seeds),
                     "eopm": {"train_seeds": (0, n - 1),
                              "monitor_seeds": tuple(range(min(n, len(config.MONITOR_FAULT_SEEDS))))}}
        return FaultConfig(model=args.fault_model, ber=measured_ber(maps) if maps else args.ber,
                           position=args.pos, bits=args.bits,
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
    return f"{f.model} faults{where} at BER {','.join(f'{b:g}' for b in (bers or (f.ber,)))}, {f.bits}-bit"


# What each mode's start-up line shows: only the settings it uses (the full set goes to args.json).
SUMMARIES: Dict[str, Callable[[Configs], List[str]]] = {
    "train": lambda c: [_data_text(c), f"-E {c.train.epochs} -LR {c.train.lr:g} -BS {c.data.batch_size}"],
    "transform_eopm_gen": lambda c: [
        f"-cp {c.run.checkpoint}", f"-G {c.eopm.generator} -N {c.eopm.n_models} -LM {c.eopm.lam:g}", _fault_text(c),
        _data_text(c), f"-E {c.eopm.epochs} -LR {c.eopm.lr:g} -BS {c.data.batch_size}",
        f"eval seeds {_seed_text(c.eval.seeds)}"],
    "transform_eval": lambda c: [
        f"-cp {c.run.checkpoint}", f"testing_mode {c.eval.testing_mode}"
        + (f", G_PATH {c.eval.g_path}" if c.eval.testing_mode == "generator_base" else ""),
        _fault_text(c, c.eval.bers), _data_text(c, "test"), f"eval seeds {_seed_text(c.eval.seeds)}"],
    "energy": lambda c: [f"-G {','.join(c.energy.generators)}",
                         f"S = {c.energy.saving:g}%" if c.energy.saving is not None else f"-ber {c.fault.ber:g}"],
}


def summary_line(cfgs: Configs) -> str:
    """One compact line: code version, what runs, and the settings this mode uses."""
    where = "" if cfgs.run.mode == "energy" else " | full settings: args.json in the run folder"
    return (f"NeuralFuse {code_version()} | {cfgs.run.arch} {cfgs.run.mode} {cfgs.data.dataset} | "
            + " | ".join(SUMMARIES[cfgs.run.mode](cfgs)) + f" | seed {cfgs.run.seed}, device {cfgs.run.device}"
            + where)


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"zs_main.py: warning: {message}", file=file or sys.stderr)


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if __name__ == "__main__":
        warnings.showwarning = _one_line_warning   # user-facing warnings as one line (not under pytest)
    cfgs = None
    try:
        if argv[:1] == ["report"]:
            return report.main(argv[1:])
        if argv[:1] == ["faultmap"]:
            from bitflip.faultmap_cli import main as faultmap_main
            return faultmap_main(argv[1:])
        if argv[:1] == ["sweep"]:
            from grid import main as sweep_main
            return sweep_main(argv[1:])
        args = build_parser().parse_args(argv)
        cfgs = build_configs(args)
        print(summary_line(cfgs), file=sys.stderr if cfgs.energy.json else sys.stdout, flush=True)
        return MODES[args.mode](cfgs) or 0
    except (UsageError, CheckpointError, DataMissingError, UnknownName) as e:
        print(f"zs_main.py: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except NonFiniteLoss as e:
        print(f"zs_main.py: error: {e}", file=sys.stderr)
        return EXIT_DIVERGED
    except KeyboardInterrupt:
        trains = cfgs is not None and cfgs.run.mode in TRAINING_MODES
        run_dir = cfgs.with_run_dir().run.run_dir if trains else None
        print(f"\nzs_main.py: {interrupted_message(run_dir, trains)}", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

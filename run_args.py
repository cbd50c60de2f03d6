"""The run command's parser, `zs_main.py ARCH MODE DATASET [options]`: every option is a setting of
config.py or bitflip.FaultConfig, added from its field (spelling, default, help); only the argparse
type and the metavar are written here. `zs_main.py` and `grid.py` (which checks each run of a grid
before starting any) both build it, so neither imports the other.

Example:
    args = build_parser(["train", "transform_eopm_gen"]).parse_args(["vgg11", "train", "cifar10", "-E", "5"])
    args.E                                                   # 5
"""
from __future__ import annotations

import argparse
from typing import Any, Dict, Mapping, Sequence

from bitflip import FaultConfig, list_fault_models
from common.cli import OneLineParser, dest_of, field_default, field_of, flag_of, option
from common.cli_types import ber_list, bit_error_rate, positive, real, seed_in, seeds
from common.registry import UnknownName
from common.runs import UsageError
from bitflip.faults import ECC_CODES
from config import (RECIPE_CUDA_ONLY, RECIPE_LR_BATCH, RECIPES, TESTING_MODES, DataConfig, EnergyConfig,
                    EOPMConfig, EvalConfig, LatencyConfig, PerfConfig, RunConfig, TrainConfig)
from datasets import list_datasets
from generators import list_generators
from models import EXTERNAL_PREFIX, check_arch, list_models

ALL_GENERATORS = "all"   # -G all: every generator, for the energy mode only
MAX_SEED = 2 ** 32 - 1   # --seed: what every RNG the run seeds accepts


def _arch(text: str) -> str:
    """A zoo architecture or torchvision:NAME (any torchvision classification builder)."""
    try:
        return check_arch(text)
    except (UnknownName, UsageError) as e:
        raise argparse.ArgumentTypeError(f"{e} (or {EXTERNAL_PREFIX}NAME for a torchvision classifier)"
                                         if not text.startswith(EXTERNAL_PREFIX) else str(e)) from None


_SECTIONS = {"train": TrainConfig, "data": DataConfig, "perf": PerfConfig}
_UNSET = object()        # an option the user did not give (argparse keeps a value already in the namespace)


class RunParser(OneLineParser):
    """The run parser; after parsing it applies --recipe: each setting the recipe names takes the
    recipe's value unless the user gave its flag (RECIPES in config.py)."""

    def parse_known_args(self, args=None, namespace=None):
        preset = {key: field_of(_SECTIONS[key.partition(".")[0]], key.partition(".")[2])
                  for recipe in RECIPES.values() for key in recipe}
        flagged = {key: dest_of(f) for key, f in preset.items() if flag_of(f)}
        namespace = namespace or argparse.Namespace(**{dest: _UNSET for dest in flagged.values()})
        ns, rest = super().parse_known_args(args, namespace)
        given = {key for key, dest in flagged.items() if getattr(ns, dest) is not _UNSET}
        for key, dest in flagged.items():          # first every flag's own default, then the recipe's
            if key not in given:
                section, _, name = key.partition(".")
                setattr(ns, dest, field_default(_SECTIONS[section], name))
        if ns.recipe != "paper" and ns.mode != "train":
            self.error(f"--recipe {ns.recipe} applies to the train mode only, not {ns.mode}")
        ns.recipe_settings = recipe_settings(ns, given)
        for key, value in ns.recipe_settings.items():
            if key in flagged:
                setattr(ns, flagged[key], value)
        return ns, rest


def recipe_settings(ns: argparse.Namespace, given: Sequence[str]) -> Dict[str, Any]:
    """{"section.field": value} that `ns.recipe` sets, leaving out the settings the user gave (`given`)
    and, off CUDA, the CUDA-only ones; the recipe's -LR is scaled to an explicit -BS."""
    out = {k: v for k, v in RECIPES[ns.recipe].items() if k not in given}
    if not _on_cuda(getattr(ns, "device", "auto")):
        out = {k: v for k, v in out.items() if k not in RECIPE_CUDA_ONLY}
    if "train.lr" in out and "data.batch_size" in given:
        out["train.lr"] = out["train.lr"] * ns.BS / RECIPE_LR_BATCH
    return out


def _on_cuda(device: str) -> bool:
    import torch
    return device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())


def _usage(subcommands: Mapping[str, str]) -> str:
    lines = ["%(prog)s ARCH MODE DATASET [options]"]
    lines += [f"       %(prog)s {name} {usage}" for name, usage in subcommands.items()]
    return "\n".join(lines)


def build_parser(modes: Sequence[str], subcommands: Mapping[str, str] = {}) -> OneLineParser:
    """The parser of a run in one of `modes`; `subcommands` (name -> its arguments and purpose) are
    listed in the usage, since zs_main.py dispatches them before this parser sees them."""
    p = RunParser(prog="zs_main.py", usage=_usage(subcommands),
                      description="NeuralFuse: train, protect and evaluate 8-bit classifiers under low-voltage "
                                  "SRAM bit errors." + (" Each subcommand has its own -h." if subcommands else ""))
    option(p, RunConfig, "arch", type=_arch, help=", ".join(list_models()) + f", or {EXTERNAL_PREFIX}NAME (any "
           "torchvision classifier; -cp may then be a float state_dict)")
    option(p, RunConfig, "mode", choices=list(modes), help=", ".join(modes))
    option(p, DataConfig, "dataset", choices=list_datasets(), help=", ".join(list_datasets()))
    g = p.add_argument_group("original flags")
    option(g, FaultConfig, "ber", type=bit_error_rate, metavar="BER")
    option(g, FaultConfig, "position", type=int, metavar="BIT")
    option(g, RunConfig, "checkpoint", metavar="FILE")
    option(g, RunConfig, "resume")
    option(g, RunConfig, "force")
    option(g, TrainConfig, "epochs", type=positive, metavar="N")
    option(g, TrainConfig, "lr", type=real(0.0, False, "a finite learning rate > 0"), metavar="LR")
    option(g, TrainConfig, "recipe", choices=list(RECIPES))
    option(g, EOPMConfig, "lam", type=real(0.0, True, "a finite λ >= 0"), metavar="LAMBDA")
    option(g, EOPMConfig, "n_models", type=positive, metavar="N")
    option(g, DataConfig, "batch_size", type=positive, metavar="N")
    option(g, DataConfig, "test_batch_size", type=positive, metavar="N")
    option(g, EOPMConfig, "generator", choices=[*list_generators(), ALL_GENERATORS], metavar="GEN",
           help=f"generator: {', '.join(list_generators())}, or '{ALL_GENERATORS}' (energy only)")
    n = p.add_argument_group("additions")
    option(n, DataConfig, "root", metavar="DIR")
    option(n, DataConfig, "download")
    option(n, RunConfig, "device")
    option(n, RunConfig, "seed", type=seed_in(MAX_SEED), metavar="SEED")
    option(n, DataConfig, "workers", type=int, metavar="N")
    option(n, RunConfig, "run_dir", metavar="DIR")
    option(n, DataConfig, "train_limit", type=positive, metavar="N")
    option(n, DataConfig, "test_limit", type=positive, metavar="N")
    option(n, DataConfig, "val_size", type=int, metavar="N")
    option(n, FaultConfig, "model", choices=list_fault_models())
    option(n, FaultConfig, "maps", action="append", default=None, metavar="DIR",
           help="chipmap: a chip folder (fmap_sa0_v_<V>.txt, fmap_sa1_v_<V>.txt), an .npz with sa0/sa1, or a "
                "folder of them; repeatable; each map is one evaluation / training 'seed'")
    n.add_argument("--voltage", default=None, help="chipmap: which voltage's map to read from each chip folder "
                   "(default the folder's only one; needed where a folder holds several)")
    option(n, RunConfig, "tensorboard")
    option(n, RunConfig, "out", metavar="FILE")
    option(n, RunConfig, "max_minutes", type=real(0.0, False, "a finite number of minutes > 0"), metavar="M")
    option(n, FaultConfig, "bits", type=int, choices=range(2, 9), metavar="B")
    option(n, FaultConfig, "ecc", choices=ECC_CODES)
    option(n, EvalConfig, "seeds", type=seeds, metavar="SEEDS")
    option(n, EvalConfig, "bers", type=ber_list, metavar="BERS")
    option(n, EvalConfig, "on_train")
    option(n, EvalConfig, "testing_mode", choices=TESTING_MODES, default=None)   # None: config.py's value
    option(n, EvalConfig, "g_path", default=None, metavar="FILE")
    option(n, DataConfig, "hflip")
    option(n, DataConfig, "augment")
    option(n, EOPMConfig, "n_global")
    option(n, EOPMConfig, "sync_bn")
    option(n, EOPMConfig, "surrogates", action="append", default=None, metavar="FILE")
    b = p.add_argument_group("baselines (docs/DESIGN.md §15)")
    option(b, TrainConfig, "fault_aware")
    option(b, TrainConfig, "clip_weights", type=real(0.0, False, "a finite clipping bound W > 0"), metavar="W")
    e = p.add_argument_group("energy and latency modes")
    option(e, EnergyConfig, "json")
    option(e, EnergyConfig, "saving", type=float, metavar="S")
    option(e, EnergyConfig, "iso_energy")
    option(e, LatencyConfig, "warmup", type=int, metavar="N")
    option(e, LatencyConfig, "repeats", type=positive, metavar="N")
    f = p.add_argument_group("speed (docs/DESIGN.md §13)")
    option(f, PerfConfig, "amp")
    option(f, PerfConfig, "channels_last", nargs="?", const="on", choices=("on", "off"))
    option(f, PerfConfig, "batch_models", type=positive, metavar="K")
    option(f, PerfConfig, "prefetch_workers", type=int, metavar="W")
    option(f, PerfConfig, "device_data", choices=("auto", "on", "off"))
    option(f, PerfConfig, "eopm_step", choices=("auto", "plain", "batched", "graph"))
    option(f, PerfConfig, "compile")
    return p

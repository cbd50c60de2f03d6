"""NeuralFuse command line (SPEC §2): parse -> build configs -> dispatch one function per mode.

Examples:
    python zs_main.py resnet18 train cifar10 --train-limit 2000 -E 5
    python zs_main.py resnet18 transform_eopm_gen cifar10 -ber 0.01 -cp checkpoints/resnet18_cifar10_qat/best.pt
    python zs_main.py resnet18 transform_eval cifar10 -cp BASE.pt --testing-mode generator_base --G-path G.pt
    python zs_main.py resnet18 energy cifar10 -G all
    python zs_main.py report RUN_DIR [RUN_DIR ...]
"""
from __future__ import annotations

import argparse
import importlib
import sys
import warnings
from typing import Optional, Sequence

# mode -> "module:function"; each function takes the Configs bundle built below.
MODES = {
    "train": "train.qat:run",
    "transform_eopm_gen": "train.eopm:run",
    "transform_eval": "eval.neuralfuse:run",
    "energy": "eval.energy_cli:run",
}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2, no usage dump
        self.exit(2, f"{self.prog}: error: {message}\n")


def _ber(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number; give a bit error rate in (0, 1)")
    if not 0.0 < v < 1.0:
        raise argparse.ArgumentTypeError(f"{text} is outside (0, 1); give a bit error rate such as 0.01")
    return v


def _ber_list(text: str) -> tuple:
    return tuple(_ber(t) for t in text.split(",") if t.strip())


def _positive(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer")
    if v < 1:
        raise argparse.ArgumentTypeError(f"{text} must be a positive integer")
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


def build_parser() -> argparse.ArgumentParser:
    from bitflip import list_fault_models
    from datasets import list_datasets
    from generators import list_generators
    from models import list_models
    import config

    p = _Parser(prog="zs_main.py", description="NeuralFuse: train, protect and evaluate 8-bit "
                "classifiers under low-voltage SRAM bit errors.",
                epilog="Reports: python zs_main.py report RUN_DIR [RUN_DIR ...] [--out FILE] collects "
                       "results.json files into a markdown table beside the paper's numbers.")
    p.add_argument("arch", metavar="ARCH", choices=list_models(), help=f"{', '.join(list_models())}")
    p.add_argument("mode", metavar="MODE", choices=list(MODES), help=f"{', '.join(MODES)}")
    p.add_argument("dataset", metavar="DATASET", choices=list_datasets(), help=f"{', '.join(list_datasets())}")
    g = p.add_argument_group("original flags")
    g.add_argument("-ber", type=_ber, default=0.01, help="bit error rate in (0,1) (default 0.01)")
    g.add_argument("-pos", type=int, default=-1, help="bit position 0..7 to fault, -1 = any (default)")
    g.add_argument("-cp", default=None, help="base-model checkpoint (.pt) for transform_* modes")
    g.add_argument("-rt", action="store_true", help="resume the run in the run folder")
    g.add_argument("-F", action="store_true", help="overwrite an existing run folder")
    g.add_argument("-E", type=_positive, default=300, help="epochs (default 300)")
    g.add_argument("-LR", type=float, default=1e-3, help="learning rate (default 0.001)")
    g.add_argument("-LM", type=float, default=5.0, help="EOPM lambda (default 5)")
    g.add_argument("-N", type=_positive, default=10, help="perturbed models per EOPM step (default 10)")
    g.add_argument("-BS", type=_positive, default=256, help="training batch size (default 256)")
    g.add_argument("-TBS", type=_positive, default=256, help="test batch size (default 256)")
    g.add_argument("-G", default="ConvL", choices=list_generators() + ["all"], metavar="GEN",
                   help=f"generator: {', '.join(list_generators())} (default ConvL; 'all' for energy)")
    n = p.add_argument_group("additions")
    n.add_argument("--data-root", default="./data", help="dataset folder (default ./data)")
    n.add_argument("--download", action=argparse.BooleanOptionalAction, default=True,
                   help="download through torchvision when missing (default on)")
    n.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default auto)")
    n.add_argument("--seed", type=int, default=0, help="run seed: init, data order, training faults")
    n.add_argument("--workers", type=int, default=-1,
                   help="DataLoader workers (default -1: 0 on CPU, min(8, cores) on CUDA)")
    n.add_argument("--run-dir", default=None, help="run folder (default under checkpoints/)")
    n.add_argument("--train-limit", type=_positive, default=None, help="class-balanced training subset size")
    n.add_argument("--test-limit", type=_positive, default=None, help="class-balanced test subset size")
    n.add_argument("--fault-model", default="official", choices=list_fault_models(),
                   help=f"{', '.join(list_fault_models())} (default official)")
    n.add_argument("--bits", type=int, default=8, choices=range(2, 9), metavar="B",
                   help="weight precision in bits, 2..8 (default 8)")
    n.add_argument("--eval-seeds", type=_seeds, default=config.EVAL_FAULT_SEEDS,
                   help="evaluation fault seeds, START:END or a list (default 50000:50010)")
    n.add_argument("--eval-bers", type=_ber_list, default=(), help="evaluate at several BERs, e.g. 0.01,0.005")
    n.add_argument("--eval-train", action="store_true", help="also evaluate on the training split")
    n.add_argument("--testing-mode", choices=config.TESTING_MODES, default=None,
                   help="override config.py's testing_mode")
    n.add_argument("--G-path", dest="g_path", default=None, help="override config.py's G_PATH")
    n.add_argument("--no-hflip", action="store_true", help="GTSRB: no horizontal flip in training")
    n.add_argument("--json", action="store_true", help="energy: print JSON rows")
    n.add_argument("--saving", type=float, default=None, help="energy: per-access saving S in %% "
                   "(default from -ber's operating point)")
    return p


def default_run_dir(args: argparse.Namespace) -> str:
    base = f"checkpoints/{args.arch}_{args.dataset}"
    if args.mode == "train":
        return f"{base}_qat"
    if args.mode == "transform_eopm_gen":
        return f"{base}_{args.G}_ber{args.ber:g}_{args.fault_model}"
    return f"{base}_{args.mode}"


def build_configs(args: argparse.Namespace):
    """Turn parsed arguments into the frozen config dataclasses every mode receives."""
    import config
    from bitflip import FaultConfig
    from common.runs import UsageError
    from types import SimpleNamespace

    if args.pos < -1 or args.pos >= args.bits:
        raise UsageError(f"-pos {args.pos} is outside -1..{args.bits - 1} (-1 = any bit of a "
                         f"{args.bits}-bit weight)")
    try:
        fault = FaultConfig(model=args.fault_model, ber=args.ber, position=args.pos, bits=args.bits)
    except ValueError as e:
        raise UsageError(str(e)) from None
    mode_src = "command line" if args.testing_mode else "config.py"
    gpath_src = "command line" if args.g_path else "config.py"
    data = config.DataConfig(dataset=args.dataset, root=args.data_root, download=args.download,
                             train_limit=args.train_limit, test_limit=args.test_limit,
                             batch_size=args.BS, test_batch_size=args.TBS, workers=args.workers,
                             hflip=not args.no_hflip)
    return SimpleNamespace(
        run=config.RunConfig(arch=args.arch, mode=args.mode, run_dir=args.run_dir or default_run_dir(args),
                             seed=args.seed, device=args.device, resume=args.rt, force=args.F,
                             checkpoint=args.cp, bits=args.bits),
        data=data,
        train=config.TrainConfig(epochs=args.E, lr=args.LR),
        eopm=config.EOPMConfig(generator=args.G if args.G != "all" else "ConvL", epochs=args.E,
                               lr=args.LR, lam=args.LM, n_models=args.N),
        fault=fault,
        eval=config.EvalConfig(testing_mode=args.testing_mode or config.testing_mode,
                               g_path=args.g_path or config.G_PATH or None, seeds=tuple(args.eval_seeds),
                               bers=tuple(args.eval_bers), on_train=args.eval_train),
        sources={"testing_mode": mode_src, "G_PATH": gpath_src},
        args=args,
    )


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"zs_main.py: warning: {message}", file=file or sys.stderr)


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if __name__ == "__main__":
        warnings.showwarning = _one_line_warning   # user-facing warnings as one line (not under pytest)
    from common.ckpt import CheckpointError, code_version
    from common.registry import UnknownName
    from common.runs import UsageError
    from datasets import DataMissingError

    try:
        if argv[:1] == ["report"]:
            from eval.report import main as report_main
            return report_main(argv[1:])
        args = build_parser().parse_args(argv)
        cfgs = build_configs(args)
        print(f"NeuralFuse {code_version()} | {args.arch} {args.mode} {args.dataset} | "
              f"args: {vars(args)}", file=sys.stderr if args.json else sys.stdout, flush=True)
        module, fn = MODES[args.mode].split(":")
        return getattr(importlib.import_module(module), fn)(cfgs) or 0
    except (UsageError, CheckpointError, DataMissingError, UnknownName) as e:
        print(f"zs_main.py: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\nzs_main.py: interrupted; finished epochs are saved (resume with -rt)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

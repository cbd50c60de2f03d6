"""`make demo`: the NeuralFuse pipeline end to end on real CIFAR-10, sized for a 2-core CPU.

Stages (each one reuses its output when it is already complete, and resumes when interrupted):
  1. QAT of an 8-bit base classifier on a class-balanced CIFAR-10 subset     -> OUT/base/best.pt
  2. EOPM training of a NeuralFuse generator at BER 1% (official fault model) -> OUT/generator/best.pt
  3. evaluation over the 10 default fault seeds (50000-50009), paper-style table -> OUT/generator/results.json

Every stage runs through `zs_main.main`, the same code path as the command line; the exact commands
are printed so they can be rerun or scaled up.

Example:
    python demo.py --data-root ./data            # about 10 min on a 2-core CPU (docs/MEASUREMENTS.md)
    python demo.py --data-root ./data --preset tiny --out /tmp/nf_demo
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import List

import zs_main
from common.cli import from_field, one_line_warning
from config import RUNS_ROOT, DataConfig, RunConfig

# "cpu" is the setting of docs/DESIGN.md §12 (the released code measured at CPU scale), so the demo is also
# a parity check; measured on a 2-core CPU it shows PA well below CA and PA(NF) above PA (README, Demo).
PRESETS = {
    "cpu": dict(arch="vgg11", generator="ConvL", train_limit=5000, val_size=1000, test_limit=1000,
                base_epochs=6, base_lr=0.02, gen_epochs=3, n_models=4, batch=64, minutes=10),
    "tiny": dict(arch="vgg11", generator="UNetS", train_limit=100, val_size=20, test_limit=50, base_epochs=1,
                 base_lr=0.02, gen_epochs=1, n_models=2, batch=50, minutes=0.5),
}   # minutes: the whole demo on an otherwise idle 2-core CPU, rounded up (docs/MEASUREMENTS.md)

SHARED_MATERIALIZE = "shared/data/materialize.py"   # the offline copy beside the checkout (make data)


def _done(run_dir: Path, epochs: int) -> bool:
    """A stage's training is complete: it reached the requested epoch count (common.session.folder_state)."""
    from common.session import folder_state
    return folder_state(run_dir, epochs) == "done"


def _call(name: str, argv: List[str], tag: str = "demo") -> None:
    print(f"[{tag}] {name}: python zs_main.py {' '.join(argv)}", flush=True)
    t0 = time.time()
    code = zs_main.main(argv)
    if code:
        raise SystemExit(code)
    print(f"[{tag}] {name}: done in {_minutes(time.time() - t0)}", flush=True)


def _minutes(seconds: float) -> str:
    return f"{int(seconds // 60)} min {int(seconds % 60)} s"


def plan(cfg: dict, preset: str) -> str:
    """What the demo will do, with the expected time, printed before it starts."""
    return (f"[demo] plan ({preset}): 1/3 QAT of {cfg['arch']} for {cfg['base_epochs']} epochs on "
            f"{cfg['train_limit']} images -> 2/3 EOPM of {cfg['generator']} for {cfg['gen_epochs']} epochs "
            f"(N = {cfg['n_models']}, 1% BER) -> 3/3 evaluation over 10 fault seeds on {cfg['test_limit']} test "
            f"images; about {cfg['minutes']:g} min on an idle 2-core CPU (finished stages are reused)")


def _stage(name: str, argv: List[str], run_dir: Path, epochs: int, tag: str = "demo") -> None:
    """Run a training stage unless complete; continue it with -rt when it was interrupted, and start it
    again with -F over what an attempt left without anything to resume (the demo owns its folders)."""
    from common.session import folder_state, run_artefacts
    state = folder_state(run_dir, epochs)
    if state == "done":
        print(f"[{tag}] {name}: reusing {run_dir / 'best.pt'}")
        return
    _call(name, argv + (["-rt"] if state == "partial" else ["-F"] if run_artefacts(run_dir) else []), tag)


def _layout_hint(data_root: str) -> str:
    """The exact command that lays the data out, where this project's shared offline copy is present."""
    materialize = Path(__file__).resolve().parent.parent / SHARED_MATERIALIZE
    if not materialize.is_file():
        return ""
    return f" Lay out the shared copy with: {sys.executable} {materialize} cifar10 {data_root}"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-root", **from_field(DataConfig, "root"))
    p.add_argument("--out", default=f"{RUNS_ROOT}/demo", help="folder for the demo's runs")
    p.add_argument("--preset", choices=list(PRESETS), default="cpu")
    p.add_argument("--device", **from_field(RunConfig, "device"))
    p.add_argument("--download", action=argparse.BooleanOptionalAction, **from_field(DataConfig, "download"))
    a = p.parse_args(argv)
    cfg = PRESETS[a.preset]
    print(plan(cfg, a.preset), flush=True)
    out = Path(a.out) / a.preset

    from datasets import DataMissingError, load_split
    try:  # fail at once, before any training, when the data is not there and cannot be fetched
        load_split("cifar10", a.data_root, train=False, download=a.download)
        load_split("cifar10", a.data_root, train=True, download=a.download)
    except DataMissingError as e:
        print(f"demo.py: error: {e}{_layout_hint(a.data_root)}", file=sys.stderr)
        return 2

    common = ["--data-root", a.data_root, "--device", a.device, "--train-limit", str(cfg["train_limit"]),
              "--test-limit", str(cfg["test_limit"]), "--val-size", str(cfg["val_size"]), "-BS", str(cfg["batch"]),
              "-TBS", "250",
              "--download" if a.download else "--no-download"]
    base_dir, gen_dir, eval_dir = out / "base", out / "generator", out / "eval"
    _stage("1/3 base model QAT", [cfg["arch"], "train", "cifar10", "-E", str(cfg["base_epochs"]), "-LR",
                                   str(cfg["base_lr"]), "--run-dir", str(base_dir), *common],
           base_dir, cfg["base_epochs"])
    found = [r for r in (gen_dir / "results.json", eval_dir / "results.json") if r.is_file()]
    if not (_done(gen_dir, cfg["gen_epochs"]) and found):
        _stage("2/3 EOPM generator training + 3/3 evaluation",
               [cfg["arch"], "transform_eopm_gen", "cifar10", "-cp", str(base_dir / "best.pt"), "-ber", "0.01",
                "-G", cfg["generator"], "-N", str(cfg["n_models"]), "-E", str(cfg["gen_epochs"]),
                "--run-dir", str(gen_dir), *common], gen_dir, cfg["gen_epochs"])
        found = [gen_dir / "results.json"] if (gen_dir / "results.json").is_file() else []
    if not found:  # generator complete from an earlier run, evaluation missing: a folder of its own
        _call("3/3 evaluation", [cfg["arch"], "transform_eval", "cifar10", "-cp", str(base_dir / "best.pt"),
                                 "--testing-mode", "generator_base", "--G-path", str(gen_dir / "best.pt"),
                                 "--run-dir", str(eval_dir), "-F", *common])
        found = [eval_dir / "results.json"]
    from eval.results import format_results, read_results
    res = read_results(found[0])
    main_entry = res.entries[0]
    print("\n[demo] NeuralFuse on CIFAR-10 subset, BER 1% (official faults), "
          f"{len(main_entry['per_seed'])} fault seeds, {main_entry['n_images']} test images:")
    print(format_results(main_entry, f"{cfg['arch']} + {cfg['generator']}"))
    print(f"[demo] files: {base_dir}/ (base: best.pt, metrics.jsonl, curves.png), "
          f"{gen_dir}/ (generator: best.pt, results.json, per_seed.csv, summary.csv, curves.png)")
    return 0


if __name__ == "__main__":
    import warnings
    warnings.showwarning = one_line_warning
    sys.exit(main())

"""`make baselines`: NeuralFuse beside the model-side and memory-side alternatives, at the demo's CPU scale.

Same base model, same data, same 10 evaluation fault seeds, 1% BER (official fault model) for every row
(docs/DESIGN.md §15). It starts from the demo's folders (`make demo` first: its base model and ConvL
generator are the "unprotected" and "NeuralFuse" rows) and adds, each in a folder of its own under OUT:
  fa_base/        the base model trained again with fault-aware QAT (--fault-aware, --clip-weights)
  fa_generator/   ConvL trained by EOPM on top of the fault-aware model; its final evaluation gives the
                  fault-aware model's PA alone and with the generator
  uip/            the universal input perturbation (paper Table 11) trained by EOPM on the plain model
  secded/         the plain model and the demo's generator under SECDED error correction (--ecc secded)
  iso_energy/     the plain model and generator at the iso-energy BERs of `energy --iso-energy`
then prints `report --compare` over all of them (and writes OUT/compare.md, OUT/compare.html).
Each stage reuses a finished folder and resumes an interrupted one, as the demo does.

Example:
    python demo.py --data-root ./data && python baselines.py --data-root ./data
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import List

import demo
import zs_main
from common.cli import from_field
from config import RUNS_ROOT, DataConfig, RunConfig
from eval.iso_energy import iso_energy_rows, iso_eval_bers

BER = 0.01
TAG = "baselines"   # the prefix of its stage lines
CLIP = 0.1          # --clip-weights of the fault-aware base model (RandBET's clipping, Stutz et al. 2021)


def iso_energy_bers(arch: str, generators: List[str]) -> List[float]:
    """BER and the BERs at which the unprotected model saves what each generator's NeuralFuse saves
    (Eq. 6), as `energy --iso-energy` lists them for --eval-bers."""
    return iso_eval_bers(iso_energy_rows(arch, generators, ber=BER), BER)


def _eval(name: str, cfg: dict, argv: List[str], run_dir: Path, common: List[str]) -> None:
    """An evaluation stage: skipped when its results.json exists, else run (again) from scratch."""
    if (run_dir / "results.json").is_file():
        print(f"[{TAG}] {name}: reusing {run_dir / 'results.json'}")
        return
    demo._call(name, [cfg["arch"], "transform_eval", "cifar10", *argv, "--run-dir", str(run_dir), "-F", *common],
               TAG)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-root", **from_field(DataConfig, "root"))
    p.add_argument("--demo", default=f"{RUNS_ROOT}/demo", help="the demo's --out folder (its base and generator)")
    p.add_argument("--out", default=f"{RUNS_ROOT}/baselines", help="folder for the baselines' runs")
    p.add_argument("--preset", choices=list(demo.PRESETS), default="cpu")
    p.add_argument("--device", **from_field(RunConfig, "device"))
    a = p.parse_args(argv)
    cfg, out, made = demo.PRESETS[a.preset], Path(a.out) / a.preset, Path(a.demo) / a.preset
    base, gen = made / "base" / "best.pt", made / "generator" / "best.pt"
    if not (base.is_file() and gen.is_file()):
        print(f"baselines.py: error: {base} or {gen} is missing; run the demo first: "
              f"python demo.py --data-root {a.data_root} --out {a.demo} --preset {a.preset}", file=sys.stderr)
        return 2
    common = ["--data-root", a.data_root, "--device", a.device, "--train-limit", str(cfg["train_limit"]),
              "--test-limit", str(cfg["test_limit"]), "--val-size", str(cfg["val_size"]), "-BS", str(cfg["batch"]),
              "-TBS", "250", "--no-download"]
    eopm = ["-ber", str(BER), "-N", str(cfg["n_models"]), "-E", str(cfg["gen_epochs"])]
    arch, G = cfg["arch"], cfg["generator"]
    fa = out / "fa_base"
    demo._stage("fault-aware base model", [arch, "train", "cifar10", "-E", str(cfg["base_epochs"]), "-LR",
                                          str(cfg["base_lr"]), "--fault-aware", "-ber", str(BER),
                                          "--clip-weights", str(CLIP), "--run-dir", str(fa), *common],
                fa, cfg["base_epochs"], TAG)
    demo._stage(f"{G} on the fault-aware model", [arch, "transform_eopm_gen", "cifar10", "-cp", str(fa / "best.pt"),
                                                  "-G", G, *eopm, "--run-dir", str(out / "fa_generator"), *common],
                out / "fa_generator", cfg["gen_epochs"], TAG)
    demo._stage("UIP (Table 11)", [arch, "transform_eopm_gen", "cifar10", "-cp", str(base), "-G", "UIP", *eopm,
                                   "--run-dir", str(out / "uip"), *common], out / "uip", cfg["gen_epochs"], TAG)
    with_g = ["-cp", str(base), "--testing-mode", "generator_base", "--G-path", str(gen)]
    _eval("SECDED", cfg, [*with_g, "-ber", str(BER), "--ecc", "secded"], out / "secded", common)
    bers = iso_energy_bers(arch, [G, "UIP"])
    _eval("iso-energy BERs", cfg, [*with_g, "-ber", str(BER), "--eval-bers",
                                   ",".join(f"{b:g}" for b in bers)], out / "iso_energy", common)
    demo_runs = [d for d in (made / "generator", made / "eval") if (d / "results.json").is_file()]
    folders = [*map(str, demo_runs), *(str(out / d) for d in
                                          ("fa_generator", "uip", "secded", "iso_energy"))]
    return zs_main.main(["report", *folders, "--compare", "--out", str(out / "compare.md"),
                         "--html", str(out / "compare.html")])


if __name__ == "__main__":
    sys.exit(main())

"""`transform_eval` mode (SPEC §8): CA, PA, CA(NF), PA(NF) over evaluation fault seeds, and RP.

For each evaluation seed the base model gets that seed's bit errors; PA is its accuracy alone and
PA(NF) its accuracy on the generator's output F(x) = clamp(x + G(x), -1, 1). Mean and population
std (ddof 0) over seeds; RP = PA(NF)_mean - PA_mean in points. `testing_mode` (config.py, or
--testing-mode) picks 'clean' (the base model alone) or 'generator_base'.

Example:
    python zs_main.py resnet18 transform_eval cifar10 -cp BASE.pt --testing-mode generator_base --G-path G.pt
"""
from __future__ import annotations

import csv
from dataclasses import asdict, replace
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from bitflip import FaultConfig, perturbed
from common.ckpt import load_checkpoint
from common.data import cache_batches, make_loader
from common.runs import UsageError, resolve_device, write_json
from eval.accuracy import accuracy
from eval.plots import plot_sweep

RESULT_KEYS = ("CA", "PA_mean", "PA_std", "CA_NF", "PA_NF_mean", "PA_NF_std", "RP")


def load_base(path: str, arch: str, dataset: str, device: torch.device, bits: int = 8) -> torch.nn.Module:
    """Build the base model named in checkpoint `path`, checking it matches ARCH, DATASET and --bits."""
    from train.qat import build_base_model
    if not path:
        raise UsageError("-cp is required: give the base-model checkpoint (a train run's best.pt)")
    ckpt = load_checkpoint(path, kind="base")
    if ckpt["arch"] != arch or ckpt["dataset"] != dataset:
        raise UsageError(f"-cp {path} holds a {ckpt['arch']} trained on {ckpt['dataset']}, but the command "
                         f"asks for {arch} on {dataset}")
    if ckpt.get("bits", 8) != bits:
        raise UsageError(f"-cp {path} holds a {ckpt.get('bits', 8)}-bit model, but --bits is {bits}")
    model = build_base_model(arch, dataset, bits)
    model.load_state_dict(ckpt["state_dict"])
    return model.to(device).eval().requires_grad_(False)


def load_generator(path: str, device: torch.device) -> Tuple[torch.nn.Module, dict]:
    from generators import get_generator
    if not path:
        raise UsageError("testing_mode 'generator_base' needs a generator: set G_PATH in config.py or "
                         "pass --G-path (a transform_eopm_gen run's best.pt)")
    ckpt = load_checkpoint(path, kind="generator")
    gen = get_generator(ckpt["generator"], bits=ckpt.get("bits", 8))
    gen.load_state_dict(ckpt["state_dict"])
    return gen.to(device).eval().requires_grad_(False), ckpt


def evaluate_seeds(base: torch.nn.Module, gen: Optional[torch.nn.Module], batches: List, device: torch.device,
                   fault: FaultConfig, seeds: Sequence[int]) -> Dict:
    """The SPEC §8 numbers for one BER. F(x) is computed once and reused for every seed."""
    out: Dict = {"CA": accuracy(base, batches, device, desc="CA")["acc"]}
    fx_batches = None
    if gen is not None:
        with torch.no_grad():
            fx_batches = [(gen(x.to(device)), y) for x, y in batches]
        out["CA_NF"] = accuracy(base, fx_batches, device, desc="CA(NF)")["acc"]
    rows = []
    for seed in seeds:
        with perturbed(base, fault, seed):
            row = {"seed": seed, "PA": accuracy(base, batches, device, desc=f"PA seed {seed}")["acc"]}
            if fx_batches is not None:
                row["PA_NF"] = accuracy(base, fx_batches, device, desc=f"PA(NF) seed {seed}")["acc"]
        rows.append(row)
    pa = np.array([r["PA"] for r in rows])
    out.update(PA_mean=float(pa.mean()), PA_std=float(pa.std(ddof=0)))
    if gen is not None:
        pnf = np.array([r["PA_NF"] for r in rows])
        out.update(PA_NF_mean=float(pnf.mean()), PA_NF_std=float(pnf.std(ddof=0)),
                   RP=float(pnf.mean() - pa.mean()))
    out["per_seed"] = rows
    return out


def format_table(res: Dict, label: str) -> str:
    head = f"{'':<28} {'CA':>6} {'PA':>14} {'CA(NF)':>7} {'PA(NF)':>14} {'RP':>7}"
    nf = "CA_NF" in res
    line = (f"{label:<28} {res['CA']:6.2f} {res['PA_mean']:7.2f} ± {res['PA_std']:4.1f} "
            + (f"{res['CA_NF']:7.2f} {res['PA_NF_mean']:7.2f} ± {res['PA_NF_std']:4.1f} {res['RP']:+7.2f}"
               if nf else f"{'-':>7} {'-':>14} {'-':>7}"))
    return head + "\n" + line


def write_results(run_dir: Path, results: List[Dict], settings: Dict) -> Dict:
    """results.json (first BER at top level, every BER under 'sweep'), results.csv, sweep.csv."""
    main = {**{k: results[0][k] for k in RESULT_KEYS if k in results[0]},
            "per_seed": results[0]["per_seed"], "settings": settings, "sweep": results}
    write_json(run_dir / "results.json", main)
    with open(run_dir / "results.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["ber", "seed", "PA", "PA_NF"])
        for r in results:
            for s in r["per_seed"]:
                w.writerow([r["ber"], s["seed"], f"{s['PA']:.4f}", f"{s.get('PA_NF', float('nan')):.4f}"])
    with open(run_dir / "sweep.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["ber", *RESULT_KEYS])
        for r in results:
            w.writerow([r["ber"], *(f"{r[k]:.4f}" if k in r else "" for k in RESULT_KEYS)])
    return main


def evaluate_run(cfgs, base: torch.nn.Module, gen: Optional[torch.nn.Module], run_dir: Path,
                 device: torch.device, extra_settings: Dict) -> Dict:
    """Evaluate at every requested BER, print the tables, write the result files; returns results.json."""
    data_cfg = cfgs.data
    splits = [("test", False)] + ([("train", True)] if cfgs.eval.on_train else [])
    bers = cfgs.eval.bers or (cfgs.fault.ber,)
    all_results = []
    for split, is_train in splits:
        batches = cache_batches(make_loader(data_cfg, train=is_train, seed=0, device=device,
                                            augment=False, shuffle=False))
        for ber in bers:
            fault = replace(cfgs.fault, ber=ber)
            res = evaluate_seeds(base, gen, batches, device, fault, cfgs.eval.seeds)
            res.update(ber=ber, split=split, n_images=sum(len(y) for _, y in batches))
            all_results.append(res)
            print(format_table(res, f"{cfgs.run.arch} {split} ber={ber:g}"))
    settings = {"arch": cfgs.run.arch, "dataset": data_cfg.dataset, "fault": asdict(cfgs.fault),
                "fault_model": cfgs.fault.model, "ber": bers[0], "seeds": list(cfgs.eval.seeds),
                "test_limit": data_cfg.test_limit, **extra_settings}
    main = write_results(run_dir, all_results, settings)
    if len(bers) > 1:
        print(f"sweep plot: {plot_sweep(run_dir)}")
    print(f"results: {run_dir / 'results.json'}")
    return main


def run(cfgs) -> int:
    device = resolve_device(cfgs.run.device)
    mode, g_path = cfgs.eval.testing_mode, cfgs.eval.g_path
    print(f"testing_mode = {mode!r} (from {cfgs.sources['testing_mode']})"
          + (f"; G_PATH = {g_path!r} (from {cfgs.sources['G_PATH']})" if mode == "generator_base" else ""))
    base = load_base(cfgs.run.checkpoint, cfgs.run.arch, cfgs.data.dataset, device, cfgs.run.bits)
    run_dir = Path(cfgs.run.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    if mode == "clean":
        batches = cache_batches(make_loader(cfgs.data, train=False, seed=0, device=device, shuffle=False))
        ca = accuracy(base, batches, device, desc="CA")["acc"]
        write_json(run_dir / "results.json", {"CA": ca, "settings": {
            "testing_mode": mode, "arch": cfgs.run.arch, "dataset": cfgs.data.dataset,
            "checkpoint": cfgs.run.checkpoint, "test_limit": cfgs.data.test_limit,
            "n_images": sum(len(y) for _, y in batches)}})
        print(f"CA {ca:.2f}% on {sum(len(y) for _, y in batches)} test images -> {run_dir / 'results.json'}")
        return 0
    gen, gckpt = load_generator(g_path, device)
    evaluate_run(cfgs, base, gen, run_dir, device, {
        "testing_mode": mode, "checkpoint": cfgs.run.checkpoint, "generator": gckpt["generator"],
        "g_path": g_path, "generator_trained_on": f"{gckpt['arch']}/{gckpt['dataset']}"})
    return 0

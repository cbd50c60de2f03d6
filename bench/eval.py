"""Benchmark of the 10-seed NeuralFuse evaluation (CA, PA, CA(NF), PA(NF)) against a per-seed
reload-and-re-read baseline measured in the same run.

  baseline: CA and CA(NF) once, then for every fault seed the base checkpoint is loaded again, the
            test split is read and decoded from disk again and G(x) recomputed batch by batch (how
            the released code's evaluation loop runs);
  ours:     `eval.neuralfuse.evaluate_seeds`: data decoded once (on the device), F(x) computed once,
            fault maps built ahead in threads, no host sync per batch, --batch-models K seeds at once.
Both must give the same accuracies, CA and CA(NF) included (checked). Last line: `RESULT speedup_vs_reload=X`.

    .venv/bin/python -m bench.eval --data-root ./data --test-limit 1000           # CPU
    python3 -m bench.eval --device cuda --data-root ./data                        # full test split
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from bitflip import FaultConfig, perturbed
from common.ckpt import save_checkpoint
from datasets import cache_batches, get_dataset_info, make_loader
from config import EVAL_FAULT_SEEDS, DataConfig
from eval.neuralfuse import evaluate_seeds
from generators import get_generator
from models import base_checkpoint_meta, get_model, load_base

BER = 0.01
_CIFAR10 = get_dataset_info("cifar10")
SHAPE = {"num_classes": _CIFAR10.num_classes, "input_size": _CIFAR10.image_size}   # what load_base builds for


@torch.no_grad()
def _accuracies(base, gen, loader, device) -> dict:
    """(PA-style, PA(NF)-style) accuracy of `base` on x and on G(x), G recomputed batch by batch."""
    correct, n = {"plain": 0, "nf": 0}, 0
    for x, y in loader:
        x, y = x.to(device), y.to(device)
        correct["plain"] += (base(x).argmax(1) == y).sum().item()
        correct["nf"] += (base(gen(x)).argmax(1) == y).sum().item()
        n += len(y)
    return {k: 100.0 * v / n for k, v in correct.items()}


def reload_baseline(ckpt_path: Path, arch: str, gen, data_cfg: DataConfig, device, fault, seeds) -> dict:
    """CA and CA(NF) once, then per seed: checkpoint reloaded, test split re-read, PA and PA(NF)."""
    def loader():
        return make_loader(data_cfg, "test", seed=0, device=device, augment=False, shuffle=False)
    clean = _accuracies(load_base(str(ckpt_path), arch, "cifar10", 8, device, **SHAPE), gen, loader(), device)
    rows = []
    for seed in seeds:
        base = load_base(str(ckpt_path), arch, "cifar10", 8, device, **SHAPE)
        with perturbed(base, fault, seed):
            acc = _accuracies(base, gen, loader(), device)
        rows.append({"seed": seed, "PA": acc["plain"], "PA_NF": acc["nf"]})
    return {"CA": clean["plain"], "CA_NF": clean["nf"], "per_seed": rows}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-root", required=True, help="folder with cifar-10-batches-py/")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--arch", default="resnet18")
    ap.add_argument("--test-limit", type=int, default=None, help="class-balanced test subset (default: all)")
    ap.add_argument("--batch-models", type=int, default=1, help="K perturbed models at once in ours")
    ap.add_argument("--seeds", type=int, default=len(EVAL_FAULT_SEEDS), help="number of fault seeds")
    args = ap.parse_args()
    device = torch.device(args.device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    torch.manual_seed(0)
    data_cfg = DataConfig("cifar10", root=args.data_root, download=False, test_limit=args.test_limit,
                          workers=0 if device.type == "cpu" else 8)
    fault, seeds = FaultConfig("official", BER), list(EVAL_FAULT_SEEDS[:args.seeds])
    base = get_model(args.arch, 10)
    gen = get_generator("ConvL").to(device).eval()
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = Path(tmp) / "base.pt"
        save_checkpoint({**base_checkpoint_meta(args.arch, "cifar10", 10, 8), "state_dict": base.state_dict()}, ckpt)
        sync()
        t = time.perf_counter()
        ref = reload_baseline(ckpt, args.arch, gen, data_cfg, device, fault, seeds)
        sync()
        t_ref = time.perf_counter() - t
        t = time.perf_counter()
        base = load_base(str(ckpt), args.arch, "cifar10", 8, device, **SHAPE)
        batches = cache_batches(make_loader(data_cfg, "test", seed=0, device=device, augment=False,
                                            shuffle=False), device)
        ours = evaluate_seeds(base, gen, batches, device, fault, seeds, args.batch_models)
        sync()
        t_ours = time.perf_counter() - t
    worst = max([abs(a[k] - b[k]) for a, b in zip(ref["per_seed"], ours["per_seed"]) for k in ("PA", "PA_NF")]
                + [abs(ref[k] - ours[k]) for k in ("CA", "CA_NF")])
    n = sum(len(y) for _, y in batches)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"{args.arch} + ConvL, {len(seeds)} seeds, {n} test images, official BER {BER}; {name}")
    print(f"{'method':40s} {'seconds':>8s}\n{'baseline: reload + re-read per seed':40s} {t_ref:8.2f}\n"
          f"{'ours (evaluate_seeds, K=' + str(args.batch_models) + ')':40s} {t_ours:8.2f}")
    print(f"largest accuracy difference (CA, CA(NF), per-seed PA, PA(NF)): {worst:.4f} points")
    if worst > 100.0 / n:          # at most one image flipped by float summation order
        raise SystemExit(f"ours and the baseline disagree by {worst} points")
    print(f"RESULT speedup_vs_reload={t_ref / t_ours:.2f}")


if __name__ == "__main__":
    main()

"""Figures for a run folder: accuracy vs BER (results.json's sweep, docs/DESIGN.md §8) and training curves.

Rendered with matplotlib's Agg canvas on a standalone Figure (no pyplot state, never a window), and
written atomically next to the inputs: `sweep.png` and `curves.png`.

Example:
    python -c "from eval.plots import plot_sweep; print(plot_sweep('checkpoints/resnet18_cifar10_transform_eval'))"
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Dict, List

import numpy as np

DPI = 120                               # PNG resolution, dots per inch
NOT_PLOTTED = {"epoch", "lr", "epoch_time_s"}
LABELS = {"train_loss": "train loss", "test_loss": "test loss", "train_acc": "train acc",
          "test_acc": "test acc", "train_clean_acc": "train acc, clean (M0)",
          "train_pert_acc": "train acc, perturbed (M_k)", "val_acc": "val acc (held-out train images)",
          "val_loss": "val loss (held-out train images)",
          "val_CA_NF": "val CA(NF) (held-out train images)",
          "val_PA": "val PA (held-out train images, monitor seeds)",
          "val_PA_NF": "val PA(NF) (held-out train images, monitor seeds)"}
Y_MARGIN = 3.0                          # sweep.png: points of accuracy above and below the data


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)                # Agg canvas: PNG output only, no GUI backend involved
    return fig


def _save(fig, path: Path) -> Path:
    from common.ckpt import atomic_write
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=DPI))
    return path


def _title(settings: Dict) -> str:
    gen = settings.get("generator") or "no generator"
    fault = settings.get("fault") or {}
    where = f"bit {fault['position']}" if fault.get("position", -1) not in (-1, None) else "any bit"
    return (f"{settings.get('arch', '?')} on {settings.get('dataset', '?')} + {gen}: "
            f"{settings.get('fault_model', fault.get('model', '?'))} faults ({where}), "
            f"{len(settings.get('seeds', []))} seeds")


def plot_sweep(run_dir: os.PathLike) -> Path:
    """Accuracy vs BER for the test split: PA and PA(NF) mean ± std bands, CA and CA(NF) dashed."""
    run_dir = Path(run_dir)
    path = run_dir / "results.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not found; run transform_eval (testing_mode generator_base) first")
    res = json.loads(path.read_text())
    rows = sorted((r for r in res.get("sweep", []) if r.get("split", "test") == "test" and r.get("ber") is not None),
                  key=lambda r: r["ber"])
    if not rows:
        raise ValueError(f"{path} has no test-split BER sweep (a testing_mode 'clean' result?)")
    ber = np.array([r["ber"] for r in rows]) * 100               # (n_ber,) percent
    fig = _figure(7.0, 4.5)
    ax = fig.subplots()
    shown = []                                                   # every plotted value, for the y range
    curves = [("PA_mean", "PA_std", "PA (base model)", "tab:red"),
              ("PA_NF_mean", "PA_NF_std", "PA(NF) (with generator)", "tab:blue")]
    for mean_key, std_key, label, color in curves:
        if not all(mean_key in r for r in rows):
            continue
        mean = np.array([r[mean_key] for r in rows])               # (n_ber,)
        std = np.array([r.get(std_key, 0.0) for r in rows])        # (n_ber,)
        ax.errorbar(ber, mean, yerr=std, fmt="o-", capsize=3, color=color, label=f"{label}, mean ± std")
        ax.fill_between(ber, mean - std, mean + std, color=color, alpha=0.2, linewidth=0)
        shown += [*(mean - std), *(mean + std)]
    for key, label, color in (("CA", "CA", "tab:red"), ("CA_NF", "CA(NF)", "tab:blue")):
        if key in rows[0]:
            ax.axhline(rows[0][key], color=color, linestyle="--", linewidth=1, label=f"{label} (clean)")
            shown.append(rows[0][key])
    ax.set_xscale("log")
    ax.set_xticks(ber, [f"{b:g}" for b in ber])             # label the evaluated BERs, not powers of 10
    ax.minorticks_off()
    ax.set_xlabel("bit error rate (%)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_ylim(*y_range(shown))
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower left", fontsize=8)
    n_img = rows[0].get("n_images")
    ax.set_title(_title(res.get("settings", {})) + (f", {n_img} images" if n_img else ""), fontsize=9)
    return _save(fig, run_dir / "sweep.png")


def y_range(values) -> tuple:
    """Accuracy axis fitted to the plotted values (bands and CA lines), so a 2-point recovery shows."""
    return max(0.0, min(values) - Y_MARGIN), min(100.0, max(values) + Y_MARGIN)


def _series(rows: List[Dict], key: str):
    pts = [(r["epoch"], r[key]) for r in rows
           if isinstance(r.get(key), (int, float)) and math.isfinite(r[key])]
    return [p[0] for p in pts], [p[1] for p in pts]


def plot_curves(run_dir: os.PathLike) -> Path:
    """Loss and accuracy per epoch from metrics.jsonl (base QAT or EOPM keys, whichever are present)."""
    run_dir = Path(run_dir)
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not found; train with `train` or `transform_eopm_gen` first")
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    rows = [r for r in rows if "epoch" in r]
    if not rows:
        raise ValueError(f"{path} holds no epochs yet")
    keys = list(dict.fromkeys(k for r in rows for k in r if k not in NOT_PLOTTED
                              and isinstance(r[k], (int, float))))
    loss_keys = [k for k in keys if "loss" in k]
    acc_keys = [k for k in keys if k not in loss_keys]
    from matplotlib.ticker import MaxNLocator
    fig = _figure(10.0, 4.0)
    ax_loss, ax_acc = fig.subplots(1, 2)
    for ax, ks, ylabel in ((ax_loss, loss_keys, "loss"), (ax_acc, acc_keys, "accuracy (%)")):
        for k in ks:
            x, y = _series(rows, k)
            ax.plot(x, y, "o-" if len(x) < 30 else "-", markersize=3, label=LABELS.get(k, k))
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(ylabel)
        ax.grid(True, alpha=0.3)
        if ks:
            ax.legend(fontsize=8)
    fig.suptitle(_curves_title(run_dir), fontsize=9)
    return _save(fig, run_dir / "curves.png")


def _curves_title(run_dir: Path) -> str:
    args_path = run_dir / "args.json"
    if not args_path.is_file():
        return run_dir.name
    args = json.loads(args_path.read_text())
    run, data = args.get("run", {}), args.get("data", {})
    what = {"train": "QAT training"}.get(run.get("mode", ""), run.get("mode", ""))
    if what == "transform_eopm_gen":
        eopm, fault = args.get("eopm", {}), args.get("fault", {})
        what = (f"EOPM {eopm.get('generator', '?')}, λ={eopm.get('lam', '?')}, N={eopm.get('n_models', '?')}, "
                f"{fault.get('model', '?')} ber={fault.get('ber', '?')}")
    return (f"{run_dir.name}: {run.get('arch', '?')} on {data.get('dataset', '?')} {what}".strip()
            + "\nval = images held out of the training split (--val-size), never the test split")

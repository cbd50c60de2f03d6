"""Figures for a run folder and across runs: accuracy vs BER (results.json's sweep, docs/DESIGN.md §8), training
curves (metrics.jsonl), and the report's comparison of runs.

Drawn on standalone Agg figures (eval.figures) and written atomically next to the inputs: `sweep.png` and
`curves.png`; the comparison figure is returned as PNG bytes for the HTML report.
In `curves.png` each metric goes on the panel of its kind, read from its name (`metric_kind`): accuracies
(%) on one, losses on another; times and the learning rate are not drawn. The epoch best.pt holds is marked.

Example:
    python -c "from eval.plots import plot_sweep; print(plot_sweep('checkpoints/resnet18_cifar10_transform_eval'))"
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

from common.runs import read_jsonl
from eval.figures import new_figure, png_bytes, save_png
from eval.protection import base_suffix, ecc_suffix
from eval.results import read_results

LABELS = {"train_loss": "train loss", "test_loss": "test loss", "train_acc": "train acc",
          "test_acc": "test acc", "train_clean_acc": "train acc, clean (M0)",
          "train_pert_acc": "train acc, perturbed (M_k)", "val_acc": "val acc (held-out train images)",
          "val_loss": "val loss (held-out train images)",
          "val_CA_NF": "val CA(NF) (held-out train images)",
          "val_PA": "val PA (held-out train images, monitor seeds)",
          "val_PA_NF": "val PA(NF) (held-out train images, monitor seeds)"}
# Panels of curves.png, by metric kind, left to right: (kind, y-axis label). Kinds not listed are not drawn.
PANELS = (("loss", "loss"), ("accuracy", "accuracy (%)"))
ACCURACY_NAMES = {"acc", "CA", "PA", "CA_NF", "PA_NF"}      # a key's name after its split prefix
SPLIT_PREFIXES = ("train_", "val_", "test_")
COMPARISON_DPI = 90                     # the report's figure: 11 in x 90 dpi, about 1000 px wide
Y_MARGIN = 3.0                          # sweep.png: points of accuracy above and below the data


def metric_kind(key: str) -> Optional[str]:
    """What a metrics.jsonl key measures, from its name: 'accuracy' (%), 'loss', 'time' (seconds),
    'epoch', 'lr', or None for a name this code does not know."""
    if key in ("epoch", "lr"):
        return key
    if key.endswith("_s"):
        return "time"
    if "loss" in key:
        return "loss"
    name = next((key[len(p):] for p in SPLIT_PREFIXES if key.startswith(p)), key)
    return "accuracy" if name in ACCURACY_NAMES or name.endswith("_acc") else None


def curve_panels(keys: Sequence[str]) -> Dict[str, List[str]]:
    """The keys drawn on each panel of curves.png, {kind: keys} in PANELS order (empty panels left out)."""
    panels = {kind: [k for k in keys if metric_kind(k) == kind] for kind, _ in PANELS}
    return {kind: ks for kind, ks in panels.items() if ks}


def _needed(path: Path, hint: str) -> Path:
    """`path`, or a FileNotFoundError saying what makes it."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not found; {hint}")
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
    path = _needed(run_dir / "results.json", "run transform_eval (testing_mode generator_base) first")
    res = read_results(path)
    rows = sorted((r for r in res.entries if r["split"] == "test" and r["ber"] is not None), key=lambda r: r["ber"])
    if not rows:
        raise ValueError(f"{path} has no test-split BER sweep (a testing_mode 'clean' result?)")
    ber = np.array([r["ber"] for r in rows]) * 100               # (n_ber,) percent
    fig = new_figure(7.0, 4.5)
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
    _ber_axis(ax, ber)
    ax.set_ylabel("test accuracy (%)")
    ax.set_ylim(*y_range(shown))
    ax.legend(loc="lower left", fontsize=8)
    n_img = rows[0].get("n_images")
    ax.set_title(_title(res.settings) + (f", {n_img} images" if n_img else ""), fontsize=9)
    return save_png(fig, run_dir / "sweep.png")


def _ber_axis(ax, ber_percent) -> None:
    ax.set_xscale("log")
    ticks = sorted(set(ber_percent))
    ax.set_xticks(ticks, [f"{b:g}" for b in ticks])            # label the evaluated BERs, not powers of 10
    ax.minorticks_off()
    ax.set_xlabel("bit error rate (%)")
    ax.grid(True, which="both", alpha=0.3)


def y_range(values) -> tuple:
    """Accuracy axis fitted to the plotted values (bands and CA lines), so a 2-point recovery shows."""
    return max(0.0, min(values) - Y_MARGIN), min(100.0, max(values) + Y_MARGIN)


def _series(rows: List[Dict], key: str):
    pts = [(r["epoch"], r[key]) for r in rows
           if isinstance(r.get(key), (int, float)) and math.isfinite(r[key])]
    return [p[0] for p in pts], [p[1] for p in pts]


def chosen_epoch(run_dir: Path) -> Optional[int]:
    """The epoch best.pt holds (None when there is no readable best.pt)."""
    from common.ckpt import CheckpointError, load_checkpoint
    try:
        epoch = load_checkpoint(run_dir / "best.pt").get("epoch")
    except CheckpointError:
        return None
    return epoch if isinstance(epoch, int) else None


def curves_figure(rows: List[Dict], title: str, best_epoch: Optional[int] = None):
    """The figure of curves.png: one panel per metric kind (PANELS), integer epochs, best.pt's epoch marked."""
    from matplotlib.ticker import MaxNLocator
    keys = list(dict.fromkeys(k for r in rows for k in r if isinstance(r[k], (int, float))))
    panels = curve_panels(keys)
    epochs = [r["epoch"] for r in rows]
    fig = new_figure(5.0 * max(len(panels), 1), 4.0)
    axes = fig.subplots(1, max(len(panels), 1), squeeze=False)[0]
    for ax, (kind, ks) in zip(axes, panels.items()):
        for k in ks:
            x, y = _series(rows, k)
            ax.plot(x, y, "o-" if len(x) < 30 else "-", markersize=3, label=LABELS.get(k, k))
        if best_epoch is not None:
            ax.axvline(best_epoch, color="0.3", linestyle=":", linewidth=1.2, label=f"best.pt (epoch {best_epoch})")
        ax.set_xlim(min(epochs) - 0.5, max(epochs) + 0.5)     # one epoch: a tick at it, not at 0.95..1.05
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
        ax.set_xlabel("epoch")
        ax.set_ylabel(dict(PANELS)[kind])
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title, fontsize=9)
    return fig


def plot_curves(run_dir: os.PathLike) -> Path:
    """Losses and accuracies per epoch from metrics.jsonl (base QAT or EOPM keys, whichever are present)."""
    run_dir = Path(run_dir)
    path = _needed(run_dir / "metrics.jsonl", "train with `train` or `transform_eopm_gen` first")
    rows = [r for r in read_jsonl(path, skip_bad=True) if isinstance(r.get("epoch"), int)]
    if not rows:
        raise ValueError(f"{path} holds no epochs yet")
    fig = curves_figure(rows, _curves_title(run_dir), chosen_epoch(run_dir))
    return save_png(fig, run_dir / "curves.png")


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


def _category(row: Dict) -> str:
    """A bar's label: base model (with how it was trained, when not by plain QAT) and generator, the
    error correction when there is one, and the model the generator was trained on when another; rows
    that differ in any of these are never averaged into one bar."""
    on = row.get("trained_on") or ""
    src = on.split(" ")[0].split("/")[0]
    return (f"{row['arch']}{base_suffix(row['base'])}\n+ {row['generator']}"
            + ecc_suffix(row["ecc"], before="\n")
            + (f"\n(G from {src})" if src and src != row["arch"] else ""))


def plot_comparison(rows: List[Dict]) -> Optional[bytes]:
    """The report's figure across runs, as PNG bytes: RP per base model and generator at each BER (our runs:
    bars, the mean over re-runs; the paper: hollow markers), and PA(NF) (solid) and PA (dashed) against BER
    for each base model and generator evaluated at two or more BERs. None when no test row has an RP."""
    ours: Dict[tuple, List[Dict]] = {}
    paper: Dict[tuple, Dict] = {}
    last = None
    for r in rows:                      # a paper row follows the group of our rows it belongs to
        if r["split"] != "test" or r["ber"] is None or not r["generator"]:
            continue
        if r["paper"]:
            if last is not None:
                paper[last] = r
        elif isinstance(r.get("RP"), (int, float)):
            last = (_category(r), r["ber"])
            ours.setdefault(last, []).append(r)
    if not ours:
        return None
    cats = list(dict.fromkeys(c for c, _ in ours))
    bers = sorted({b for _, b in ours})
    sweeps = [c for c in cats if sum(1 for c2, _ in ours if c2 == c) > 1]
    fig = new_figure(11.0 if sweeps else 6.5, 4.2)
    axes = fig.subplots(1, 2 if sweeps else 1, squeeze=False)[0]
    ax, width = axes[0], 0.8 / len(bers)
    colors = {b: f"C{i}" for i, b in enumerate(bers)}
    for i, ber in enumerate(bers):
        x = [j + (i - (len(bers) - 1) / 2) * width for j, c in enumerate(cats) if (c, ber) in ours]
        rp = [float(np.mean([r["RP"] for r in ours[(c, ber)]])) for c in cats if (c, ber) in ours]
        ax.bar(x, rp, width * 0.9, color=colors[ber], label=f"ours, BER {ber * 100:g}%")
        pts = [(j + (i - (len(bers) - 1) / 2) * width, paper[(c, ber)]["RP"]) for j, c in enumerate(cats)
               if isinstance(paper.get((c, ber), {}).get("RP"), (int, float))]
        if pts:
            labelled = "paper" in ax.get_legend_handles_labels()[1]
            ax.plot(*zip(*pts), "o", mfc="none", mec="black", ms=7, label=None if labelled else "paper")
    ax.axhline(0, color="0.4", linewidth=0.8)
    ax.set_xticks(range(len(cats)), cats, fontsize=8)
    ax.set_ylabel("RP = PA(NF) − PA (points)")
    ax.set_title("recovery per base model and generator", fontsize=9)
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize=7)
    if sweeps:
        ax = axes[1]
        for k, c in enumerate(sweeps):
            pts = sorted((b, ours[(c, b)][0]) for b in bers if (c, b) in ours)
            x = np.array([b for b, _ in pts]) * 100                                   # (n_ber,) percent
            label = c.replace("\n", " ")
            ax.errorbar(x, [r["PA_NF_mean"] for _, r in pts], yerr=[r["PA_NF_std"] or 0 for _, r in pts],
                        fmt="o-", capsize=3, color=f"C{k}", label=f"{label}: PA(NF)")
            ax.plot(x, [r["PA_mean"] for _, r in pts], "s--", color=f"C{k}", alpha=0.6, label=f"{label}: PA")
            ppts = [(b * 100, paper[(c, b)]["PA_NF_mean"]) for b, _ in pts
                    if isinstance(paper.get((c, b), {}).get("PA_NF_mean"), (int, float))]
            if ppts:
                ax.plot(*zip(*ppts), "o", mfc="none", mec=f"C{k}", ms=8, label=f"{label}: paper PA(NF)")
        _ber_axis(ax, sorted({b * 100 for c in sweeps for c2, b in ours if c2 == c}))
        ax.set_ylabel("test accuracy (%)")
        ax.set_title("accuracy against bit error rate (mean ± std over fault seeds)", fontsize=9)
        ax.legend(fontsize=7)
    return png_bytes(fig, dpi=COMPARISON_DPI)

"""`samples.png` of an EOPM run: what the generator does to a few test images (paper, appendix figures).

Three rows per image column: the input x, the generator's change F(x) − x (what G(x) adds after the
clamp), scaled so the largest change of the picture spans the grey range (0 = mid grey), and the
output F(x). Under x and F(x): the prediction of the clean model M0 and of one perturbed model M_k
(fault seed `seed`), green when right, red when wrong; the true class above each column. Classes are
shown by name (datasets.class_names, e.g. 'cat' or 'stop'), by index where a dataset names none.

Example:
    save_samples(base, gen, x[:6], y[:6], FaultConfig("official", 0.01), 50000, run_dir / "samples.png",
                 class_names("cifar10"))
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import torch

from bitflip import FaultConfig, perturbed
from eval.figures import new_figure, save_png

N_SAMPLES = 6          # image columns in samples.png


def _name(i: int, class_names: Optional[Sequence[str]]) -> str:
    return str(class_names[i]).replace("_", " ") if class_names and i < len(class_names) else str(i)


def _show(ax, img: torch.Tensor) -> None:
    """img: (3, H, W) in [-1, 1]."""
    ax.imshow(((img.clamp(-1, 1) + 1) / 2).permute(1, 2, 0).numpy(), interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])


def save_samples(base: torch.nn.Module, gen: torch.nn.Module, x: torch.Tensor, y: torch.Tensor,
                 fault: FaultConfig, seed: int, path: Path,
                 class_names: Optional[Sequence[str]] = None) -> Path:
    """Draw x, the scaled change F(x) − x and F(x) for the images x (B, 3, H, W) into `path`; returns it.
    Classes are labelled by `class_names` (datasets.class_names(dataset, root)), by index without."""
    return save_png(samples_figure(base, gen, x, y, fault, seed, class_names), Path(path))


@torch.no_grad()
def samples_figure(base: torch.nn.Module, gen: torch.nn.Module, x: torch.Tensor, y: torch.Tensor,
                   fault: FaultConfig, seed: int, class_names: Optional[Sequence[str]] = None):
    """The figure of samples.png (see save_samples)."""
    device = next(base.parameters()).device
    x, y = x[:N_SAMPLES].to(device), y[:N_SAMPLES].to(device)
    fx = gen(x)                                                       # (B, 3, H, W) = F(x)
    preds = {"clean": (base(x).argmax(1), base(fx).argmax(1))}        # (M0(x), M0(F(x)))
    with perturbed(base, fault, seed):
        preds["pert"] = (base(x).argmax(1), base(fx).argmax(1))       # (M_k(x), M_k(F(x)))
    delta = fx - x                                                    # (B, 3, H, W)
    scale = 1.0 / max(float(delta.abs().max()), 1e-6)                 # largest change -> ±1
    x, fx, delta, y = x.cpu(), fx.cpu(), (delta * scale).cpu(), y.cpu()
    n = len(y)
    fig = new_figure(1.9 * n, 6.6)
    axes = fig.subplots(3, n, squeeze=False)
    for j in range(n):
        _show(axes[0, j], x[j])
        axes[0, j].set_title(f"true: {_name(int(y[j]), class_names)}", fontsize=8)
        _show(axes[1, j], delta[j])
        _show(axes[2, j], fx[j])
        for row, k in ((0, 0), (2, 1)):
            parts = []
            for label, key in (("M0", "clean"), ("Mk", "pert")):
                p = int(preds[key][k][j].cpu())
                parts.append((f"{label}: {_name(p, class_names)}", "tab:green" if p == int(y[j]) else "tab:red"))
            axes[row, j].set_xlabel(parts[0][0], fontsize=7, color=parts[0][1])
            axes[row, j].text(0.5, -0.2, parts[1][0], fontsize=7, color=parts[1][1], ha="center",
                              va="top", transform=axes[row, j].transAxes)
    for row, label in enumerate(("x", f"F(x) − x, ×{scale:.3g}", "F(x)")):
        axes[row, 0].set_ylabel(label, fontsize=9)
    fig.suptitle(f"generator output; predictions of the clean model M0 and of perturbed model Mk "
                 f"({fault.model} faults, ber={fault.ber:g}, seed {seed}); green = right", fontsize=9)
    return fig

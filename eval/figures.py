"""The figure plumbing every picture of eval/ shares: a standalone matplotlib Figure on the Agg canvas (no pyplot
state, never a window), written atomically as PNG or returned as PNG bytes (for the HTML report).

Example:
    fig = new_figure(7.0, 4.5)
    fig.subplots().plot([1, 2], [3, 4])
    save_png(fig, run_dir / "sweep.png")
"""
from __future__ import annotations

import io
from pathlib import Path

from common.ckpt import atomic_write

DPI = 120                               # PNG resolution, dots per inch


def new_figure(width: float, height: float):
    """A matplotlib Figure of width x height inches with constrained layout, on an Agg canvas."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)                # Agg canvas: PNG output only, no GUI backend involved
    return fig


def save_png(fig, path: Path) -> Path:
    """Write `fig` as a PNG at `path` (temp file, then rename); returns `path`."""
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=DPI))
    return Path(path)


def png_bytes(fig, dpi: int = DPI) -> bytes:
    """`fig` as PNG bytes, for embedding."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()

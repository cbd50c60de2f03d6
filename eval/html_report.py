"""`report --html FILE`: the report's table, a comparison figure and every run's pictures on one self-contained
HTML page.

The page renders the rows eval/report.py built (the same rows and notes as the markdown), then a figure
comparing the runs (eval.plots.plot_comparison: RP per base model and generator, PA(NF) against BER), then
one section per run folder with its settings and the pictures it has: `curves.png` (training curves),
`sweep.png` (accuracy vs BER) and `samples.png` (the generator's effect on test images). Pictures are
embedded as base64 data URIs, so the file can be mailed or archived alone. The table fits a 1200 px
window: the run column holds a short link to the run's section, whose heading holds the full path.

Example:
    python zs_main.py report checkpoints/ --html report.html
"""
from __future__ import annotations

import base64
import html
import os
from pathlib import Path
from typing import Dict, List, Sequence

from common.ckpt import atomic_write
from eval.report import Report, Run, columns

PICTURES = (("curves.png", "training curves"), ("sweep.png", "accuracy vs bit error rate"),
            ("samples.png", "generator samples: x, F(x) − x, F(x) with clean / perturbed predictions"))
SETTINGS_SHOWN = ("arch", "dataset", "generator", "generator_trained_on", "fault_model", "ber", "testing_mode",
                  "lam", "n_models", "epochs", "checkpoint", "g_path", "test_limit")
STYLE = """body{font-family:system-ui,sans-serif;margin:16px;color:#222;max-width:1400px}
table{border-collapse:collapse;font-size:12px;margin:8px 0}
th,td{border:1px solid #ccc;padding:2px 3px;text-align:right;white-space:nowrap}
th{background:#f0f0f0;white-space:normal;vertical-align:bottom}td:first-child,th:first-child{text-align:left}
td:first-child{max-width:150px;overflow:hidden;text-overflow:ellipsis}
tr.paper td{color:#666;font-style:italic;background:#fafafa}tr.group td{border-top:2px solid #999}
section{border-top:2px solid #ddd;margin-top:22px;padding-top:6px}
img{max-width:100%;border:1px solid #eee;margin:4px 0}figure{margin:10px 0}
.settings td{text-align:left}figcaption{font-size:13px;color:#555}.note{font-size:13px;color:#444}code{font-size:12px}"""


def _run_cell(row: Dict, anchors: Dict[str, str]) -> str:
    """The run column: each run's folder name as a link to its section (the full path in the tooltip)."""
    if row["paper"]:
        return f'<span title="{html.escape(row.get("source", ""))}">{html.escape(row["run"])}</span>'
    return ", ".join(f'<a href="#{anchors[label]}" title="{html.escape(label)}">'
                     f"{html.escape(Path(label).name)}</a>" for label in row["runs"])


def table_html(report: Report, anchors: Dict[str, str]) -> str:
    """The report's rows as one HTML table; a thicker line starts each group of one setting."""
    cols = columns(report.energy)
    out = ["<table><thead><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h, _ in cols) + "</tr></thead><tbody>"]
    previous = None
    for row in report.rows:
        classes = ["paper"] * row["paper"] + ["group"] * (previous is not None and previous["paper"])
        cells = [_run_cell(row, anchors)] + [html.escape(cell(row)) for _, cell in cols[1:]]
        cls = f' class="{" ".join(classes)}"' if classes else ""
        out.append(f"<tr{cls}>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
        previous = row
    out.append("</tbody></table>")
    return "\n".join(out)


def _image(data: bytes, caption: str, where: str = "") -> str:
    src = base64.b64encode(data).decode("ascii")
    return (f'<figure><img alt="{html.escape(caption)}" src="data:image/png;base64,{src}">'
            f"<figcaption>{html.escape(caption)}" + (f" (<code>{html.escape(where)}</code>)" if where else "")
            + "</figcaption></figure>")


def run_section(run: Run, anchor: str) -> str:
    """One run: its settings as a small table and the pictures found in the folder."""
    settings = run.results.settings
    rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{html.escape(str(settings[k]))}</td></tr>"
                   for k in SETTINGS_SHOWN if settings.get(k) not in (None, ""))
    pictures = [_image((run.path / name).read_bytes(), caption, str(run.path / name))
                for name, caption in PICTURES if (run.path / name).is_file()]
    return (f'<section id="{anchor}"><h2>{html.escape(run.label)}</h2><p class="note"><code>'
            f"{html.escape(str(run.path))}</code></p>" + (f'<table class="settings">{rows}</table>' if rows else "")
            + ("".join(pictures) or '<p class="note">no pictures in this folder</p>') + "</section>")


def render_html(report: Report, title: str = "NeuralFuse report", sections: Sequence[str] = ()) -> str:
    """The page; `sections` (ready HTML, e.g. eval/compare.py's 'Comparison') go after the figure."""
    from eval.plots import plot_comparison
    anchors = {run.label: f"run-{i}" for i, run in enumerate(report.runs, 1)}
    body: List[str] = [f"<h1>{html.escape(title)}</h1>", table_html(report, anchors)]
    body.append(f'<p class="note">{html.escape(" ".join(report.notes))}</p>')
    figure = plot_comparison(report.rows)
    if figure is not None:
        body.append(_image(figure, "comparison across runs: RP per base model and generator (paper: hollow "
                                   "markers), PA(NF) and PA against BER"))
    body += list(sections)
    body += [run_section(run, anchors[run.label]) for run in report.runs]
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f"<style>{STYLE}</style></head>\n<body>\n" + "\n".join(body) + "\n</body></html>\n")


def write_html(path: os.PathLike, report: Report, sections: Sequence[str] = ()) -> Path:
    """Write the page atomically; returns its path."""
    text = render_html(report, sections=sections)
    atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
    return Path(path)


"""`report --html FILE`: the report's table and every run's pictures on one self-contained HTML page.

The page holds the markdown report of eval/report.py rendered as an HTML table (same rows, same
notes), then one section per run folder with its settings and the pictures it has: `curves.png`
(training curves), `sweep.png` (accuracy vs BER) and `samples.png` (the generator's effect on test
images). Pictures are embedded as base64 data URIs, so the file can be mailed or archived alone.

Example:
    python zs_main.py report checkpoints/ --html report.html
"""
from __future__ import annotations

import base64
import html
import json
import os
from pathlib import Path
from typing import Dict, List, Sequence

PICTURES = (("curves.png", "training curves"), ("sweep.png", "accuracy vs bit error rate"),
            ("samples.png", "generator samples: x, F(x) − x, F(x) with clean / perturbed predictions"))
SETTINGS_SHOWN = ("arch", "dataset", "generator", "fault_model", "ber", "testing_mode", "lam", "n_models",
                  "epochs", "checkpoint", "g_path", "test_limit")
STYLE = """body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1400px}
table{border-collapse:collapse;font-size:13px;margin:8px 0}
th,td{border:1px solid #ccc;padding:3px 7px;text-align:right;white-space:nowrap}
th{background:#f0f0f0}td:first-child,th:first-child{text-align:left}
tr.paper td{color:#666;font-style:italic;background:#fafafa}
section{border-top:2px solid #ddd;margin-top:22px;padding-top:6px}
img{max-width:100%;border:1px solid #eee;margin:4px 0}figure{margin:10px 0}
figcaption{font-size:13px;color:#555}.note{font-size:13px;color:#444}code{font-size:12px}"""


def _cells(line: str) -> List[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def markdown_to_html(markdown: str) -> str:
    """The report's markdown (one pipe table, then note lines) as an HTML table and paragraphs."""
    out: List[str] = []
    rows = [ln for ln in markdown.splitlines() if ln.startswith("|")]
    if rows:
        out.append("<table><thead><tr>" + "".join(f"<th>{html.escape(c)}</th>" for c in _cells(rows[0]))
                   + "</tr></thead><tbody>")
        for ln in rows[2:]:                                   # rows[1] is the |---| separator
            cells = _cells(ln)
            cls = ' class="paper"' if cells and cells[0].startswith("↳") else ""
            out.append(f"<tr{cls}>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>")
        out.append("</tbody></table>")
    notes = [ln for ln in markdown.splitlines() if ln.strip() and not ln.startswith("|")]
    out += [f'<p class="note">{html.escape(n)}</p>' for n in notes]
    return "\n".join(out)


def _image(path: Path, caption: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return (f'<figure><img alt="{html.escape(caption)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{html.escape(caption)} (<code>{html.escape(str(path))}</code>)</figcaption></figure>")


def run_section(run_dir: Path) -> str:
    """One run: its settings as a small table and the pictures found in the folder."""
    settings: Dict = {}
    res_path = run_dir / "results.json"
    if res_path.is_file():
        try:
            settings = json.loads(res_path.read_text()).get("settings", {})
        except (OSError, json.JSONDecodeError):
            settings = {}
    rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{html.escape(str(settings[k]))}</td></tr>"
                   for k in SETTINGS_SHOWN if settings.get(k) not in (None, ""))
    pictures = [_image(run_dir / name, caption) for name, caption in PICTURES if (run_dir / name).is_file()]
    return (f"<section><h2>{html.escape(run_dir.name)}</h2><p class=\"note\"><code>{html.escape(str(run_dir))}"
            f"</code></p>" + (f"<table>{rows}</table>" if rows else "")
            + ("".join(pictures) or '<p class="note">no pictures in this folder</p>') + "</section>")


def render_html(markdown: str, run_dirs: Sequence[Path], title: str = "NeuralFuse report") -> str:
    body = [f"<h1>{html.escape(title)}</h1>", markdown_to_html(markdown)]
    body += [run_section(Path(r)) for r in run_dirs]
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f"<style>{STYLE}</style></head>\n<body>\n" + "\n".join(body) + "\n</body></html>\n")


def write_html(path: os.PathLike, markdown: str, run_dirs: Sequence[Path]) -> Path:
    """Write the page atomically; returns its path."""
    from common.ckpt import atomic_write
    text = render_html(markdown, run_dirs)
    atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
    return Path(path)

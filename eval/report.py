"""`report` mode: run folders' results.json → one table laid out like the paper's (docs/DESIGN.md §8, §11),
rendered as markdown (here) and as HTML (eval/html_report.py) from the same rows.

Every results.json at or below the given folders is one run, labelled by its path; the report says how
many it found. One row per evaluation setting (base model × generator, what the generator was trained on,
dataset, fault model, BER, λ, N, split): CA, PA (mean ± std), CA(NF), PA(NF) (mean ± std), RP, seeds,
test images, the energy saving ES of docs/DESIGN.md §10 (eval.energy, when it covers the setting) and the
efficiency ratio ER = RP / generator parameters in millions (paper Table 3). Re-runs of one setting form
one group: runs with the same numbers share a row. Under each test group whose setting the paper reports
(eval.paper: Tables 12-15, transfer Table 1, λ Table 10; `official` 8-bit faults at any bit), a "↳ paper"
row gives the paper's numbers with the paper's own settings (λ, N = 10, 10 seeds).

Example:
    python zs_main.py report checkpoints/resnet18_cifar10_ConvL_ber0.01_official checkpoints/ --out results.md
    python zs_main.py report checkpoints/ --compare --out results.md --html report.html   # + eval/compare.py
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from common.cli import EXIT_USAGE, OneLineParser, run_subcommand
from common.registry import UnknownName
from eval.paper import PAPER_BITS, PAPER_FAULT_MODEL, PAPER_SEEDS, paper_numbers
from eval.protection import NO_ECC, PLAIN, base_suffix, base_training, ecc_code, ecc_suffix
from eval.results import RESULT_KEYS, Results, ResultsError, read_results

DASH = "–"
PAPER_LABEL = "↳ paper"
NOTE = "Accuracies in %, mean ± population std over fault seeds; RP = PA(NF) − PA in points."
ENERGY_NOTE = "ES = SRAM energy saving (Eq. 6 from weight-memory accesses, Eq. 7 from MACs)."
ER_NOTE = "ER = efficiency ratio, RP per million generator parameters (paper Table 3)."
PAPER_NOTE = (f"'{PAPER_LABEL}' rows: arXiv 2306.16869 with its own settings ({PAPER_FAULT_MODEL} faults, 8-bit "
              f"weights, {PAPER_SEEDS} perturbed models, full test split, λ and N as shown; transfer rows: "
              f"generator trained at the BER after '@').")
# The setting that makes two rows re-runs of one evaluation (everything but the run and its numbers).
SETTING = ("arch", "base", "generator", "trained_on", "dataset", "fault_model", "position", "bits", "ecc", "ber",
           "lam", "n_models", "split")
MEASURED = (*RESULT_KEYS, "n_seeds", "n_images")


class ReportError(Exception):
    """A bad report argument: printed as one line, exit code 2."""


@dataclass(frozen=True)
class Run:
    path: Path
    label: str           # the path relative to the given folder's parent
    results: Results


@dataclass(frozen=True)
class Report:
    """What both renderers draw: the rows (ours and the paper's, grouped), the runs and the note lines."""
    rows: List[Dict]
    runs: List[Run]
    notes: List[str]
    energy: bool


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="zs_main.py report", description="Tabulate run folders' results.json as markdown, "
                "beside the paper's numbers where the setting matches.")
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR",
                   help="a folder searched at every depth for runs (folders holding results.json)")
    p.add_argument("--out", default=None, metavar="FILE", help="also write the markdown table to this file")
    p.add_argument("--html", default=None, metavar="FILE",
                   help="also write one self-contained HTML page: the table, a comparison figure, and each "
                        "run's curves, sweep plot and samples")
    p.add_argument("--energy", action=argparse.BooleanOptionalAction, default=True,
                   help="energy-saving columns from eval.energy (default on)")
    p.add_argument("--compare", action="store_true",
                   help="also the comparison view (eval/compare.py): per base model and BER, NeuralFuse beside "
                        "the unprotected model, UIP, fault-aware training, SECDED and the iso-energy point")
    return p


def find_runs(paths: Sequence[str]) -> List[Run]:
    """Every folder holding a results.json at or below each path (nested to any depth), once each, read,
    with its label: the path relative to the given path's parent (e.g. 'checkpoints/demo/cpu/generator')."""
    runs: List[Run] = []
    seen = set()
    for p in map(Path, paths):
        found = sorted(f.parent for f in p.rglob("results.json")) if p.is_dir() else []
        if not found:
            why = "does not exist" if not p.exists() else "has no results.json at any depth"
            raise ReportError(f"{p} {why}; evaluate it first with transform_eval or transform_eopm_gen")
        base = p.resolve().parent
        for run in found:
            if run.resolve() not in seen:
                seen.add(run.resolve())
                try:
                    res = read_results(run)
                except ResultsError as e:
                    raise ReportError(str(e)) from None
                label = str(run.resolve().relative_to(base))
                if any(r.label == label for r in runs):     # same name under two given folders: full paths
                    label = str(run.resolve())
                runs.append(Run(run, label, res))
    return runs


def check_out(flag: str, out: Optional[str]) -> None:
    """Refuse an output path (--out, --html) that cannot be a file, before any work is done."""
    if out is None:
        return
    p = Path(out)
    if p.is_dir():
        raise ReportError(f"{flag} {out} is a folder; give a file path such as {p / 'report.md'}")
    parent = next((a for a in p.absolute().parents if a.exists()), None)
    if parent is not None and not parent.is_dir():
        raise ReportError(f"{flag} {out}: {parent} is a file, not a folder")


@contextmanager
def _writing(flag: str, out: str):
    """Turn a failed write of an output file into a one-line ReportError."""
    try:
        yield
    except OSError as e:
        raise ReportError(f"cannot write {flag} {out}: {e.strerror or e}") from None


def _eopm_settings(s: Dict) -> Dict:
    """λ and N of the generator a result evaluated: from its settings, else from the args.json beside
    the generator checkpoint (results written by transform_eval before these were recorded)."""
    if s.get("lam") is not None or not s.get("g_path"):
        return {"lam": s.get("lam"), "n_models": s.get("n_models")}
    args = Path(s["g_path"]).parent / "args.json"
    try:
        eopm = json.loads(args.read_text()).get("eopm", {})
    except (OSError, ValueError, AttributeError):
        return {"lam": None, "n_models": None}
    return {"lam": eopm.get("lam"), "n_models": eopm.get("n_models")}


def run_rows(run: Run) -> List[Dict]:
    """One row per (split, BER) entry of a run; a 'clean' result gives one row with CA only."""
    s = run.results.settings
    fault = s.get("fault") or {}
    common = {"run": run.label, "runs": [run.label], "arch": s.get("arch"), "generator": s.get("generator"),
              "dataset": s.get("dataset"), "fault_model": s.get("fault_model", fault.get("model")),
              "position": fault.get("position", -1), "bits": fault.get("bits", PAPER_BITS),
              "ecc": ecc_code(s), "base": base_training(s), **_eopm_settings(s),
              "trained_on": s.get("generator_trained_on") if s.get("generator") else None}
    rows = []
    for e in run.results.entries:
        perturbed = e["ber"] is not None
        n_seeds = len(e["per_seed"]) or (len(s.get("seeds", [])) if perturbed else 0)
        rows.append({**common, **{k: e.get(k) for k in RESULT_KEYS}, "ber": e["ber"], "split": e["split"],
                     "n_seeds": n_seeds or None, "n_images": e["n_images"], "paper": False})
    return rows


def paper_row(row: Dict) -> Optional[Dict]:
    """The paper's numbers for `row`'s setting with the paper's own settings, or None when it reports none."""
    if row["split"] != "test" or row["position"] not in (-1, None) or row["bits"] != PAPER_BITS \
            or row["ecc"] != NO_ECC or row["base"] != PLAIN:   # the paper has no error correction, no robust base
        return None
    p = paper_numbers(row["arch"], row["dataset"], row["generator"], row["ber"],
                      row["fault_model"] or PAPER_FAULT_MODEL, row["lam"], row["trained_on"])
    if p is None:
        return None
    perturbed = row["ber"] is not None
    trained_on = p.get("trained_on")
    if trained_on and p.get("train_ber"):
        trained_on += f" @{p['train_ber'] * 100:g}%"
    return {**row, **{k: p.get(k) for k in RESULT_KEYS}, "run": PAPER_LABEL, "runs": [], "paper": True,
            "fault_model": PAPER_FAULT_MODEL if perturbed else None, "lam": p.get("lam"),
            "n_models": p.get("n_models"), "trained_on": trained_on,
            "n_seeds": PAPER_SEEDS if perturbed else None, "n_images": "full", "es_twma": p.get("ES"),
            "es_mac": None, "source": p["source"]}


def row_energy_saving(row: Dict, cache: Dict) -> Tuple[Optional[float], Optional[float]]:
    """(ES from TWMA, ES from MACs) in % that eval.energy gives `row`'s setting, or (None, None) where it
    has no answer (no generator, a clean row, or a name / BER outside its registries and range)."""
    if row["generator"] is None or row["ber"] is None:
        return None, None
    ecc = row["ecc"]
    key = (row["arch"], row["generator"], row["dataset"], row["ber"], ecc)
    if key not in cache:
        from eval.energy import ECC_OVERHEADS, energy_rows
        try:
            found = energy_rows(row["arch"], [row["generator"]], dataset=row["dataset"], ber=row["ber"],
                                ecc_overhead=ECC_OVERHEADS[ecc])[0]
            cache[key] = (found["es_twma"], found["es_mac"])
        except (UnknownName, ValueError, KeyError):   # a name no registry knows, an unknown code, a BER outside (0, 1)
            cache[key] = (None, None)
    return cache[key]


@lru_cache(maxsize=None)
def generator_params(name: str) -> Optional[int]:
    """Parameters of generator `name` (built from the generators registry), None for an unknown name."""
    from generators import get_generator, list_generators
    if name not in list_generators():
        return None
    return sum(p.numel() for p in get_generator(name, input_size=32).parameters())   # UIP: at 32 px


def efficiency_ratio(row: Dict) -> Optional[float]:
    """RP per million generator parameters (paper Table 3), None without RP or a known generator."""
    params = generator_params(row["generator"]) if row["generator"] else None
    return row["RP"] / (params / 1e6) if params and isinstance(row["RP"], (int, float)) else None


def group_rows(rows: List[Dict]) -> List[List[Dict]]:
    """Rows grouped by setting (first appearance first); within a group, runs whose numbers agree share
    one row (their labels joined)."""
    groups: Dict[Tuple, List[Dict]] = {}
    for row in rows:
        group = groups.setdefault(tuple(row[k] for k in SETTING), [])
        same = next((r for r in group if all(r[k] == row[k] for k in MEASURED)), None)
        if same is None:
            group.append(dict(row))
        else:
            same["runs"] = same["runs"] + row["runs"]
            same["run"] = ", ".join(same["runs"])
    return list(groups.values())


def build_report(run_dirs: Sequence[str], energy: bool = True) -> Report:
    """The report's rows (each group of our rows, then the paper's row for it) for the given run folders."""
    runs = find_runs(run_dirs)
    cache: Dict = {}
    rows: List[Dict] = []
    for group in group_rows([row for run in runs for row in run_rows(run)]):
        paper = paper_row(group[0])
        for row in group + ([paper] if paper is not None else []):
            if energy and not row["paper"]:
                row["es_twma"], row["es_mac"] = row_energy_saving(row, cache)
            row["er"] = efficiency_ratio(row)
            rows.append(row)
    found = f"{len(runs)} run{'s' * (len(runs) != 1)} (results.json) found under {', '.join(run_dirs)}."
    notes = [found, NOTE] + [ENERGY_NOTE] * energy + [ER_NOTE] + [PAPER_NOTE] * any(r["paper"] for r in rows)
    return Report(rows, runs, notes, energy)


def _num(v, fmt: str = "{:.1f}") -> str:
    return fmt.format(v) if isinstance(v, (int, float)) and math.isfinite(v) else DASH


def _mean_std(mean, std) -> str:
    if not isinstance(mean, (int, float)):
        return DASH
    return _num(mean) + (f" ± {std:.1f}" if isinstance(std, (int, float)) else "")


def _trained_on(row: Dict) -> str:
    """'vgg11' for a generator trained on the row's dataset, 'vgg11/gtsrb' otherwise; '–' without one."""
    on = row.get("trained_on")
    if not row["generator"] or not on:
        return DASH
    return on.replace(f"/{row['dataset']}", "", 1) if row["dataset"] else on


def _if_generator(fmt: Callable[[Dict], str]) -> Callable[[Dict], str]:
    return lambda r: fmt(r) if r["generator"] else DASH


# The columns, once for both renderers: (header, cell text of a row, shown with --no-energy).
COLUMNS: List[Tuple[str, Callable[[Dict], str], bool]] = [
    ("run", lambda r: r["run"], True),
    ("base model", lambda r: (r["arch"] or DASH) + base_suffix(r["base"]), True),
    ("generator", lambda r: r["generator"] or DASH, True),
    ("G trained on", _trained_on, True),
    ("dataset", lambda r: r["dataset"] or DASH, True),
    ("fault model", lambda r: (r["fault_model"] + ecc_suffix(r["ecc"])) if r["ber"] is not None and r["fault_model"]
     else DASH, True),
    ("BER", lambda r: f"{r['ber'] * 100:g}%" if r["ber"] is not None else DASH, True),
    ("λ", _if_generator(lambda r: _num(r.get("lam"), "{:g}")), True),
    ("N", _if_generator(lambda r: str(r.get("n_models") or DASH)), True),
    ("split", lambda r: r["split"], True),
    ("CA", lambda r: _num(r["CA"]), True),
    ("PA", lambda r: _mean_std(r["PA_mean"], r["PA_std"]), True),
    ("CA(NF)", lambda r: _num(r["CA_NF"]), True),
    ("PA(NF)", lambda r: _mean_std(r["PA_NF_mean"], r["PA_NF_std"]), True),
    ("RP", lambda r: _num(r["RP"], "{:+.1f}"), True),
    ("seeds", lambda r: str(r["n_seeds"] or DASH), True),
    ("test images", lambda r: str(r["n_images"] or DASH), True),
    ("ES (%)", lambda r: _num(r.get("es_twma")), False),
    ("ES MAC (%)", lambda r: _num(r.get("es_mac")), False),
    ("ER", lambda r: _num(r.get("er")), True),
]


def columns(energy: bool) -> List[Tuple[str, Callable[[Dict], str]]]:
    return [(head, cell) for head, cell, always in COLUMNS if always or energy]


def markdown(report: Report) -> str:
    """The report as one markdown pipe table and one note line."""
    cols = columns(report.energy)
    lines = ["| " + " | ".join(h for h, _ in cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    lines += ["| " + " | ".join(cell(r) for _, cell in cols) + " |" for r in report.rows]
    return "\n".join(lines) + "\n\n" + " ".join(report.notes) + "\n"


def _run(args: argparse.Namespace) -> int:
    check_out("--out", args.out)
    check_out("--html", args.html)
    report = build_report(args.run_dirs, args.energy)
    text = markdown(report)
    sections = []
    if args.compare:
        from eval import compare
        groups = compare.build_comparison(report.runs)
        text += "\n" + compare.markdown(groups)
        sections.append(compare.html_section(groups))
    print(text, end="")
    if args.out:
        from common.ckpt import atomic_write
        with _writing("--out", args.out):
            atomic_write(args.out, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
        print(f"report written to {args.out}", file=sys.stderr)
    if args.html:
        from eval.html_report import write_html
        with _writing("--html", args.html):
            page = write_html(args.html, report, sections)
        print(f"HTML report written to {page}", file=sys.stderr)
    return 0


def main(argv: Sequence[str]) -> int:
    return run_subcommand(build_parser(), argv, _run, {ReportError: EXIT_USAGE})

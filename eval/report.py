"""`report` mode: run folders' results.json → one markdown table laid out like the paper's
(docs/DESIGN.md §8, §11).

Every results.json at or below the given folders is one run, labelled by its path; the report says how
many it found. One row per (run, split, BER): base model × generator, dataset, fault model, BER, the
generator's λ and N, CA, PA (mean ± std),
CA(NF), PA(NF) (mean ± std), RP, seeds, test images and the energy saving ES of docs/DESIGN.md §10 (eval.energy,
when it covers the setting). Under each test row whose setting the paper reports (same base model,
dataset and generator, BER 1% or 0.5%, official 8-bit faults at any bit), a "↳ paper" row repeats the
paper's numbers (eval.paper) for comparison.

Example:
    python zs_main.py report checkpoints/resnet18_cifar10_ConvL_ber0.01_official checkpoints/ --out results.md
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from common.cli import EXIT_USAGE, OneLineParser, run_subcommand
from common.registry import UnknownName
from eval.paper import PAPER_BITS, PAPER_FAULT_MODEL, PAPER_SEEDS, paper_numbers

DASH = "–"
PAPER_LABEL = "↳ paper"
NOTE = "Accuracies in %, mean ± population std over fault seeds; RP = PA(NF) − PA in points."
ENERGY_NOTE = "ES = SRAM energy saving (Eq. 6 from weight-memory accesses, Eq. 7 from MACs)."
PAPER_NOTE = (f"'{PAPER_LABEL}' rows: arXiv 2306.16869 ({PAPER_FAULT_MODEL} faults, 8-bit weights, "
              f"{PAPER_SEEDS} perturbed models, full test split).")


class ReportError(Exception):
    """A bad report argument: printed as one line, exit code 2."""


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="zs_main.py report", description="Tabulate run folders' results.json as markdown, "
                "beside the paper's numbers where the setting matches.")
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR",
                   help="a folder searched at every depth for runs (folders holding results.json)")
    p.add_argument("--out", default=None, help="also write the table to this file")
    p.add_argument("--html", default=None, metavar="FILE",
                   help="also write one self-contained HTML page: the table, curves, sweep plot and samples")
    p.add_argument("--energy", action=argparse.BooleanOptionalAction, default=True,
                   help="energy-saving columns from eval.energy (default on)")
    return p


def find_runs(paths: Sequence[str]) -> List[Tuple[Path, str]]:
    """Every folder holding a results.json at or below each path (nested to any depth), once each, with
    its label: the path relative to the given path's parent (e.g. 'checkpoints/demo/cpu/generator')."""
    runs: List[Tuple[Path, str]] = []
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
                runs.append((run, str(run.resolve().relative_to(base))))
    return runs


def load_results(run_dir: Path) -> Dict:
    """A results.json as a dict; anything else (not text, not JSON, not an object) is a ReportError."""
    path = run_dir / "results.json"
    try:
        res = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:        # ValueError covers bad JSON and bytes that are not UTF-8
        raise ReportError(f"{path} is unreadable: {type(e).__name__}: {e}") from None
    def bad(want: str, found) -> ReportError:
        return ReportError(f"{path} is not a results file of this code (expected {want}, found "
                           f"{type(found).__name__})")
    if not isinstance(res, dict):
        raise bad("a JSON object", res)
    for key, kind in (("settings", dict), ("sweep", list), ("per_seed", list)):
        if key in res and not isinstance(res[key], kind):
            raise bad(f"{key!r} as a JSON {'object' if kind is dict else 'list'}", res[key])
    for entry in res.get("sweep") or []:
        if not isinstance(entry, dict):
            raise bad("every 'sweep' entry as a JSON object", entry)
    return res


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


def run_rows(run_dir: Path, res: Dict, label: Optional[str] = None) -> List[Dict]:
    """One row per (split, BER) of a results.json; a 'clean' result gives one row with CA only."""
    s = res.get("settings", {})
    fault = s.get("fault") or {}
    common = {"run": label or run_dir.name, "arch": s.get("arch"), "generator": s.get("generator"),
              "dataset": s.get("dataset"), "fault_model": s.get("fault_model", fault.get("model")),
              "position": fault.get("position", -1), "bits": fault.get("bits", PAPER_BITS),
              **_eopm_settings(s), "trained_on": s.get("generator_trained_on")}
    entries = res.get("sweep") or [res]
    rows = []
    for e in entries:
        perturbed = "PA_mean" in e
        n_seeds = len(e["per_seed"]) if e.get("per_seed") else (len(s.get("seeds", [])) if perturbed else 0)
        rows.append({**common, **{k: e.get(k) for k in ("CA", "PA_mean", "PA_std", "CA_NF", "PA_NF_mean",
                                                         "PA_NF_std", "RP")},
                     "ber": e.get("ber", s.get("ber")) if perturbed else None,
                     "split": e.get("split", "test"), "n_seeds": n_seeds or None,
                     "n_images": e.get("n_images", s.get("n_images"))})
    return rows


def paper_row(row: Dict) -> Optional[Dict]:
    """The paper's numbers for `row`'s setting, shaped like a row, or None when it reports none."""
    if row["split"] != "test" or row["position"] not in (-1, None) or row["bits"] != PAPER_BITS:
        return None
    if row["trained_on"] and row["trained_on"] != f"{row['arch']}/{row['dataset']}":
        return None                     # a transferred generator: the paper's tables here don't cover it
    p = paper_numbers(row["arch"], row["dataset"], row["generator"], row["ber"],
                      row["fault_model"] or PAPER_FAULT_MODEL, row["lam"])
    if p is None:
        return None
    return {**row, **{k: p.get(k) for k in ("CA", "PA_mean", "PA_std", "CA_NF", "PA_NF_mean", "PA_NF_std",
                                             "RP")},
            "run": PAPER_LABEL, "fault_model": PAPER_FAULT_MODEL if row["ber"] is not None else None,
            "n_seeds": PAPER_SEEDS if row["ber"] is not None else None, "n_images": "full",
            "es_twma": p.get("ES"), "es_mac": None}


def row_energy_saving(row: Dict, cache: Dict) -> Tuple[Optional[float], Optional[float]]:
    """(ES from TWMA, ES from MACs) in % that eval.energy gives `row`'s setting, or (None, None) where it
    has no answer (no generator, a clean row, or a name / BER outside its registries and range)."""
    if row["generator"] is None or row["ber"] is None:
        return None, None
    key = (row["arch"], row["generator"], row["dataset"], row["ber"])
    if key not in cache:
        from eval.energy import energy_rows
        try:
            found = energy_rows(row["arch"], [row["generator"]], dataset=row["dataset"], ber=row["ber"])[0]
            cache[key] = (found["es_twma"], found["es_mac"])
        except (UnknownName, ValueError):   # a name no registry knows, or a BER outside (0, 1): show "–"
            cache[key] = (None, None)
    return cache[key]


def _num(v, fmt: str = "{:.1f}") -> str:
    return fmt.format(v) if isinstance(v, (int, float)) and math.isfinite(v) else DASH


def _mean_std(mean, std) -> str:
    if not isinstance(mean, (int, float)):
        return DASH
    return _num(mean) + (f" ± {std:.1f}" if isinstance(std, (int, float)) else "")


def format_row(row: Dict, energy: bool) -> List[str]:
    ber = row["ber"]
    cells = [row["run"], row["arch"] or DASH, row["generator"] or DASH, row["dataset"] or DASH,
             row["fault_model"] if ber is not None and row["fault_model"] else DASH,
             f"{ber * 100:g}%" if ber is not None else DASH,
             _num(row.get("lam"), "{:g}") if row["generator"] else DASH,
             str(row.get("n_models") or DASH) if row["generator"] else DASH, row["split"],
             _num(row["CA"]), _mean_std(row["PA_mean"], row["PA_std"]), _num(row["CA_NF"]),
             _mean_std(row["PA_NF_mean"], row["PA_NF_std"]), _num(row["RP"], "{:+.1f}"),
             str(row["n_seeds"] or DASH), str(row["n_images"] or DASH)]
    if energy:
        cells += [_num(row.get("es_twma")), _num(row.get("es_mac"))]
    return cells


def markdown_table(rows: List[Dict], energy: bool) -> str:
    header = ["run", "base model", "generator", "dataset", "fault model", "BER", "λ", "N", "split", "CA", "PA",
              "CA(NF)", "PA(NF)", "RP", "seeds", "test images"] + (["ES (%)", "ES MAC (%)"] if energy else [])
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(format_row(r, energy)) + " |" for r in rows]
    return "\n".join(lines)


def build_report(run_dirs: Sequence[str], energy: bool = True) -> str:
    """The markdown report (table + one note line) for the given run folders."""
    rows: List[Dict] = []
    cache: Dict = {}
    runs = find_runs(run_dirs)
    for run_dir, label in runs:
        for row in run_rows(run_dir, load_results(run_dir), label):
            if energy:
                row["es_twma"], row["es_mac"] = row_energy_saving(row, cache)
            rows.append(row)
            paper = paper_row(row)
            if paper is not None:
                rows.append(paper)
    found = f"{len(runs)} run{'s' * (len(runs) != 1)} (results.json) found under {', '.join(run_dirs)}."
    notes = [found, NOTE] + [ENERGY_NOTE] * energy + [PAPER_NOTE] * any(r["run"] == PAPER_LABEL for r in rows)
    return markdown_table(rows, energy) + "\n\n" + " ".join(notes) + "\n"


def _run(args: argparse.Namespace) -> int:
    check_out("--out", args.out)
    check_out("--html", args.html)
    text = build_report(args.run_dirs, args.energy)
    print(text, end="")
    if args.out:
        from common.ckpt import atomic_write
        with _writing("--out", args.out):
            atomic_write(args.out, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
        print(f"report written to {args.out}", file=sys.stderr)
    if args.html:
        from eval.html_report import write_html
        with _writing("--html", args.html):
            page = write_html(args.html, text, [run for run, _ in find_runs(args.run_dirs)])
        print(f"HTML report written to {page}", file=sys.stderr)
    return 0


def main(argv: Sequence[str]) -> int:
    return run_subcommand(build_parser(), argv, _run, {ReportError: EXIT_USAGE})

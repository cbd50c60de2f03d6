"""`report --compare`: NeuralFuse beside the baselines of docs/DESIGN.md §15, one table per base model and BER.

From the runs' results.json (eval/report.py finds them) every test-split entry with bit errors is one
measurement. A group is (base model, dataset, fault model, bit position, bits, BER) for each BER some
generator was trained at (read from the run: the EOPM run's fault settings, or the args.json beside
--G-path). Its rows:

- unprotected: the base model alone (CA, PA);
- each generator G: CA(NF), PA(NF) (UIP, the input-independent baseline, after the NeuralFuse ones);
- fault-aware training (settings.base_training, else the args.json beside -cp; absent = plain QAT) and
  fault-aware + G; SECDED (settings.fault.ecc) and G + SECDED;
- iso-energy (G): the unprotected model at the milder voltage whose saving equals G's net saving
  (eval/iso_energy.py), its PA read from an evaluation at a BER within ISO_MATCH of the iso BER, else
  interpolated linearly between the measured BERs around it (marked †), else "needs --eval-bers X".

Columns: CA, PA ± std (over the row's fault seeds), ES (Eq. 6), ER, whether the classifier was retrained.
"◀ beats NF" marks a baseline row whose mean PA exceeds the group's best NeuralFuse PA(NF) (an iso row
that only beats its own generator says so). Rendered as markdown and as an HTML section from the same rows.

Example:
    python zs_main.py report checkpoints/grid_baselines checkpoints/grid_baselines_secded --compare --out cmp.md
"""
from __future__ import annotations

import html
import math
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from common.registry import UnknownName
from eval.energy import ECC_OVERHEAD, access_saving, energy_rows, operating_point
from eval.iso_energy import iso_energy_ber, max_iso_saving, rounded_ber
from eval.paper import PAPER_BITS
from eval.protection import NO_ECC, PLAIN, base_training, ecc_code, generator_train_ber
from eval.report import DASH, Run, efficiency_ratio

ECC_OVERHEADS = {NO_ECC: 0.0, "secded": ECC_OVERHEAD}   # --ecc code -> extra cells read per access
ISO_MATCH = 0.05          # a measured BER within 5% (relative) of the iso BER counts as measured there
BEATS_NF = "◀ beats NF"
INTERPOLATED = "†"
NOTE = ("CA and PA of a generator row are CA(NF) and PA(NF); accuracies in %, mean ± population std over the "
        "row's fault seeds. ES = SRAM energy saving, Eq. 6 (weight-memory accesses); ER = RP per million "
        "generator parameters. iso-energy (G): the unprotected base model at the voltage whose saving equals "
        "G's ES (eval/iso_energy.py: a voltage <-> BER model, not paper numbers); † interpolated linearly "
        "between the two measured BERs around it. ◀ beats NF: a baseline's mean PA above the best NeuralFuse "
        "PA(NF) of the group (means compared, not a significance test).")


@dataclass(frozen=True)
class Measurement:
    """One (run, BER) entry of the test split with bit errors."""
    scope: Tuple            # (arch, dataset, fault model, position, bits)
    ber: float
    checkpoint: Optional[str]
    base: str               # PLAIN or how the classifier was retrained, e.g. "fault-aware"
    ecc: str
    generator: Optional[str]
    train_ber: Optional[float]   # the BER the generator was trained at (None: unknown)
    numbers: Dict[str, Any]
    seeds: Tuple[int, ...]
    run: str


@dataclass
class Group:
    scope: Tuple
    ber: float
    rows: List[Dict] = field(default_factory=list)

    @property
    def title(self) -> str:
        arch, dataset, model, position, bits = self.scope
        extra = ([f"bit {position} only"] if position not in (-1, None) else []) + \
            ([f"{bits}-bit weights"] if bits != PAPER_BITS else [])
        return " · ".join([arch or DASH, dataset or DASH, f"{model} faults", f"BER {self.ber * 100:g}%", *extra])


def measurements(runs: Sequence[Run]) -> List[Measurement]:
    out = []
    for run in runs:
        s = run.results.settings
        fault = s.get("fault") if isinstance(s.get("fault"), dict) else {}
        scope = (s.get("arch"), s.get("dataset"), s.get("fault_model", fault.get("model")),
                 fault.get("position", -1), fault.get("bits", PAPER_BITS))
        common = dict(scope=scope, checkpoint=s.get("checkpoint"), base=base_training(s), ecc=ecc_code(s),
                      generator=s.get("generator"), train_ber=generator_train_ber(s), run=run.label)
        for e in run.results.entries:
            if e["split"] == "test" and e["ber"] is not None and "PA_mean" in e:
                seeds = tuple(r["seed"] for r in e["per_seed"]) or tuple(s.get("seeds") or ())
                out.append(Measurement(ber=float(e["ber"]), numbers=e, seeds=seeds, **common))
    return out


# ----------------------------------------------------------------------------- energy
@lru_cache(maxsize=None)
def energy_saving(arch: str, generator: Optional[str], dataset: str, ber: float, ecc: str) -> Optional[float]:
    """ES (%, Eq. 6) of a row: the generator's net saving, or the per-access saving alone without one;
    with SECDED, less its check cells. None where the energy model has no answer."""
    overhead = ECC_OVERHEADS.get(ecc)
    if overhead is None or not arch or not dataset:
        return None
    try:
        if generator is None:
            return access_saving(operating_point(ber)["saving"], overhead)
        return energy_rows(arch, [generator], dataset=dataset, ber=ber, ecc_overhead=overhead)[0]["es_twma"]
    except (UnknownName, ValueError):
        return None


# ----------------------------------------------------------------------------- rows
def _same(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9)


def _generator_order(name: str) -> Tuple:
    """NeuralFuse generators in registry order, then the input-independent ones (UIP), then unknown names."""
    from generators import generator_info, list_generators
    names = list_generators()
    if name not in names:
        return (2, 0, name)
    return (int(generator_info(name).get("family") == "perturbation"), names.index(name), name)


def is_neuralfuse(name: Optional[str]) -> bool:
    from generators import generator_info, list_generators
    return bool(name) and name in list_generators() and generator_info(name).get("family") != "perturbation"


def row_label(base: str, ecc: str, generator: Optional[str]) -> str:
    parts = [base] * (base != PLAIN) + [generator] * bool(generator) + [ecc.upper()] * (ecc != NO_ECC)
    return " + ".join(parts) or "unprotected"


def _role(base: str, ecc: str, generator: Optional[str]) -> str:
    """'nf' (NeuralFuse alone), 'combo' (NeuralFuse with another protection) or 'baseline'."""
    if generator is None or (base == PLAIN and ecc == NO_ECC and not is_neuralfuse(generator)):
        return "baseline"
    return "nf" if base == PLAIN and ecc == NO_ECC else "combo"


def measured_row(m: Measurement, group: Group) -> Dict:
    """A row of `m`: the base model's numbers, or the generator's when `m` evaluated one."""
    n, g = m.numbers, m.generator
    arch, dataset = group.scope[:2]
    return {"label": row_label(m.base, m.ecc, g), "generator": g, "role": _role(m.base, m.ecc, g),
            "ber": m.ber, "CA": n.get("CA_NF" if g else "CA"), "PA_mean": n.get("PA_NF_mean" if g else "PA_mean"),
            "PA_std": n.get("PA_NF_std" if g else "PA_std"), "seeds": m.seeds,
            "es": energy_saving(arch, g, dataset, group.ber, m.ecc),
            "er": efficiency_ratio({"generator": g, "RP": n.get("RP")}) if g else None,
            "retrained": m.base != PLAIN, "notes": [], "source": m}


def _distinct(rows: List[Dict]) -> List[Dict]:
    """Rows of one kind, once per distinct result (re-runs with equal numbers share one); when results
    differ, each row names its run."""
    kept: Dict[Tuple, Dict] = {}
    for r in rows:
        kept.setdefault((r["CA"], r["PA_mean"], r["PA_std"], r["seeds"]), r)
    out = list(kept.values())
    if len(out) > 1:
        for r in out:
            r["label"] += f" ({r['source'].run})"
    return out


def variant_rows(ms: List[Measurement], group: Group) -> List[Dict]:
    """The measured rows of a group: per (base training, ECC) the base model alone, then each generator."""
    here = [m for m in ms if m.scope == group.scope and _same(m.ber, group.ber)]
    variants = sorted({(m.base, m.ecc) for m in here}, key=lambda v: (v[1] != NO_ECC, v[1], v[0] != PLAIN, v[0]))
    rows: List[Dict] = []
    for base, ecc in variants:
        mine = [m for m in here if (m.base, m.ecc) == (base, ecc)]
        rows += _distinct([measured_row(_as_base(m), group) for m in mine])
        trained_here = [m for m in mine if m.generator and (m.train_ber is None or _same(m.train_ber, group.ber))]
        for g in sorted({m.generator for m in trained_here}, key=_generator_order):
            rows += _distinct([measured_row(m, group) for m in trained_here if m.generator == g])
    return rows


def _as_base(m: Measurement) -> Measurement:
    """`m` read for the base model alone (every evaluation measures PA without the generator too)."""
    return replace(m, generator=None, train_ber=None)


# ----------------------------------------------------------------------------- the iso-energy point
def _checkpoint_key(path: Optional[str]) -> Optional[str]:
    return str(Path(path).resolve()) if path else None


def unprotected_curve(ms: List[Measurement], scope: Tuple, checkpoint: Optional[str]) -> List[Measurement]:
    """The plain base model's measurements (no ECC) at every BER, one per BER (the most seeds), by BER."""
    want = _checkpoint_key(checkpoint)
    by_ber: Dict[float, Measurement] = {}
    for m in ms:
        if m.scope == scope and m.base == PLAIN and m.ecc == NO_ECC and \
                (want is None or _checkpoint_key(m.checkpoint) in (want, None)):
            old = by_ber.get(m.ber)
            if old is None or len(m.seeds) > len(old.seeds):
                by_ber[m.ber] = m
    return [by_ber[b] for b in sorted(by_ber)]


def pa_at(curve: List[Measurement], ber: float) -> Dict:
    """{'PA_mean', 'PA_std', 'CA', 'seeds', 'how', 'note'} of the unprotected model at `ber`: measured (a BER
    within ISO_MATCH), interpolated linearly between the nearest measured BERs below and above, or missing."""
    near = [m for m in curve if abs(m.ber - ber) <= ISO_MATCH * ber]
    if near:
        m = min(near, key=lambda m: abs(m.ber - ber))
        return {"PA_mean": m.numbers["PA_mean"], "PA_std": m.numbers.get("PA_std"), "CA": m.numbers.get("CA"),
                "seeds": m.seeds, "how": "measured", "note": f"measured at BER {m.ber:.3g}"}
    below = [m for m in curve if m.ber < ber]
    above = [m for m in curve if m.ber > ber]
    if below and above:
        lo, hi = below[-1], above[0]
        t = (ber - lo.ber) / (hi.ber - lo.ber)
        pa = lo.numbers["PA_mean"] + t * (hi.numbers["PA_mean"] - lo.numbers["PA_mean"])
        return {"PA_mean": pa, "PA_std": None, "CA": lo.numbers.get("CA"),
                "seeds": lo.seeds if lo.seeds == hi.seeds else (), "how": "interpolated",
                "note": f"{INTERPOLATED} interpolated between BER {lo.ber:.3g} and {hi.ber:.3g}"}
    return {"PA_mean": None, "PA_std": None, "CA": curve[0].numbers.get("CA") if curve else None, "seeds": (),
            "how": "needs", "note": f"needs --eval-bers {rounded_ber(ber):g}"}


def iso_row(nf: Dict, ms: List[Measurement], group: Group) -> Dict:
    """The iso-energy row of NeuralFuse row `nf` (a generator on the plain base model)."""
    g, es = nf["generator"], nf["es"]
    row = {"label": f"iso-energy ({g})", "generator": None, "role": "baseline", "iso_of": nf, "ber": None,
           "CA": None, "PA_mean": None, "PA_std": None, "seeds": (), "es": es, "er": None, "retrained": False,
           "notes": []}
    if es is None or not 0.0 <= es < max_iso_saving():
        row["notes"].append("no iso-energy point: " + ("no energy model for this setting" if es is None else
                            "ES < 0, the plain model at nominal voltage spends less" if es < 0 else
                            "ES beyond the voltage <-> BER model"))
        return row
    v, ber = iso_energy_ber(es)
    found = pa_at(unprotected_curve(ms, group.scope, nf["source"].checkpoint), ber)
    row.update(ber=ber, CA=found["CA"], PA_mean=found["PA_mean"], PA_std=found["PA_std"], seeds=found["seeds"],
               interpolated=found["how"] == "interpolated")
    row["notes"] += [f"{v:.3f} Vmin", found["note"]]
    return row


def mark(rows: List[Dict]) -> None:
    """Put BEATS_NF on each baseline row whose mean PA exceeds the best NeuralFuse PA(NF) of the group;
    an iso-energy row that beats only its own generator is marked so."""
    nf = [r["PA_mean"] for r in rows if r["role"] == "nf" and r["PA_mean"] is not None]
    best = max(nf) if nf else None
    for r in rows:
        if r["role"] != "baseline" or r["PA_mean"] is None or best is None:
            continue
        own = r.get("iso_of")
        if r["PA_mean"] > best:
            r["notes"].insert(0, BEATS_NF)
        elif own is not None and own["PA_mean"] is not None and r["PA_mean"] > own["PA_mean"]:
            r["notes"].insert(0, f"◀ beats {own['generator']} at equal energy")


def _flag_other_seeds(rows: List[Dict]) -> None:
    """Say so on rows whose fault seeds differ from the group's unprotected row (std over other seeds)."""
    ref = next((r["seeds"] for r in rows if r["label"].startswith("unprotected") and r["seeds"]), None)
    for r in rows:
        if ref is not None and r["seeds"] and r["seeds"] != ref:
            r["notes"].append(f"other fault seeds ({len(r['seeds'])})")


def group_bers(ms: List[Measurement]) -> List[Tuple[Tuple, float]]:
    """(scope, BER) of every group: the BERs generators were trained at (or evaluated at, when unknown)."""
    keys = []
    for m in ms:
        if m.generator and (m.train_ber is None or _same(m.train_ber, m.ber)):
            if not any(k[0] == m.scope and _same(k[1], m.ber) for k in keys):
                keys.append((m.scope, m.ber))
    return sorted(keys, key=lambda k: (tuple(map(str, k[0])), -k[1]))


def build_comparison(runs: Sequence[Run]) -> List[Group]:
    ms = measurements(runs)
    groups = []
    for scope, ber in group_bers(ms):
        group = Group(scope, ber)
        group.rows = variant_rows(ms, group)
        nf = {(r["generator"], _checkpoint_key(r["source"].checkpoint)): r for r in group.rows if r["role"] == "nf"}
        group.rows += [iso_row(r, ms, group) for r in nf.values()]      # one per generator and base checkpoint
        mark(group.rows)
        _flag_other_seeds(group.rows)
        groups.append(group)
    return groups


# ----------------------------------------------------------------------------- rendering
def _num(v: Any, fmt: str = "{:.1f}") -> str:
    return fmt.format(v) if isinstance(v, (int, float)) and math.isfinite(v) else DASH


def _pa(r: Dict) -> str:
    if r["PA_mean"] is None:
        return DASH
    std = f" ± {r['PA_std']:.1f}" if isinstance(r["PA_std"], (int, float)) else ""
    return _num(r["PA_mean"]) + std + (f" {INTERPOLATED}" if r.get("interpolated") else "")


COLUMNS: List[Tuple[str, Callable[[Dict], str]]] = [
    ("row", lambda r: r["label"]),
    ("BER", lambda r: f"{r['ber'] * 100:.3g}%" if r["ber"] is not None else DASH),
    ("CA", lambda r: _num(r["CA"])),
    ("PA", _pa),
    ("ES (%)", lambda r: _num(r["es"])),
    ("ER", lambda r: _num(r["er"])),
    ("retrained", lambda r: "yes" if r["retrained"] else "no"),
    ("seeds", lambda r: str(len(r["seeds"])) if r["seeds"] else DASH),
    ("note", lambda r: "; ".join(r["notes"])),
]
EMPTY = ("No comparison: no result evaluates a generator at the BER it was trained at (transform_eopm_gen, or "
         "transform_eval with --testing-mode generator_base).")


def markdown(groups: List[Group]) -> str:
    """One markdown table per group under a '###' heading, then the note."""
    out = ["## Comparison: NeuralFuse and the baselines", ""]
    if not groups:
        return "\n".join(out + [EMPTY, ""])
    for g in groups:
        out += [f"### {g.title}", "", "| " + " | ".join(h for h, _ in COLUMNS) + " |",
                "|" + "|".join("---" for _ in COLUMNS) + "|"]
        out += ["| " + " | ".join(cell(r) for _, cell in COLUMNS) + " |" for r in g.rows]
        out.append("")
    return "\n".join(out + [NOTE, ""])


def html_section(groups: List[Group]) -> str:
    """The same tables as one HTML section, 'Comparison'; rows with a marker in bold."""
    parts = ['<section id="comparison"><h2>Comparison</h2>']
    if not groups:
        parts.append(f'<p class="note">{html.escape(EMPTY)}</p>')
    for g in groups:
        parts.append(f"<h3>{html.escape(g.title)}</h3><table><thead><tr>"
                     + "".join(f"<th>{html.escape(h)}</th>" for h, _ in COLUMNS) + "</tr></thead><tbody>")
        for r in g.rows:
            bold = ' style="font-weight:bold"' if any(n.startswith("◀") for n in r["notes"]) else ""
            parts.append(f"<tr{bold}>" + "".join(f"<td>{html.escape(cell(r))}</td>" for _, cell in COLUMNS)
                         + "</tr>")
        parts.append("</tbody></table>")
    parts.append(f'<p class="note">{html.escape(NOTE)}</p></section>')
    return "\n".join(parts)

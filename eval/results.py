"""The results schema (docs/DESIGN.md §8) in one place: what `transform_eval` writes and what every reader reads.

A run's `results.json` holds the first (split, BER) entry's numbers at the top level, every entry under
'sweep', and 'settings'; `per_seed.csv` and `summary.csv` repeat the same numbers as tables. Writers:
`write_results` (and the text table `format_results` / `results_row` printed under `TABLE_HEAD`).
Reader: `read_results`, tolerant of older files (no 'sweep', no 'split', a 'clean' result with CA only)
and strict about types: a value of the wrong type is one ResultsError line naming the file and the key.

Example:
    res = read_results("checkpoints/resnet18_cifar10_ConvL_ber0.01_official")
    print(format_results(res.entries[0], "resnet18 + ConvL"), res.settings["arch"])
"""
from __future__ import annotations

import csv
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Sequence, Tuple

from common.ckpt import atomic_write
from common.runs import write_json

RESULT_KEYS = ("CA", "PA_mean", "PA_std", "CA_NF", "PA_NF_mean", "PA_NF_std", "RP")
RESULTS_JSON = "results.json"
TABLE_HEAD = f"{'':<28} {'CA':>6} {'PA':>14} {'CA(NF)':>7} {'PA(NF)':>14} {'RP':>7}"
PER_SEED_CSV = "per_seed.csv"     # one row per (split, BER, fault seed): PA and PA(NF) of that seed
SUMMARY_CSV = "summary.csv"       # one row per (split, BER): CA, PA mean/std, CA(NF), PA(NF) mean/std, RP

# JSON types each known key may hold (None = null allowed); keys not listed are kept unchecked.
NUM, INT, STR, LIST, DICT, NULL = "number", "integer", "string", "list", "object", "null"
ENTRY_TYPES: Dict[str, Tuple[str, ...]] = {**{k: (NUM,) for k in RESULT_KEYS}, "per_seed": (LIST,),
                                           "ber": (NUM, NULL), "split": (STR,), "n_images": (INT, NULL),
                                           "ecc_words": (DICT,)}
SEED_TYPES: Dict[str, Tuple[str, ...]] = {"seed": (INT,), "PA": (NUM,), "PA_NF": (NUM,), "ecc_words": (DICT,)}
# --ecc: 72-bit code words of the base model (summed over the entry's seeds, or one seed's), as decoded
ECC_WORD_TYPES: Dict[str, Tuple[str, ...]] = {k: (INT,) for k in ("words", "wrong_before", "wrong_after",
                                                                   "corrected")}
SETTINGS_TYPES: Dict[str, Tuple[str, ...]] = {
    **{k: (STR, NULL) for k in ("arch", "dataset", "generator", "fault_model", "g_path", "generator_trained_on",
                                "testing_mode", "checkpoint")},
    **{k: (NUM, NULL) for k in ("ber", "lam")},
    **{k: (INT, NULL) for k in ("n_models", "epochs", "test_limit", "n_images")},
    "seeds": (LIST,), "fault": (DICT, NULL), "surrogates": (LIST,), "surrogate_archs": (LIST,),
    "base_training": (STR, DICT, NULL)}     # "qat", {"fault_aware", "fault", "clip"}, or None (unknown)
FAULT_TYPES: Dict[str, Tuple[str, ...]] = {"model": (STR,), "ber": (NUM, NULL), "position": (INT, NULL),
                                           "bits": (INT, NULL), "ecc": (STR,)}


def trained_on(arch: str, dataset: str, surrogate_archs: Sequence[str] = ()) -> str:
    """'arch/dataset' of the model a generator was trained on; with --surrogate models (Table 21) every
    architecture joined by '+', the -cp one first: 'vgg11+resnet18/cifar10'."""
    return f"{'+'.join([arch, *surrogate_archs])}/{dataset}"


class ResultsError(ValueError):
    """A results.json that is unreadable or holds a value of the wrong type: one line naming file and key."""


@dataclass(frozen=True)
class Results:
    """One results.json as read: its settings and one entry per (split, BER), each with 'split', 'ber' and
    'n_images' filled in (a 'clean' result: one entry with CA only and ber None)."""
    path: Path
    settings: Dict[str, Any]
    entries: List[Dict[str, Any]]


def _is(value: Any, kind: str) -> bool:
    if kind == NULL:
        return value is None
    if isinstance(value, bool):                  # JSON true/false: never a number
        return False
    return isinstance(value, {NUM: (int, float), INT: int, STR: str, LIST: list, DICT: dict}[kind])


def _check(path: Path, where: str, obj: Any, types: Dict[str, Tuple[str, ...]]) -> Dict:
    if not isinstance(obj, dict):
        raise ResultsError(f"{path}: {where or 'the file'} is a JSON {type(obj).__name__}, expected an object; "
                           f"not a results file of this code")
    for key, kinds in types.items():
        if key in obj and not any(_is(obj[key], k) for k in kinds):
            raise ResultsError(f"{path}: {where}{'.' * bool(where)}{key} is {json.dumps(obj[key])[:40]} "
                               f"({type(obj[key]).__name__}); expected {' or '.join(kinds)}")
    return obj


def read_results(run_dir: os.PathLike) -> Results:
    """The results.json in `run_dir` (or the file itself), type-checked and with older layouts filled in."""
    path = Path(run_dir)
    path = path / RESULTS_JSON if path.is_dir() else path
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:        # ValueError covers bad JSON and bytes that are not UTF-8
        raise ResultsError(f"{path} is unreadable: {type(e).__name__}: {e}".splitlines()[0]) from None
    _check(path, "", raw, {**ENTRY_TYPES, "settings": (DICT,), "sweep": (LIST,)})
    settings = _check(path, "settings", raw.get("settings", {}), SETTINGS_TYPES)
    if settings.get("fault") is not None:
        _check(path, "settings.fault", settings["fault"], FAULT_TYPES)
    sweep = raw.get("sweep") or [{k: v for k, v in raw.items() if k not in ("settings", "sweep")}]
    entries = []
    for i, entry in enumerate(sweep):
        where = f"sweep[{i}]" if raw.get("sweep") else ""
        entry = dict(_check(path, where, entry, ENTRY_TYPES))
        dot = "." * bool(where)
        if "ecc_words" in entry:
            _check(path, f"{where}{dot}ecc_words", entry["ecc_words"], ECC_WORD_TYPES)
        for j, seed in enumerate(entry.get("per_seed", [])):
            _check(path, f"{where}{dot}per_seed[{j}]", seed, SEED_TYPES)
            if "ecc_words" in seed:
                _check(path, f"{where}{dot}per_seed[{j}].ecc_words", seed["ecc_words"], ECC_WORD_TYPES)
        perturbed = "PA_mean" in entry
        entry.setdefault("split", "test")
        entry.setdefault("ber", settings.get("ber") if perturbed else None)
        entry.setdefault("n_images", settings.get("n_images"))
        entry.setdefault("per_seed", [])
        entries.append(entry)
    return Results(path, settings, entries)


def results_row(res: Dict, label: str) -> str:
    """One text-table row (under TABLE_HEAD) of a results entry; '-' where not measured."""
    pa = f"{res['PA_mean']:7.2f} ± {res['PA_std']:4.1f}" if "PA_mean" in res else f"{'-':>14}"
    nf = (f"{res['CA_NF']:7.2f} {res['PA_NF_mean']:7.2f} ± {res['PA_NF_std']:4.1f} {res['RP']:+7.2f}"
          if "CA_NF" in res else f"{'-':>7} {'-':>14} {'-':>7}")
    return f"{label:<28} {res['CA']:6.2f} {pa} {nf}"


def format_results(res: Dict, label: str) -> str:
    """A two-line text table (header + `label` row) of one results entry."""
    return TABLE_HEAD + "\n" + results_row(res, label)


def write_results(run_dir: Path, results: List[Dict], settings: Dict) -> Dict:
    """results.json (first entry at top level, every (split, BER) under 'sweep'), per_seed.csv, summary.csv."""
    main = {**{k: results[0][k] for k in (*RESULT_KEYS, "ecc_words") if k in results[0]},
            "per_seed": results[0]["per_seed"], "settings": settings, "sweep": results}
    write_json(run_dir / RESULTS_JSON, main)
    write_csv(run_dir / PER_SEED_CSV, ["split", "ber", "seed", "PA", "PA_NF"],
              [[r.get("split"), r.get("ber"), s["seed"], f"{s['PA']:.4f}", f"{s.get('PA_NF', float('nan')):.4f}"]
               for r in results for s in r["per_seed"]])
    write_csv(run_dir / SUMMARY_CSV, ["split", "ber", *RESULT_KEYS],
              [[r.get("split"), r.get("ber"), *(f"{r[k]:.4f}" if k in r else "" for k in RESULT_KEYS)]
               for r in results])
    return main


def write_csv(path: Path, header: List[str], rows: List[List]) -> None:
    """A CSV file, written atomically like every other result file."""
    buf = io.StringIO()
    csv.writer(buf).writerows([header, *rows])
    atomic_write(path, lambda tmp: Path(tmp).write_text(buf.getvalue(), newline=""))

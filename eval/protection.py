"""How a result's base model was protected, read from its results.json settings (for eval/compare.py).

Each reader tolerates results written before (or without) the key it reads: the base model's training
(`settings.base_training`, else the train settings in the args.json beside -cp; absent = plain QAT), the
weight memory's error correction (`settings.fault.ecc`; absent = none), and the BER the evaluated generator
was trained at (an EOPM run's own fault BER, else the args.json beside --G-path; unknown = None).

Example:
    base_training({"base_training": "fault-aware"})     # 'fault-aware'
    ecc_code({"fault": {"model": "flip"}})               # 'none'
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, Optional

PLAIN, NO_ECC = "plain", "none"


def _args_beside(path: Optional[str]) -> Dict:
    """The args.json of the run that wrote checkpoint `path` ({} when there is none or it is unreadable)."""
    if not path:
        return {}
    try:
        args = json.loads((Path(path).parent / "args.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return args if isinstance(args, dict) else {}


def _training_label(spec: Any) -> str:
    """A base_training value (a string, a flag, or a dict of train settings) as a row label."""
    if isinstance(spec, str):
        return PLAIN if spec.strip().lower() in ("", "plain", "qat", "plain qat", "none") else spec.strip()
    if isinstance(spec, bool):
        return "fault-aware" if spec else PLAIN
    if isinstance(spec, dict):
        parts = ["fault-aware"] * bool(spec.get("fault_aware")) + \
            ([f"clip ±{spec['clip_weights']:g}"] if isinstance(spec.get("clip_weights"), (int, float))
             and not isinstance(spec.get("clip_weights"), bool) else [])
        return ", ".join(parts) or (_training_label(spec["kind"]) if isinstance(spec.get("kind"), str) else PLAIN)
    return PLAIN


def base_suffix(base: str) -> str:
    """' (fault-aware)' after a base model's name when it was not trained by plain QAT, else ''."""
    return "" if base == PLAIN else f" ({base})"


def ecc_suffix(ecc: str, before: str = " ") -> str:
    """' + SECDED' after a fault model's name when the weight memory corrects errors, else '' (`before`:
    what separates it from the name, e.g. a line break in a figure's label)."""
    return "" if ecc == NO_ECC else f"{before}+ {ecc.upper()}"


def base_training(settings: Dict) -> str:
    """How the base model was trained: settings.base_training when present, else the train settings in
    the args.json beside the checkpoint, else plain QAT."""
    if "base_training" in settings:
        return _training_label(settings["base_training"])
    return _training_label(_args_beside(settings.get("checkpoint")).get("train") or {})


def ecc_code(settings: Dict) -> str:
    """The weight memory's error correction ('none', 'secded'): settings.fault.ecc, else 'none'."""
    fault = settings.get("fault") if isinstance(settings.get("fault"), dict) else {}
    code = fault.get("ecc", settings.get("ecc"))
    return code.lower() if isinstance(code, str) and code else NO_ECC


def generator_train_ber(settings: Dict) -> Optional[float]:
    """The BER the evaluated generator was trained at: an EOPM run's own fault BER, else the fault BER in
    the args.json beside its checkpoint (--G-path), else None."""
    if not settings.get("generator"):
        return None
    fault = settings.get("fault") if isinstance(settings.get("fault"), dict) else {}
    if settings.get("epochs") is not None and isinstance(fault.get("ber"), (int, float)):
        return float(fault["ber"])                     # written by transform_eopm_gen: its training faults
    fault = _args_beside(settings.get("g_path")).get("fault")
    ber = fault.get("ber") if isinstance(fault, dict) else None
    return float(ber) if isinstance(ber, (int, float)) and not isinstance(ber, bool) else None

"""argparse types shared by the entry points: each turns a bad value into a one-line message naming the
value and what is accepted.

Example:
    p.add_argument("-ber", type=bit_error_rate)        # "-ber 1.5" -> "1.5 is outside (0, 1); ..."
    p.add_argument("--seed", type=seed_in(2 ** 32 - 1))
"""
from __future__ import annotations

import argparse
import math
from typing import Callable, Tuple


def _number(text: str, kind: type, what: str):
    try:
        return kind(text)
    except ValueError:
        noun = "an integer" if kind is int else "a number"
        raise argparse.ArgumentTypeError(f"{text!r} is not {noun}; give {what}") from None


def bit_error_rate(text: str) -> float:
    """A bit error rate in (0, 1)."""
    v = _number(text, float, "a bit error rate in (0, 1)")
    if not 0.0 < v < 1.0:
        raise argparse.ArgumentTypeError(f"{text} is outside (0, 1); give a bit error rate such as 0.01")
    return v


def ber_list(text: str) -> Tuple[float, ...]:
    """Comma-separated bit error rates in [0, 1); 0 gives a row without faults."""
    bers = tuple(_number(t, float, "bit error rates in [0, 1), e.g. 0,0.01,0.005") for t in text.split(",")
                 if t.strip())
    bad = [b for b in bers if not 0.0 <= b < 1.0]
    if bad or not bers:
        raise argparse.ArgumentTypeError(f"{text!r}: give bit error rates in [0, 1) separated by commas, "
                                         f"e.g. 0,0.01,0.005")
    return bers


def positive(text: str) -> int:
    """An integer >= 1."""
    v = _number(text, int, "a positive integer")
    if v < 1:
        raise argparse.ArgumentTypeError(f"{text} must be a positive integer")
    return v


def real(low: float, low_ok: bool, what: str) -> Callable[[str], float]:
    """A finite float above `low` (or equal to it when `low_ok`); `what` names what is accepted."""
    def parse(text: str) -> float:
        v = _number(text, float, what)
        if not math.isfinite(v) or v < low or (v == low and not low_ok):
            raise argparse.ArgumentTypeError(f"{text} is not allowed; give {what}")
        return v
    return parse


def seed_in(high: int) -> Callable[[str], int]:
    """A seed in 0..high."""
    def parse(text: str) -> int:
        v = _number(text, int, f"a seed in 0..{high}")
        if not 0 <= v <= high:
            raise argparse.ArgumentTypeError(f"{text} is outside 0..{high}; give a non-negative seed")
        return v
    return parse


def seeds(text: str) -> Tuple[int, ...]:
    """'50000:50010' (end exclusive) or '1,2,3'."""
    try:
        if ":" in text:
            lo, hi = (int(t) for t in text.split(":"))
            out = tuple(range(lo, hi))
        else:
            out = tuple(int(t) for t in text.split(",") if t.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give seeds as START:END (end exclusive) or a comma list") \
            from None
    if not out or min(out) < 0:
        raise argparse.ArgumentTypeError(f"{text!r}: need at least one non-negative seed")
    return out

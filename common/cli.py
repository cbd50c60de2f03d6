"""Command-line plumbing shared by every entry point: the one-line-error parser and dataclass-backed
arguments (an option's default and help text are read from a config field, so each is written once).

Example:
    p = OneLineParser(prog="zs_main.py")
    p.add_argument("-E", type=int, **from_field(TrainConfig, "epochs"))    # default 300, help "epochs (default 300)"
"""
from __future__ import annotations

import argparse
import dataclasses
from typing import Any, Dict, Optional, Sequence, Union


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports a usage error as one line and exit code 2, without the usage dump."""

    def error(self, message: str) -> None:
        self.exit(2, f"{self.prog}: error: {message}\n")

    def parse_or_exit_code(self, argv: Sequence[str]) -> Union[argparse.Namespace, int]:
        """The parsed arguments, or the exit code argparse chose (-h: 0; a usage error, already
        printed as one line: 2) for entry points that return their code instead of exiting."""
        try:
            return self.parse_args(list(argv))
        except SystemExit as e:
            return int(e.code or 0)


def bit_error_rate(text: str) -> float:
    """argparse type: a bit error rate in (0, 1)."""
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number; give a bit error rate in (0, 1)")
    if not 0.0 < v < 1.0:
        raise argparse.ArgumentTypeError(f"{text} is outside (0, 1); give a bit error rate such as 0.01")
    return v


def field_default(cls: type, name: str) -> Any:
    """The default of dataclass field `name` of `cls` (raises KeyError for an unknown field)."""
    f = {f.name: f for f in dataclasses.fields(cls)}[name]
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    raise ValueError(f"{cls.__name__}.{name} has no default")


def from_field(cls: type, name: str, show: Optional[str] = None, default: bool = True) -> Dict[str, Any]:
    """argparse keywords {default, help} from a dataclass field: its `help` metadata and its default.

    `show` replaces how the default is printed; `default=False` leaves argparse's default at None (for
    options that override a value decided elsewhere) while still naming the field's default in the help.
    """
    f = {f.name: f for f in dataclasses.fields(cls)}[name]
    value = field_default(cls, name)
    text = f.metadata.get("help", "")
    if isinstance(value, bool):
        shown = "on" if value else "off"
    else:
        shown = show if show is not None else ("none" if value is None else f"{value:g}"
                                                 if isinstance(value, float) else str(value))
    out: Dict[str, Any] = {"help": f"{text} (default {shown})" if text else f"default {shown}"}
    if default:
        out["default"] = value
    return out

"""Command-line plumbing shared by every entry point: the one-line-error parser, the one table of settings
(`opt` fields carry their flag, help, resume policy and folder-name spelling) and the subcommand skeleton.

A setting is written once, as a dataclass field: `zs_main.py` adds its option from the field (`option`),
`train/resume.py` reads which settings a resumed run may change, and `config.Configs` names default run
folders after the settings that differ from their defaults.

Example:
    lr: float = opt(1e-3, "learning rate", flag="-LR")          # in a frozen config dataclass
    option(group, TrainConfig, "lr", type=real(0.0, False, "a learning rate > 0"))   # -LR LR ... (default 0.001)
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
from typing import Any, Callable, Dict, Mapping, Optional, Sequence, Tuple, Type, Union

MUST_MATCH = "must_match"   # resume refuses to change it; the default folder name carries it when not default
MAY_CHANGE = "may_change"   # resume allows changing it (it does not change the weights a run ends with)
IGNORED = "ignored"         # bookkeeping (-rt, -F, where a value came from): never compared, never named
EXIT_USAGE = 2              # a user mistake, reported as one line
EXIT_INTERRUPTED = 130      # Ctrl-C


def opt(default: Any = dataclasses.MISSING, help: str = "", *, flag: Optional[str] = None,
        on_resume: str = MUST_MATCH, show: Optional[str] = None, folder: Optional[str] = None, **kw: Any) -> Any:
    """A config field that is also a setting: its default and help text (the command line reuses them),
    `flag` (how the user spells it: "-LR", "--seed", or "ARCH" for a positional), `on_resume` (MUST_MATCH,
    MAY_CHANGE or IGNORED), `show` (how the help prints the default) and `folder` (a format string for
    the default folder name, e.g. "lam{}"; default: the flag's word followed by the value)."""
    if isinstance(default, (list, dict, set)):
        raise TypeError("mutable defaults are not allowed in frozen configs")
    if on_resume not in (MUST_MATCH, MAY_CHANGE, IGNORED):
        raise ValueError(f"on_resume must be {MUST_MATCH}, {MAY_CHANGE} or {IGNORED}, not {on_resume!r}")
    meta = {"help": help, "flag": flag, "on_resume": on_resume, "show": show, "folder": folder}
    return dataclasses.field(default=default, metadata=meta, **kw)


def on_resume(f: dataclasses.Field) -> str:
    """A field's resume policy; a field without `opt` metadata (edited in config.py only) must match."""
    return f.metadata.get("on_resume", MUST_MATCH)


def flag_of(f: dataclasses.Field) -> Optional[str]:
    return f.metadata.get("flag")


def dest_of(f: dataclasses.Field) -> str:
    """The argparse attribute of a field's option: named after the flag, so fields that share one (-E
    sets train.epochs and eopm.epochs) read the same value."""
    flag = flag_of(f)
    return flag.lstrip("-").replace("-", "_") if flag and flag.startswith("-") else f.name


def show_value(value: Any) -> str:
    """A setting's value as the user types it: 0.001, on/off, none, 1,2,3."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if value is None or value == ():
        return "none"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (tuple, list)):
        return ",".join(show_value(v) for v in value)
    return str(value)


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports a usage error as one line and exit code 2, without the usage dump."""

    def error(self, message: str) -> None:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")

    def parse_or_exit_code(self, argv: Sequence[str]) -> Union[argparse.Namespace, int]:
        """The parsed arguments, or the exit code argparse chose (-h: 0; a usage error, already
        printed as one line: 2) for entry points that return their code instead of exiting."""
        try:
            return self.parse_args(list(argv))
        except SystemExit as e:
            return int(e.code or 0)


def run_subcommand(parser: OneLineParser, argv: Sequence[str], body: Callable[[argparse.Namespace], int],
                   errors: Mapping[Union[Type[BaseException], Tuple[Type[BaseException], ...]], int]) -> int:
    """The skeleton of every command: parse (a usage error is one line, exit 2), run `body`, and turn
    each expected exception into one line `PROG: error: ...` and its exit code (`errors`); Ctrl-C
    that `body` does not explain itself is one line and exit code 130."""
    args = parser.parse_or_exit_code(argv)
    if isinstance(args, int):
        return args
    try:
        return body(args) or 0
    except tuple(t for types in errors for t in (types if isinstance(types, tuple) else (types,))) as e:
        print(f"{parser.prog}: error: {e}", file=sys.stderr)
        return next(code for types, code in errors.items() if isinstance(e, types))
    except KeyboardInterrupt:
        print(f"\n{parser.prog}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def field_of(cls: type, name: str) -> dataclasses.Field:
    """Field `name` of dataclass `cls` (KeyError for an unknown field)."""
    return {f.name: f for f in dataclasses.fields(cls)}[name]


def field_default(cls: type, name: str) -> Any:
    """The default of dataclass field `name` of `cls` (raises KeyError for an unknown field)."""
    f = field_of(cls, name)
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    raise ValueError(f"{cls.__name__}.{name} has no default")


def from_field(cls: type, name: str, show: Optional[str] = None, default: bool = True,
               text: Optional[str] = None) -> Dict[str, Any]:
    """argparse keywords {default, help} from a dataclass field: its `help` metadata and its default.

    `show` replaces how the default is printed (else the field's `show` metadata, else the value);
    `default=False` leaves argparse's default at None (for options that override a value decided
    elsewhere) while still naming the field's default in the help; `text` replaces the help text.
    """
    f = field_of(cls, name)
    value = field_default(cls, name)
    shown = show or f.metadata.get("show") or show_value(value)
    text = f.metadata.get("help", "") if text is None else text
    out: Dict[str, Any] = {"help": f"{text} (default {shown})" if text else f"default {shown}"}
    if default:
        out["default"] = value
    return out


def option(group: Any, cls: type, name: str, **kw: Any) -> argparse.Action:
    """Add the option of setting `cls.name` to a parser or group: spelling, default and help come from
    the field; `kw` adds argparse keywords (type, choices, metavar) or replaces them. A boolean that is
    off by default is a switch (-rt); one that is on gets --X / --no-X."""
    f = field_of(cls, name)
    flag = flag_of(f)
    if flag is None:
        raise ValueError(f"{cls.__name__}.{name} has no flag")
    if not flag.startswith("-"):                                  # a positional: ARCH, MODE, DATASET
        return group.add_argument(name, metavar=flag, **{"help": f.metadata.get("help", ""), **kw})
    keywords = {"dest": dest_of(f), **from_field(cls, name, text=kw.pop("help", None))}
    if isinstance(keywords["default"], bool) and "action" not in kw:
        keywords["action"] = argparse.BooleanOptionalAction if keywords["default"] else "store_true"
    keywords.update(kw)
    return group.add_argument(flag, **keywords)


def values_from(cls: type, args: argparse.Namespace, **fixed: Any) -> Dict[str, Any]:
    """Keyword arguments for `cls` from parsed options: every field that has an option in `args`,
    then `fixed` (values decided elsewhere, e.g. resolved fault maps)."""
    got = {f.name: getattr(args, dest_of(f)) for f in dataclasses.fields(cls)
           if flag_of(f) and hasattr(args, dest_of(f))}
    return {**got, **fixed}


def one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """`warnings.showwarning` for the command line: a user-facing warning as one line."""
    print(f"zs_main.py: warning: {message}", file=file or sys.stderr)

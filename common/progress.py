"""Progress bars that read well both live and in a log file (docs/DESIGN.md §9).

On a terminal a bar is an ordinary tqdm bar, redrawn in place. In a log file (nohup, sbatch, `| tee`)
tqdm would still redraw in place: one physical line holding hundreds of `\\r`-separated updates, which
`less`, `grep` and `tail -f` show as one unreadable line. There a bar is instead `LogBar`: one plain,
newline-terminated line when it starts, every 5% of a bar of known length and at its end (21 lines
for a full bar), each with the rate and the time left; for a bar of unknown length, a line a minute.

Example:
    for x, y in progress(loader, "epoch 1/3", is_main=dist_info.is_main):
        ...
    # in a log:  epoch 1/3:  35% 137/391 [00:41<01:16, 3.32it/s, loss=1.23]
"""
from __future__ import annotations

import os
import sys
import time
from typing import Any, Dict, Iterable, Optional, TextIO

LOG_LINES = 20          # lines per bar of known length in a log file, besides its first: one every 5%
LOG_EVERY_S = 60.0      # seconds between lines of a bar of unknown length in a log file
LIVE_PACE = {"mininterval": 0.5, "maxinterval": 60}   # seconds between redraws of a live bar


def progress(iterable: Optional[Iterable], desc: str, in_logs: bool = True, is_main: Optional[bool] = None,
             file: Optional[TextIO] = None, **kwargs):
    """A bar over `iterable` (or, with iterable None, one driven by `update(n)` up to `total=`).

    Live (tqdm) when `file` (default: sys.stderr at call time) is a terminal, else a LogBar; silent in a
    log when `in_logs` is False (short inner loops such as one evaluation pass). Under torchrun only rank 0
    draws bars: `is_main` is DistInfo.is_main; callers that hold no DistInfo (evaluation passes, dataset
    decoding) leave it None and the RANK variable torchrun sets decides, so that each of N ranks does not
    print its own copy. Other keyword arguments (total, unit) go to tqdm / LogBar."""
    file = sys.stderr if file is None else file
    if is_main is None:
        is_main = os.environ.get("RANK", "0") == "0"
    live = bool(getattr(file, "isatty", lambda: False)())
    if live:
        from tqdm import tqdm
        return tqdm(iterable, desc=desc, leave=False, file=file, disable=not is_main, **LIVE_PACE, **kwargs)
    return LogBar(iterable, desc, file=file, silent=not (is_main and in_logs), **kwargs)


class LogBar:
    """The log-file bar: the subset of tqdm's interface the project uses (iterate, update, set_postfix,
    close), printing whole lines and never a carriage return."""

    def __init__(self, iterable: Optional[Iterable], desc: str, file: TextIO, silent: bool = False,
                 total: Optional[int] = None, unit: str = "it"):
        self.iterable, self.desc, self.file, self.silent, self.unit = iterable, desc, file, silent, unit
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)
        self.total = total or None                # 0 or None: unknown length (lines by time)
        self.n, self.postfix, self.closed = 0, "", False
        self.start = self.last_time = time.monotonic()
        self.next_step = 0                        # the step count at which the next known-length line is due
        self.printed_n: Optional[int] = None      # the count shown in the last line printed
        self._emit_if_due()

    def __iter__(self):
        try:
            for item in self.iterable:
                yield item
                self.update(1)
        finally:
            self.close()

    def __len__(self) -> int:
        return self.total or 0

    def update(self, n: int = 1) -> None:
        self.n += n
        self._emit_if_due()

    def set_postfix(self, ordered_dict: Optional[Dict[str, Any]] = None, refresh: bool = True, **kwargs) -> None:
        """Shown at the end of the next line, as tqdm shows it: ', k=v, ...'."""
        items = {**(ordered_dict or {}), **kwargs}
        self.postfix = "".join(f", {k}={v}" for k, v in items.items())

    def close(self) -> None:
        """The last line (where the count moved since the one before), once."""
        if self.closed:
            return
        self.closed = True
        if self.printed_n != self.n:
            self._emit()

    def _emit_if_due(self) -> None:
        if self.total:
            if self.n >= self.next_step:
                self._emit()
                k = self.n * LOG_LINES // self.total + 1       # the next 5% mark above this count
                self.next_step = -(-k * self.total // LOG_LINES)
        elif self.printed_n is None or time.monotonic() - self.last_time >= LOG_EVERY_S:
            self._emit()

    def _emit(self) -> None:
        self.printed_n, self.last_time = self.n, time.monotonic()
        if not self.silent:
            self.file.write(self.line() + "\n")
            self.file.flush()

    def line(self) -> str:
        """`desc:  35% 137/391 [00:41<01:16, 3.32it/s, loss=1.23]` (no percent or time left when the
        length is unknown); the format is tqdm's, without the bar."""
        from tqdm import tqdm
        known = "{percentage:3.0f}% {n_fmt}/{total_fmt} [{elapsed}<{remaining}, " if self.total \
            else "{n_fmt} [{elapsed}, "
        return tqdm.format_meter(self.n, self.total, time.monotonic() - self.start, prefix=self.desc, unit=self.unit,
                                 postfix=self.postfix.lstrip(", ") or None,
                                 bar_format="{desc}: " + known + "{rate_fmt}{postfix}]")

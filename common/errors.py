"""The project's user-error type: a mistake in the command, printed as one line by zs_main.py, exit 2.

Example:
    raise UsageError(f"--device {name!r}: choose auto, cpu, cuda or cuda:N")
"""
from __future__ import annotations


class UsageError(Exception):
    """A user mistake: printed as one line by zs_main.py, exit code 2."""

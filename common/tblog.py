"""Optional TensorBoard mirror of metrics.jsonl (`--tensorboard`): one scalar per metric per epoch.

metrics.jsonl stays the source of truth; this only copies each epoch's row (every number in it,
the learning rate included) into `RUN_DIR/tensorboard/` through `torch.utils.tensorboard`, so runs
can be compared in TensorBoard. The `tensorboard` package is an optional dependency: without it
`--tensorboard` is a one-line error telling how to install it.

Example:
    log = TensorBoardLog(run_dir, start_epoch=0)     # then fit(..., on_epoch=log)
    tensorboard --logdir checkpoints/
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Dict

from common.runs import UsageError

SUBDIR = "tensorboard"
NOT_LOGGED = {"epoch"}            # the step axis itself


class TensorBoardLog:
    """Callable on each epoch's metrics row; writes its numbers as scalars at step = epoch (from 1)."""

    def __init__(self, run_dir: os.PathLike, start_epoch: int = 0):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise UsageError("--tensorboard needs the tensorboard package: pip install tensorboard "
                             "(or drop --tensorboard; metrics.jsonl has the same numbers)") from None
        # purge_step: a resumed run drops events of epochs it is about to redo
        self.writer = SummaryWriter(str(Path(run_dir) / SUBDIR), purge_step=start_epoch + 1)

    def __call__(self, row: Dict[str, Any]) -> None:
        step = int(row["epoch"])                   # epochs are numbered from 1 (train.loop.fit)
        for key, value in row.items():
            if key in NOT_LOGGED or isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            if math.isfinite(value):
                self.writer.add_scalar(key, value, step)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()

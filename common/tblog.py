"""Optional TensorBoard mirror of metrics.jsonl (`--tensorboard`): one scalar per metric per epoch, and
the final test numbers and samples figure of a transform_eopm_gen run (`final`).

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
from typing import Any, Dict, Mapping, Optional

from common.runs import UsageError

SUBDIR = "tensorboard"
NOT_LOGGED = {"epoch"}            # the step axis itself
# the final evaluation's numbers: TensorBoard tag -> results.json key (tags allow no parentheses)
FINAL_SCALARS = {"test/CA": "CA", "test/PA": "PA_mean", "test/CA_NF": "CA_NF", "test/PA_NF": "PA_NF_mean",
                 "test/RP": "RP"}


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

    def final(self, results: Mapping[str, Any], step: int, samples: Optional[os.PathLike] = None) -> None:
        """The final test numbers (results.json's CA, PA, CA(NF), PA(NF), RP; means over the seeds) as
        scalars under test/, and the samples figure as an image, at `step` (the evaluated epoch)."""
        for tag, key in FINAL_SCALARS.items():
            value = results.get(key)
            if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
                self.writer.add_scalar(tag, value, step)
        if samples is not None and Path(samples).is_file():
            from matplotlib.image import imread
            pixels = imread(str(samples))[..., :3]        # (H, W, 3) floats in [0, 1]; alpha dropped
            self.writer.add_image("test/samples", pixels, step, dataformats="HWC")
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()

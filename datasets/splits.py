"""Which images each part of a run sees: train, val (model selection) and test (final evaluation only).

The validation images are carved out of the training split, class-balanced and with a fixed seed, so
every run on a dataset (base-model QAT and EOPM alike) holds out the same images and never trains on
them. best.pt is chosen on them; the test split is read only by the final evaluation. A
--train-limit subset is then drawn from the remaining training images, so it never overlaps val.

    python -c "from datasets.splits import part_indices; print(part_indices([0, 1] * 50, 'val', None, 10))"
"""
from __future__ import annotations

from typing import List, Optional, Sequence

import numpy as np

from common.runs import UsageError
from config import SUBSET_SEED, VAL_SPLIT_SEED

from .base import balanced_subset

PARTS = ("train", "val", "test")   # train and val come from the training split, test from the test split
VAL_AUTO_FRACTION = 0.1            # default val size: a tenth of the training split ...
VAL_AUTO_MAX = 1000                # ... but at most this many images


class SplitError(UsageError):
    """A --val-size / --train-limit combination that leaves nothing to train on."""


def resolve_val_size(val_size: Optional[int], n_train_split: int) -> int:
    """Images held out for validation: `val_size`, or the default when it is None; 0 = none."""
    if val_size is None:
        return min(VAL_AUTO_MAX, int(n_train_split * VAL_AUTO_FRACTION))
    if val_size < 0:
        raise SplitError(f"--val-size {val_size} is negative; give a number of images (0 = no validation)")
    if val_size >= n_train_split:
        raise SplitError(f"--val-size {val_size} leaves no training images (the training split has "
                         f"{n_train_split}); give a smaller size or 0")
    return val_size


def part_capacity(n_split: int, part: str, val_size: Optional[int]) -> int:
    """Images `part` has before any limit: the test split for 'test'; for 'train' the training split
    less the validation images, which 'val' holds."""
    if part == "test":
        return n_split
    n_val = resolve_val_size(val_size, n_split)
    return n_val if part == "val" else n_split - n_val


def limit_note(dataset: str, part: str, limit: Optional[int], n_split: int, val_size: Optional[int]
               ) -> Optional[str]:
    """The one line saying a --train-limit / --test-limit above what the part has is cut to all of it
    (`part_indices` then takes every image); None when the limit fits or there is none."""
    capacity = part_capacity(n_split, part, val_size)
    if limit is None or limit <= capacity or part == "val":
        return None
    where = (f"{dataset}'s test split has {capacity} images" if part == "test" else
             f"{dataset} has {capacity} training images ({n_split} less {n_split - capacity} held out "
             f"for validation)")
    return f"--{part}-limit {limit} is more than there are: {where}; using all {capacity}"


def part_indices(targets: Sequence[int], part: str, limit: Optional[int], val_size: Optional[int],
                 subset_seed: int = SUBSET_SEED, val_seed: int = VAL_SPLIT_SEED) -> Optional[List[int]]:
    """Sorted indices into a split for `part`, or None for "the whole split".

    targets: labels of the training split for 'train'/'val', of the test split for 'test'.
    limit: --train-limit for 'train', --test-limit for 'test' (class-balanced, `subset_seed`); a limit
    above the part's size takes all of it (`limit_note` says so).
    """
    if part not in PARTS:
        raise ValueError(f"unknown part {part!r}; choose from {', '.join(PARTS)}")
    y = np.asarray(targets, dtype=np.int64).reshape(-1)
    if part == "test":
        return balanced_subset(y, limit, subset_seed) if limit is not None and limit < len(y) else None
    n_val = resolve_val_size(val_size, len(y))
    val = np.asarray(balanced_subset(y, n_val, val_seed), dtype=np.int64)
    if part == "val":
        return val.tolist()
    rest = np.setdiff1d(np.arange(len(y)), val)                    # sorted; disjoint from val
    if limit is not None and limit < len(rest):
        rest = rest[balanced_subset(y[rest], limit, subset_seed)]
    return None if len(rest) == len(y) else rest.tolist()

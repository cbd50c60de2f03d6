"""The data zoo (docs/DESIGN.md §3): cifar10, cifar100, gtsrb, imagenet224 (ImageNet-10).

Items are (float tensor C×H×W in [-1, 1], int label); every dataset object has `.targets`.

    from datasets import load_split, balanced_subset
    train = load_split("cifar10", "data", train=True)              # crop + flip augmentation
    test = load_split("cifar10", "data", train=False)              # no augmentation
    small = torch.utils.data.Subset(test, balanced_subset(test.targets, 1000, seed=0))
"""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional, Tuple, Union

from torch.utils.data import Dataset

from . import cifar, gtsrb, imagenet  # noqa: F401  (each registers its datasets)
from .base import DATASETS, DataMissingError, DatasetInfo, balanced_subset, compose
from .loader import cache_batches, make_batches, make_loader, part_sizes, use_device_data

__all__ = ["list_datasets", "get_dataset_info", "class_names", "load_split", "balanced_subset",
           "DataMissingError", "DatasetInfo", "make_loader", "make_batches", "use_device_data", "cache_batches",
           "part_sizes"]


def list_datasets() -> List[str]:
    return DATASETS.names()


def get_dataset_info(name: str) -> DatasetInfo:
    """Raises common.registry.UnknownName (listing the choices) for an unknown name."""
    return DATASETS.get(name).info


def class_names(name: str, root: Optional[Union[str, Path]] = None) -> Tuple[str, ...]:
    """`name`'s class names in label order, for pictures: read from the files under `root` (= --data-root)
    where the dataset's classes are its folders (ImageNet-10), else the fixed ones of DatasetInfo;
    () where neither is known, and pictures then show class indices."""
    entry = DATASETS.get(name)
    on_disk = entry.names(Path(root)) if entry.names is not None and root is not None else ()
    return on_disk or entry.info.class_names


def load_split(name: str, root: Union[str, Path], train: bool, download: bool = False,
               augment: Optional[bool] = None, hflip: bool = True) -> Dataset:
    """One split of `name` under `root` (= --data-root), with docs/DESIGN.md §3's transforms.

    augment: train-time augmentation (default: same as `train`). hflip=False drops the horizontal flip
    from the augmentation (meant for GTSRB, where flipping changes a sign's meaning).
    Raises DataMissingError when the files are absent (and download is off or fails) or unreadable.
    """
    entry = DATASETS.get(name)
    ds = entry.open(Path(root), train, download)
    ds.transform = compose(entry.ops(train if augment is None else augment, hflip))
    return ds

"""Base of the data zoo (docs/DESIGN.md §3): the registry entry type, the [-1, 1] pixel mapping,
the "data not found" error and the class-balanced subset picker.

Every dataset module registers one `DatasetEntry` in `DATASETS`, with everything both loader paths
need (a 32-px dataset's on-device augmentation included), so a new dataset is one file;
`datasets/__init__.py` is the public face (`list_datasets`, `get_dataset_info`, `class_names`,
`load_split`, `balanced_subset`).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, List, Optional, Sequence, Tuple

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset
from torchvision import transforms as T

from common.registry import Registry


class DataMissingError(Exception):
    """The dataset's files are not under the data root (and could not be downloaded) or are unreadable."""


class BadImageError(DataMissingError):
    """One image file of a dataset cannot be decoded (found while loading it, perhaps in a worker)."""

    def __init__(self, message: str):
        if "Traceback" in message:   # re-raised by a DataLoader worker: keep the original one-line message
            last = message.strip().splitlines()[-1]
            message = last.split(": ", 1)[1] if ": " in last else last
        super().__init__(message)


def open_rgb(path: str, dataset: str) -> Image.Image:
    """Decode one image file as RGB; an unreadable or damaged file is a BadImageError naming it."""
    try:
        with Image.open(path) as im:
            return im.convert("RGB")
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        raise BadImageError(f"{dataset}: cannot decode image {path} ({type(e).__name__}: {e}); "
                            f"replace or delete that file") from None


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    num_classes: int
    image_size: int      # pixels per side of the tensors the loader returns (32 or 224)
    layout: str          # files expected under --data-root, as written by torchvision's download
    downloadable: bool   # whether torchvision can fetch it (ImageNet-10 cannot)
    class_names: Tuple[str, ...] = ()   # in label order, for pictures; () where the release names none


# open(root, train, download) -> dataset of (PIL RGB image, int label) with .targets and a settable
# .transform; ops(augment, hflip) -> the PIL transforms that come before ToTensor.
Opener = Callable[[Path, bool, bool], Dataset]
OpsBuilder = Callable[[bool, bool], List[Callable]]
# augment(x, g): the training augmentation of a uint8 batch (B, 3, H, W) -> (B, 3, H, W) on x's device,
# its random draws from the generator g (datasets/device.py holds the batched ops)
Augment = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


@dataclass(frozen=True)
class DatasetEntry:
    info: DatasetInfo
    open: Opener
    ops: OpsBuilder
    # device_augment(hflip) -> ops(True, hflip) as batched tensor ops, for --device-data (a split held on
    # the GPU as uint8). None: the dataset has no on-device path (its module says why).
    device_augment: Optional[Callable[[bool], Augment]] = None
    # names(root) -> class names in label order read from the files under --data-root, for a dataset
    # whose classes are whatever folders it holds (ImageNet-10); () when they cannot be read.
    # None: the names are info.class_names.
    names: Optional[Callable[[Path], Tuple[str, ...]]] = None


DATASETS = Registry("dataset")


class ToSigned:
    """[0, 1] tensor -> [-1, 1] via x*2-1 (the paper's mapping; no mean/std normalisation).

    A class rather than a lambda so that transforms pickle into DataLoader worker processes."""

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return x * 2 - 1

    def __repr__(self) -> str:
        return "ToSigned(x*2-1)"


def compose(ops: Sequence[Callable]) -> T.Compose:
    """PIL ops, then ToTensor (HWC uint8 -> CHW float in [0, 1]), then the [-1, 1] mapping."""
    return T.Compose([*ops, T.ToTensor(), ToSigned()])


def missing(info: DatasetInfo, root: Path, what: str, cause: Optional[str] = None) -> DataMissingError:
    """The one error users see for absent or unreadable data: what is wrong, what is expected, how to fix."""
    how = ("run with --download when online, or put torchvision's layout there"
           if info.downloadable else "it cannot be downloaded; build that folder tree yourself")
    because = f" ({cause})" if cause else ""
    return DataMissingError(
        f"{info.name}: {what}{because}. Expected under --data-root {root}: {info.layout}; {how}.")


def balanced_subset(targets: Sequence[int], n: int, seed: int) -> List[int]:
    """n indices into `targets`, as even across classes as the class sizes allow, fixed by `seed`.

    Each of the C present classes gets n // C; the remainder goes one each to the first classes in
    label order. A class with too few items gives all of them and its shortfall is spread over the
    others the same way. n >= len(targets) returns every index. Output is sorted.
    """
    y = np.asarray(targets, dtype=np.int64).reshape(-1)
    if n >= len(y):
        return list(range(len(y)))
    if n <= 0:
        return []
    classes = np.unique(y)                                   # sorted label order
    members = [np.flatnonzero(y == c) for c in classes]
    sizes = np.array([len(m) for m in members])
    quota = np.zeros(len(classes), dtype=np.int64)
    remaining, open_ = n, np.arange(len(classes))
    while remaining > 0 and len(open_):                      # water-filling: at most C rounds
        share, extra = divmod(remaining, len(open_))
        want = share + (np.arange(len(open_)) < extra)
        take = np.minimum(want, sizes[open_] - quota[open_])
        quota[open_] += take
        remaining -= int(take.sum())
        open_ = open_[quota[open_] < sizes[open_]]
    rng = np.random.default_rng(seed)
    picked = [rng.permutation(m)[:q] for m, q in zip(members, quota)]
    return sorted(int(i) for i in np.concatenate(picked))

"""ImageNet-10 ("imagenet224", docs/DESIGN.md §3): 10 ImageNet classes at 224 px, read from an ImageFolder tree
`imagenet-10/{train,val}/<wnid>/*.JPEG` (val is the test split). It cannot be downloaded.

The wnids are not checked: docs/DESIGN.md §3 names a commonly used list, but any 10 class folders work as long as
train and val hold the same ones (checked: labels are the sorted-folder index, as in ImageFolder).

    python -c "import datasets; print(len(datasets.load_split('imagenet224', 'data', train=False)))"
"""
from __future__ import annotations

import os
from functools import partial
from pathlib import Path
from typing import Dict, Tuple

import torch
from torchvision import datasets as tvd
from torchvision import transforms as T

from .base import DATASETS, DatasetEntry, DatasetInfo, missing, open_rgb

SIZE = 224          # pixels per side
NUM_CLASSES = 10
FOLDER = "imagenet-10"
META = "meta.bin"    # torchvision ImageNet's class-name file, optional (names for pictures)

INFO = DatasetInfo(
    "imagenet224", NUM_CLASSES, SIZE,
    f"{FOLDER}/train/<wnid>/*.JPEG and {FOLDER}/val/<wnid>/*.JPEG, one folder per class "
    f"({NUM_CLASSES} class folders named by wnid)",
    downloadable=False)


def _open(root: Path, train: bool, download: bool) -> tvd.ImageFolder:
    folder = root / FOLDER / ("train" if train else "val")
    if not folder.is_dir():
        what = f"missing {folder}" + (" (ImageNet-10 cannot be downloaded)" if download else "")
        raise missing(INFO, root, what)
    try:
        # decodes lazily, as RGB (some JPEGs are greyscale); a damaged file is named when it is reached
        ds = tvd.ImageFolder(str(folder), loader=partial(open_rgb, dataset=INFO.name))
    except Exception as e:                   # no class folders, or no images in them
        raise missing(INFO, root, f"no usable images in {folder}", f"{type(e).__name__}: {e}") from e
    if len(ds.classes) != NUM_CLASSES:
        raise missing(INFO, root, f"{folder} has {len(ds.classes)} class folders, expected {NUM_CLASSES}")
    other = root / FOLDER / ("val" if train else "train")
    if other.is_dir() and sorted(e.name for e in os.scandir(other) if e.is_dir()) != ds.classes:
        raise missing(INFO, root, f"{folder} and {other} hold different class folders (labels would differ)")
    return ds


def _meta_names(path: Path) -> Dict[str, str]:
    """{wnid: first name} from torchvision ImageNet's meta.bin (({wnid: (name, ...)}, val wnids)); {} when
    absent or unreadable: it only labels pictures, so a bad file must never stop a run."""
    try:
        table = torch.load(path, weights_only=True)[0] if path.is_file() else {}
        return {str(w): str(n[0]) for w, n in table.items() if isinstance(n, (tuple, list)) and n}
    except Exception:                # another format, a torn file, not a pickle at all
        return {}


def _names(root: Path) -> Tuple[str, ...]:
    """Class names in label order (the sorted wnid folders, as ImageFolder labels them): a wnid's name
    from meta.bin where it has one, else the wnid; () without a full set of class folders."""
    base = root / FOLDER
    folder = next((base / split for split in ("val", "train") if (base / split).is_dir()), None)
    wnids = sorted(e.name for e in os.scandir(folder) if e.is_dir()) if folder else []
    if len(wnids) != NUM_CLASSES:
        return ()
    names = _meta_names(base / META)
    return tuple(names.get(w, w) for w in wnids)


def _ops(augment: bool, hflip: bool) -> list:
    if not augment:
        return [T.Resize((SIZE, SIZE))]      # a squash to 224x224, no crop (as the original)
    return [T.RandomResizedCrop(SIZE)] + ([T.RandomHorizontalFlip()] if hflip else [])


# no device_augment: RandomResizedCrop has no batched version in datasets/device.py, so --device-data
# auto keeps the DataLoader for this dataset and --device-data on refuses it
DATASETS.register("imagenet224")(DatasetEntry(INFO, open=_open, ops=_ops, device_augment=None,
                                              names=_names))

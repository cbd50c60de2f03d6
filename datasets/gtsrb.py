"""GTSRB in torchvision's on-disk layout (docs/DESIGN.md §3): 43 classes, 39,209 train / 12,630 test images.

Reads the same files in the same order as `torchvision.datasets.GTSRB` (train: sorted paths of
Training/000CC/*.ppm; test: rows of GT-final_test.csv) but exposes `.targets` and reports missing files
clearly; torchvision is only used for the download. Images are decoded lazily, one per item.

    python -c "import datasets; print(len(datasets.load_split('gtsrb', 'data', train=False)))"
"""
from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import List, Tuple

import torch
from torch.utils.data import Dataset
from torchvision import datasets as tvd
from torchvision import transforms as T

from .base import DATASETS, Augment, DatasetEntry, DatasetInfo, missing, open_rgb
from .device import crop_with_padding, random_affine, random_hflip

SIZE = 32               # Resize((32, 32)) on both splits, docs/DESIGN.md §3
PAD = 4                 # RandomCrop padding
TRANSLATE = (0.35, 0.35)  # RandomAffine max shift, fraction of width / height
SCALE = (0.65, 1.35)      # RandomAffine scale range
NUM_CLASSES = 43
# short names of the 43 signs, for pictures, in ClassId order (the release's folders 00000..00042 carry
# numbers only; the names follow the benchmark's sign list, shortened to fit a thumbnail's title)
CLASS_NAMES = (
    "20 km/h", "30 km/h", "50 km/h", "60 km/h", "70 km/h", "80 km/h", "end 80 km/h", "100 km/h",
    "120 km/h", "no passing", "no passing >3.5t", "right of way", "priority road", "yield", "stop",
    "no vehicles", "no vehicles >3.5t", "no entry", "caution", "curve left", "curve right",
    "double curve", "bumpy road", "slippery road", "road narrows right", "road work", "traffic signals",
    "pedestrians", "children", "bicycles", "ice/snow", "wild animals", "end of limits", "turn right",
    "turn left", "ahead only", "straight or right", "straight or left", "keep right", "keep left",
    "roundabout", "end no passing", "end no passing >3.5t")

INFO = DatasetInfo(
    "gtsrb", NUM_CLASSES, SIZE,
    "gtsrb/GTSRB/Training/000CC/*.ppm (train), gtsrb/GTSRB/Final_Test/Images/*.ppm and "
    "gtsrb/GT-final_test.csv (test)",
    downloadable=True, class_names=CLASS_NAMES)


def _train_samples(folder: Path) -> List[Tuple[str, int]]:
    """(path, label) for Training/000CC/*.ppm, class from the folder name, in sorted path order."""
    samples = []
    class_dirs = [e for e in os.scandir(folder) if e.is_dir() and e.name.isdigit()]
    for d in sorted(class_dirs, key=lambda e: e.name):
        label = int(d.name)
        if label >= NUM_CLASSES:
            raise ValueError(f"class folder {d.name} is not one of 00000..{NUM_CLASSES - 1:05d}")
        for root, _, files in sorted(os.walk(d.path, followlinks=True)):
            samples += [(os.path.join(root, f), label) for f in sorted(files) if f.lower().endswith(".ppm")]
    return samples


def _test_samples(folder: Path, table: Path) -> List[Tuple[str, int]]:
    """(path, label) for each row of GT-final_test.csv; every listed image must exist."""
    with open(table, newline="") as fh:
        rows = list(csv.DictReader(fh, delimiter=";", skipinitialspace=True))
    samples = [(str(folder / r["Filename"]), int(r["ClassId"])) for r in rows]
    present = set(os.listdir(folder))
    absent = [os.path.basename(p) for p, _ in samples if os.path.basename(p) not in present]
    if absent:
        raise FileNotFoundError(f"{len(absent)} images listed in {table.name} are missing from {folder}, "
                                f"e.g. {absent[0]}")
    return samples


class GTSRBFiles(Dataset):
    def __init__(self, root: Path, train: bool, download: bool):
        base = root / "gtsrb"
        folder = base / "GTSRB" / ("Training" if train else "Final_Test/Images")
        table = base / "GT-final_test.csv"
        needed = [folder] if train else [folder, table]
        if download and not all(p.exists() for p in needed):
            try:
                tvd.GTSRB(str(root), split="train" if train else "test", download=True)
            except Exception as e:  # offline, bad archive, ...
                raise missing(INFO, root, "download failed", f"{type(e).__name__}: {e}") from e
        absent = [str(p) for p in needed if not p.exists()]
        if absent:
            raise missing(INFO, root, f"missing {', '.join(absent)}")
        try:
            samples = _train_samples(folder) if train else _test_samples(folder, table)
        except Exception as e:  # unreadable csv, bad class folder, listed files missing
            raise missing(INFO, root, f"unusable files in {base}", f"{type(e).__name__}: {e}") from e
        if not samples:
            raise missing(INFO, root, f"no .ppm images in {folder}")
        if not all(0 <= y < NUM_CLASSES for _, y in samples):
            raise missing(INFO, root, f"ClassId outside 0..{NUM_CLASSES - 1} in {table}")
        self.paths = [p for p, _ in samples]
        self.targets: List[int] = [y for _, y in samples]
        self.transform = None

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i: int):
        img = open_rgb(self.paths[i], INFO.name)
        return (self.transform(img) if self.transform else img), self.targets[i]


def _ops(augment: bool, hflip: bool) -> list:
    ops = [T.Resize((SIZE, SIZE))]
    if augment:
        ops += [T.RandomAffine(degrees=0, translate=TRANSLATE, scale=SCALE),
                T.RandomCrop(SIZE, padding=PAD)] + ([T.RandomHorizontalFlip()] if hflip else [])
    return ops


def device_augment(hflip: bool) -> Augment:
    """`_ops(True, hflip)` after the Resize, as batched tensor ops on a uint8 batch held on the device
    (--device-data; the split is stored there already resized to 32x32)."""
    def augment(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        x = crop_with_padding(random_affine(x, g, TRANSLATE, SCALE), g, PAD)   # (B, 3, 32, 32) uint8
        return random_hflip(x, g) if hflip else x
    return augment


DATASETS.register("gtsrb")(DatasetEntry(INFO, open=GTSRBFiles, ops=_ops, device_augment=device_augment))

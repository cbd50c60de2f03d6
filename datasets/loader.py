"""Batches built from a config.DataConfig: class-balanced subsets, seeded order, DDP sharding.

Two paths serve the same images in the same order: `make_loader` (a DataLoader over PIL transforms)
and, for --device-data, `make_batches` (the part held on the device as uint8, datasets/device.py).
`plan_part` decides for both what a part is: which split, which indices, augmentation, shuffle,
batch size and DDP share-out.

Example:
    train_loader = make_loader(data_cfg, "train", seed=0, device=torch.device("cpu"))
"""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Dict, List, Optional, Sequence, Set, Tuple

import torch
from torch.utils.data import DataLoader, Subset

from common.dist import DistInfo, order_sampler

from .base import DATASETS
from .splits import PARTS, limit_note, part_indices

if TYPE_CHECKING:                      # the loader only reads DataConfig's fields
    from config import DataConfig

_LIMIT_NOTED: Set[str] = set()         # limit notes already given in this process (one per part per command)


@dataclass(frozen=True)
class PartPlan:
    """How one part of a run's data is served, the same on both loader paths."""
    cfg: DataConfig
    part: str                # 'train', 'val' or 'test' (datasets.splits)
    augment: bool            # the training augmentation (and only with cfg.augment)
    shuffle: bool            # a fresh order per epoch from the loader's generator; else file order
    batch_size: int
    dist_info: DistInfo      # DDP share-out: the training part only; val / test are read whole by each rank

    @property
    def train_split(self) -> bool:
        """'train' and 'val' are drawn from the training split, 'test' from the test split."""
        return self.part != "test"

    def indices(self, targets: Sequence[int]) -> Optional[List[int]]:
        """The part's indices into its split (None: all of it); a limit above the part's size is cut to
        it, said once per process."""
        c = self.cfg
        limit = c.train_limit if self.part == "train" else c.test_limit if self.part == "test" else None
        note = limit_note(c.dataset, self.part, limit, len(targets), c.val_size)
        if note is not None and note not in _LIMIT_NOTED:
            _LIMIT_NOTED.add(note)
            warnings.warn(note, stacklevel=2)
        return part_indices(targets, self.part, limit, c.val_size, c.subset_seed, c.val_seed)


def plan_part(cfg: DataConfig, part: str, dist_info: DistInfo = DistInfo(), augment: Optional[bool] = None,
              shuffle: Optional[bool] = None) -> PartPlan:
    """'train' is augmented (if cfg.augment), shuffled and shared out under DDP; 'val' / 'test' are not.
    `augment` / `shuffle` override the part's default (e.g. an unaugmented pass over 'train')."""
    if part not in PARTS:
        raise ValueError(f"unknown part {part!r}; choose from {', '.join(PARTS)}")
    train = part == "train"
    return PartPlan(cfg, part, augment=(train if augment is None else augment) and cfg.augment,
                    shuffle=train if shuffle is None else shuffle,
                    batch_size=cfg.batch_size if train else cfg.test_batch_size,
                    dist_info=dist_info if train else DistInfo())


def _load(plan: PartPlan):
    """The part's images through the PIL transforms (the DataLoader path)."""
    from datasets import load_split
    cfg = plan.cfg
    ds = load_split(cfg.dataset, cfg.root, train=plan.train_split, download=cfg.download,
                    augment=plan.augment, hflip=cfg.hflip)
    idx = plan.indices(ds.targets)
    return ds if idx is None else Subset(ds, idx)


def part_sizes(cfg: DataConfig, parts: Sequence[str] = PARTS) -> Dict[str, int]:
    """Images each part will actually have (after --val-size and the limits, a too-large limit cut to
    the part's size), e.g. for a start-up summary; opens each split once and decodes no image."""
    sizes, targets = {}, {}
    for part in parts:
        plan = plan_part(cfg, part)
        if plan.train_split not in targets:
            targets[plan.train_split] = DATASETS.get(cfg.dataset).open(
                Path(cfg.root), plan.train_split, cfg.download).targets
        idx = plan.indices(targets[plan.train_split])
        sizes[part] = len(targets[plan.train_split]) if idx is None else len(idx)
    return sizes


def _workers(cfg: DataConfig, device: torch.device) -> int:
    if cfg.workers >= 0:
        return cfg.workers
    return 0 if device.type == "cpu" else min(8, os.cpu_count() or 1)


def make_loader(cfg: DataConfig, part: str, seed: int, device: torch.device,
                dist_info: DistInfo = DistInfo(), augment: Optional[bool] = None,
                shuffle: Optional[bool] = None) -> DataLoader:
    """The 'train' loader shuffles with a generator seeded from the run seed; 'val'/'test' keep order."""
    plan = plan_part(cfg, part, dist_info, augment, shuffle)
    ds = _load(plan)
    gen = torch.Generator().manual_seed(seed)
    # one process: the DataLoader's own RandomSampler; DDP: each rank its share of that same order
    sampler = order_sampler(len(ds), gen, plan.dist_info, plan.shuffle, draw_base_seed=False)
    return DataLoader(ds, batch_size=plan.batch_size, shuffle=plan.shuffle and sampler is None,
                      sampler=sampler, num_workers=_workers(cfg, device), generator=gen, drop_last=False,
                      pin_memory=device.type == "cuda")  # no persistent workers: their seeds must follow the epoch


def cache_batches(loader, device: torch.device = None) -> List[Tuple[torch.Tensor, torch.Tensor]]:
    """Decode a (test) loader once into memory (on `device` if given), for evaluations that pass
    over it many times."""
    if device is None:
        return [(x, y) for x, y in loader]
    return [(x.to(device, non_blocking=True), y.to(device, non_blocking=True)) for x, y in loader]


def use_device_data(setting: str, dataset: str, device: torch.device) -> bool:
    """--device-data: 'auto' = on for CUDA and a dataset whose entry has an on-device augmentation (32 px)."""
    from common.runs import UsageError
    supported = [n for n in DATASETS.names() if DATASETS.get(n).device_augment is not None]
    if setting == "on" and dataset not in supported:
        raise UsageError(f"--device-data on: {dataset} has no on-device pipeline; it works for "
                         f"{', '.join(supported)} (use auto or off)")
    return setting == "on" or (setting == "auto" and dataset in supported and device.type == "cuda")


def make_batches(cfg: DataConfig, part: str, seed: int, device: torch.device, on_device: bool,
                 dist_info: DistInfo = DistInfo()):
    """`make_loader`, or with `on_device` the same images of `part` held on the device as uint8 and
    augmented there in batches (datasets/device.py): same order for the same generator seed."""
    if not on_device:
        return make_loader(cfg, part, seed, device, dist_info)
    from datasets.device import DeviceBatches, load_split_uint8
    plan = plan_part(cfg, part, dist_info)
    images, targets = load_split_uint8(cfg.dataset, cfg.root, plan.train_split, cfg.download, plan.indices)
    augment = DATASETS.get(cfg.dataset).device_augment(cfg.hflip) if plan.augment else None
    return DeviceBatches(images, targets, plan.batch_size, device, augment=augment, shuffle=plan.shuffle,
                         seed=seed, dist_info=plan.dist_info)

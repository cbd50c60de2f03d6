"""DataLoaders built from a config.DataConfig: class-balanced subsets, seeded order, DDP sharding.

Example:
    train_loader = make_loader(data_cfg, "train", seed=0, device=torch.device("cpu"))
"""
from __future__ import annotations

import os
from typing import TYPE_CHECKING, List, Tuple

import torch
from torch.utils.data import DataLoader, DistributedSampler, Subset

from common.dist import DistInfo, GlobalOrderSampler

if TYPE_CHECKING:                      # the loader only reads DataConfig's fields
    from config import DataConfig


def load_dataset(cfg: DataConfig, part: str, augment=None):
    """The images of `part` ('train', 'val' or 'test', see datasets.splits) named by `cfg`.

    'val' is held out of the training split and never augmented; 'test' is the test split."""
    from datasets import load_split
    from datasets.splits import part_indices
    train = part != "test"
    ds = load_split(cfg.dataset, cfg.root, train=train, download=cfg.download,
                    augment=(part == "train") if augment is None else augment, hflip=cfg.hflip)
    limit = cfg.train_limit if part == "train" else cfg.test_limit if part == "test" else None
    idx = part_indices(ds.targets, part, limit, cfg.val_size, cfg.subset_seed, cfg.val_seed)
    return ds if idx is None else Subset(ds, idx)


def _workers(cfg: DataConfig, device: torch.device) -> int:
    if cfg.workers >= 0:
        return cfg.workers
    return 0 if device.type == "cpu" else min(8, os.cpu_count() or 1)


def make_loader(cfg: DataConfig, part: str, seed: int, device: torch.device,
                dist_info: DistInfo = DistInfo(), augment=None, shuffle=None) -> DataLoader:
    """The 'train' loader shuffles with a generator seeded from the run seed; 'val'/'test' keep order."""
    train = part == "train"
    augment = (train if augment is None else augment) and cfg.augment
    ds = load_dataset(cfg, part, augment)
    shuffle = train if shuffle is None else shuffle
    sampler = None
    gen = torch.Generator().manual_seed(seed)
    if dist_info.enabled and train:      # each rank its share of one process's order (see the sampler)
        sampler = GlobalOrderSampler(len(ds), gen, dist_info) if shuffle else \
            DistributedSampler(ds, dist_info.world_size, dist_info.rank, shuffle=False)
        shuffle = False
    n_workers = _workers(cfg, device)
    return DataLoader(ds, batch_size=cfg.batch_size if train else cfg.test_batch_size, shuffle=shuffle,
                      sampler=sampler, num_workers=n_workers, generator=gen, drop_last=False,
                      pin_memory=device.type == "cuda")  # no persistent workers: their seeds must follow the epoch


def cache_batches(loader, device: torch.device = None) -> List[Tuple[torch.Tensor, torch.Tensor]]:
    """Decode a (test) loader once into memory (on `device` if given), for evaluations that pass
    over it many times."""
    if device is None:
        return [(x, y) for x, y in loader]
    return [(x.to(device, non_blocking=True), y.to(device, non_blocking=True)) for x, y in loader]


def use_device_data(setting: str, dataset: str, device: torch.device) -> bool:
    """--device-data: 'auto' = on for CUDA and a dataset with a batched augmentation (32 px)."""
    from common.runs import UsageError
    from datasets.device import DEVICE_AUGMENT
    supported = dataset in DEVICE_AUGMENT
    if setting == "on" and not supported:
        raise UsageError(f"--device-data on: {dataset} has no on-device pipeline; it works for "
                         f"{', '.join(DEVICE_AUGMENT)} (use auto or off)")
    return setting == "on" or (setting == "auto" and supported and device.type == "cuda")


def make_batches(cfg: DataConfig, part: str, seed: int, device: torch.device, on_device: bool,
                 dist_info: DistInfo = DistInfo(), augment=None, shuffle=None):
    """`make_loader`, or with `on_device` the same images of `part` held on the device as uint8 and
    augmented there in batches (datasets/device.py): same order for the same generator seed."""
    if not on_device:
        return make_loader(cfg, part, seed, device, dist_info, augment, shuffle)
    from datasets.device import DEVICE_AUGMENT, DeviceBatches, load_split_uint8
    from datasets.splits import part_indices
    train = part == "train"
    limit = cfg.train_limit if train else cfg.test_limit if part == "test" else None
    images, targets = load_split_uint8(cfg.dataset, cfg.root, part != "test", cfg.download,
                                       lambda t: part_indices(t, part, limit, cfg.val_size, cfg.subset_seed,
                                                              cfg.val_seed))
    augment = (train if augment is None else augment) and cfg.augment
    shuffle = train if shuffle is None else shuffle
    batches = DeviceBatches(images, targets, cfg.batch_size if train else cfg.test_batch_size, device,
                            augment=DEVICE_AUGMENT[cfg.dataset](cfg.hflip) if augment else None,
                            shuffle=shuffle, seed=seed)
    if dist_info.enabled and train:      # each rank its share of one process's order, as in make_loader
        batches.sampler = GlobalOrderSampler(len(targets), batches.generator, dist_info, draw_base_seed=True) \
            if shuffle else DistributedSampler(range(len(targets)), dist_info.world_size, dist_info.rank,
                                               shuffle=False)
    return batches

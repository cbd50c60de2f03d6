"""DataLoaders built from a config.DataConfig: class-balanced subsets, seeded order, DDP sharding.

Example:
    train_loader = make_loader(data_cfg, train=True, seed=0, device=torch.device("cpu"))
"""
from __future__ import annotations

import os
from typing import TYPE_CHECKING, List, Tuple

import torch
from torch.utils.data import DataLoader, DistributedSampler, Subset

from common.dist import DistInfo

if TYPE_CHECKING:                      # the loader only reads DataConfig's fields
    from config import DataConfig


def load_dataset(cfg: DataConfig, train: bool, augment=None):
    """The split named by `cfg` (optionally limited to a class-balanced subset)."""
    from datasets import balanced_subset, load_split
    ds = load_split(cfg.dataset, cfg.root, train=train, download=cfg.download, augment=augment,
                    hflip=cfg.hflip)
    limit = cfg.train_limit if train else cfg.test_limit
    if limit is not None and limit < len(ds):
        ds = Subset(ds, balanced_subset(ds.targets, limit, cfg.subset_seed))
    return ds


def _workers(cfg: DataConfig, device: torch.device) -> int:
    if cfg.workers >= 0:
        return cfg.workers
    return 0 if device.type == "cpu" else min(8, os.cpu_count() or 1)


def make_loader(cfg: DataConfig, train: bool, seed: int, device: torch.device,
                dist_info: DistInfo = DistInfo(), augment=None, shuffle=None) -> DataLoader:
    """Training loaders shuffle with a generator seeded from the run seed; test loaders keep order."""
    ds = load_dataset(cfg, train, augment)
    shuffle = train if shuffle is None else shuffle
    sampler = None
    if dist_info.enabled and train:
        sampler = DistributedSampler(ds, dist_info.world_size, dist_info.rank, shuffle=shuffle, seed=seed)
        shuffle = False
    gen = torch.Generator().manual_seed(seed)
    n_workers = _workers(cfg, device)
    return DataLoader(ds, batch_size=cfg.batch_size if train else cfg.test_batch_size, shuffle=shuffle,
                      sampler=sampler, num_workers=n_workers, generator=gen, drop_last=False,
                      pin_memory=device.type == "cuda", persistent_workers=n_workers > 0)


def cache_batches(loader: DataLoader) -> List[Tuple[torch.Tensor, torch.Tensor]]:
    """Decode a (test) loader once into memory, for evaluations that pass over it many times."""
    return [(x, y) for x, y in loader]

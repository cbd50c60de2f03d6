"""A 32-px split held on the GPU as uint8, with the training augmentation as batched tensor ops.

For CIFAR-size data the DataLoader (PIL decode + per-image transforms in worker processes) caps a
ResNet18 QAT epoch at ~14k images/s on an H100; holding the split on the device (CIFAR-10 train is
150 MB as uint8) and augmenting a whole batch in a few kernels removes that cap. The order of the
images comes from the sampler a DataLoader would use on the same `generator`
(`common.dist.order_sampler`: a shuffled order is `GlobalOrderSampler`'s base-seed draw then
`randperm`, which is a shuffling DataLoader's order, draw for draw), so `reseed_epoch` keeps runs
reproducible and resumable; the augmentation's random crop offsets, flips and affine parameters come
from a device generator seeded from that same per-epoch stream. The same augmentation *distribution*
as the PIL path (tested op by op against torchvision), not the same random draws. Each dataset
builds its augmentation from the ops here in its own module (`DatasetEntry.device_augment`).

Example:
    augment = DATASETS.get("cifar10").device_augment(True)        # hflip on
    batches = DeviceBatches(images_u8, targets, batch_size=256, device=torch.device("cuda"),
                            augment=augment, shuffle=True)
    for x, y in batches: ...        # x float (B, 3, 32, 32) in [-1, 1], y int64 (B,), both on the device
"""
from __future__ import annotations

import math
from typing import Callable, Iterator, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torchvision import transforms as T

from common.dist import DistInfo, order_sampler

from .base import DATASETS, Augment


def to_signed(x_u8: torch.Tensor) -> torch.Tensor:
    """uint8 -> float in [-1, 1] with the same float ops as ToTensor then x*2-1 (bit-identical). 255 is a
    tensor on the batch's device: CUDA would divide by a Python 255 as a product with fl(1/255), one ulp
    off for about half the byte values."""
    x = x_u8.float()
    return x.div_(x.new_full((), 255.0)).mul_(2).sub_(1)


def crop_with_padding(x: torch.Tensor, g: torch.Generator, pad: int) -> torch.Tensor:
    """RandomCrop(size, padding=pad) per image: zero padding, offsets uniform in 0..2·pad."""
    b, c, h, w = x.shape
    xp = F.pad(x, (pad, pad, pad, pad))                                         # (B, C, H+2p, W+2p)
    oy = torch.randint(0, 2 * pad + 1, (b,), generator=g, device=x.device)
    ox = torch.randint(0, 2 * pad + 1, (b,), generator=g, device=x.device)
    rows = (oy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]   # (B, 1, H, 1)
    cols = (ox[:, None] + torch.arange(w, device=x.device))[:, None, None, :]   # (B, 1, 1, W)
    bi = torch.arange(b, device=x.device)[:, None, None, None]
    ci = torch.arange(c, device=x.device)[None, :, None, None]
    return xp[bi, ci, rows, cols]


def random_hflip(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """RandomHorizontalFlip(p=0.5) per image."""
    flip = torch.rand(x.shape[0], generator=g, device=x.device) < 0.5
    return torch.where(flip[:, None, None, None], x.flip(-1), x)


def affine_translate_scale(x: torch.Tensor, tx: torch.Tensor, ty: torch.Tensor, scale: torch.Tensor
                           ) -> torch.Tensor:
    """torchvision's tensor `affine` (angle 0, no shear, nearest, zero fill) for a batch of
    per-image integer shifts (tx, ty) in pixels and scales: output pixel p reads input (p - t) / s
    about the image centre."""
    b, _, h, w = x.shape
    dt = torch.float32
    inv = 1.0 / scale.to(dt)                                                     # (B,)
    theta = torch.zeros(b, 2, 3, dtype=dt, device=x.device)
    theta[:, 0, 0], theta[:, 1, 1] = inv, inv
    theta[:, 0, 2], theta[:, 1, 2] = -tx.to(dt) * inv, -ty.to(dt) * inv
    xs = torch.linspace(-w * 0.5 + 0.5, w * 0.5 - 0.5, w, dtype=dt, device=x.device)
    ys = torch.linspace(-h * 0.5 + 0.5, h * 0.5 - 0.5, h, dtype=dt, device=x.device)
    base = torch.stack([xs.expand(h, w), ys[:, None].expand(h, w), torch.ones(h, w, dtype=dt, device=x.device)],
                       dim=-1).view(1, h * w, 3)                                 # (1, H·W, 3) pixel centres
    scale_to_unit = torch.tensor([0.5 * w, 0.5 * h], dtype=dt, device=x.device)
    grid = base.expand(b, -1, -1).bmm(theta.transpose(1, 2) / scale_to_unit).view(b, h, w, 2)
    out = F.grid_sample(x.to(dt), grid, mode="nearest", padding_mode="zeros", align_corners=False)
    return out.round_().to(x.dtype)


def random_affine(x: torch.Tensor, g: torch.Generator, translate: Tuple[float, float],
                  scale: Tuple[float, float]) -> torch.Tensor:
    """RandomAffine(degrees=0, translate, scale): integer shifts round(U(-t·size, t·size)), scale U(lo, hi)."""
    b, _, h, w = x.shape
    u = torch.rand(3, b, generator=g, device=x.device, dtype=torch.float64)
    tx = torch.round((u[0] * 2 - 1) * (translate[0] * w))
    ty = torch.round((u[1] * 2 - 1) * (translate[1] * h))
    s = scale[0] + u[2] * (scale[1] - scale[0])
    return affine_translate_scale(x, tx, ty, s)


class DeviceBatches:
    """Batches (x in [-1, 1], y) of a uint8 split on `device`; DataLoader-compatible for the loop
    (`len`, iteration, `.generator` re-seeded by `reseed_epoch`, `.sampler`, `.dataset`).

    The order is a shuffling DataLoader's on the same generator (`shuffle`), or file order; under DDP
    (`dist_info`) this rank's share of it, exactly as `make_loader` shares it out."""

    def __init__(self, images: torch.Tensor, targets: Sequence[int], batch_size: int, device: torch.device,
                 augment: Optional[Augment] = None, shuffle: bool = False, seed: int = 0,
                 dist_info: DistInfo = DistInfo()):
        if images.dtype != torch.uint8 or images.dim() != 4:
            raise ValueError(f"images must be uint8 (N, C, H, W), got {images.dtype} {tuple(images.shape)}")
        self.images = images.to(device)
        self.targets = torch.as_tensor(np.asarray(targets), dtype=torch.int64).to(device)
        self.dataset = self.targets                  # len(loader.dataset) = number of images
        self.batch_size, self.device, self.augment = batch_size, device, augment
        self.generator = torch.Generator().manual_seed(seed)
        self.sampler = order_sampler(len(self.targets), self.generator, dist_info, shuffle, draw_base_seed=True)

    def _order(self) -> torch.Tensor:
        if self.sampler is None:                     # one process, file order
            return torch.arange(len(self.targets))
        return torch.as_tensor(list(iter(self.sampler)), dtype=torch.int64)

    def __len__(self) -> int:
        n = len(self.sampler) if self.sampler is not None else len(self.targets)
        return math.ceil(n / self.batch_size)

    def __iter__(self) -> Iterator[Tuple[torch.Tensor, torch.Tensor]]:
        order = self._order().to(self.device)
        g = None
        if self.augment is not None:
            seed = int(torch.empty((), dtype=torch.int64).random_(generator=self.generator))
            g = torch.Generator(self.device).manual_seed(seed)
        for start in range(0, len(order), self.batch_size):
            idx = order[start:start + self.batch_size]
            x = self.images[idx]                                                  # (B, C, H, W) uint8
            if g is not None:
                x = self.augment(x, g)
            yield to_signed(x), self.targets[idx]


def load_split_uint8(name: str, root, train: bool, download: bool = False,
                     pick: Optional[Callable[[list], Optional[list]]] = None) -> Tuple[torch.Tensor, list]:
    """The images of a split as uint8 (N, 3, H, W) before augmentation (GTSRB: after its Resize),
    and their labels; `pick(targets)` gives the indices to keep (None: all), e.g. the part of the
    split `make_loader` would use (datasets.splits.part_indices)."""
    from pathlib import Path
    entry = DATASETS.get(name)
    ds = entry.open(Path(root), train, download)
    idx = pick(ds.targets) if pick is not None else None
    idx = list(range(len(ds.targets))) if idx is None else idx
    labels = [ds.targets[i] for i in idx]
    rows = getattr(ds, "rows", None)
    if isinstance(rows, np.ndarray):                                    # CIFAR pickles: (N, 3072) uint8, CHW
        return torch.from_numpy(rows[idx].reshape(-1, 3, ds.size, ds.size)), labels
    ds.transform = T.Compose([*entry.ops(False, True), T.PILToTensor()])  # decode once, no augmentation
    from common.progress import progress
    images = [ds[i][0] for i in progress(idx, f"decode {name}", in_logs=False)]
    return torch.stack(images), labels

"""Data parallelism under `torchrun` (DDP; nccl on GPUs, gloo on CPU); a no-op for a single process.

What makes w processes at batch b compute what one process computes at batch w·b (README "Scale
out"): `GlobalOrderSampler` shares out one process's image order (`order_sampler` picks it for both
loader paths), `GlobalBatchNorm2d` normalises over the global batch. `shard` / `gather_to_main` split
work such as evaluation seeds over the ranks.

Example:
    torchrun --standalone --nproc_per_node 4 zs_main.py resnet18 train cifar10 -BS 64
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Iterator, List, Optional, Sequence, TypeVar

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DistributedSampler, Sampler

T = TypeVar("T")


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device: torch.device) -> DistInfo:
    """Join the process group torchrun set up (WORLD_SIZE > 1); otherwise a single-process DistInfo."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    if not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend_for(device))
    return DistInfo(rank=dist.get_rank(), world_size=dist.get_world_size())


def barrier(info: DistInfo) -> None:
    """Wait for every rank (e.g. until rank 0 has written a checkpoint the others read)."""
    if info.enabled:
        dist.barrier()


def all_reduce_sum(t: torch.Tensor, info: DistInfo) -> torch.Tensor:
    if info.enabled:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def all_reduce_min(t: torch.Tensor, info: DistInfo) -> torch.Tensor:
    if info.enabled:
        dist.all_reduce(t, op=dist.ReduceOp.MIN)
    return t


def shutdown(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()


def backend_for(device: torch.device) -> str:
    """nccl between GPUs, gloo between CPU processes."""
    return "nccl" if device.type == "cuda" else "gloo"


def shard(items: Sequence[T], info: DistInfo) -> List[T]:
    """This rank's share of `items`: every world_size-th one, starting at its rank (balanced to ±1)."""
    return list(items[info.rank::info.world_size])


def gather_to_main(obj: Any, info: DistInfo) -> Optional[List[Any]]:
    """Every rank's `obj` (picklable), in rank order, on rank 0; None on the other ranks."""
    if not info.enabled:
        return [obj]
    out = [None] * info.world_size if info.is_main else None
    dist.gather_object(obj, out, dst=0)
    return out


class GlobalOrderSampler(Sampler):
    """Training order under DDP: rank r of w takes positions r, r+w, r+2w, ... of the very permutation a
    single process draws (the same `torch.randperm` call on the same DataLoader generator as
    RandomSampler), so global batch k of w processes at batch b holds exactly the images of batch k of
    one process at batch w·b. The order is padded by wrapping to a multiple of w (every rank must run
    the same number of steps), so the last global batch may repeat up to w-1 images.

    `draw_base_seed`: first draw the one int64 a DataLoader iterator draws from its generator before
    its sampler runs, for batch sources that do not draw it themselves (datasets.device.DeviceBatches)."""

    def __init__(self, n: int, generator: torch.Generator, info: DistInfo, draw_base_seed: bool = False):
        self.n, self.generator, self.info, self.draw_base_seed = n, generator, info, draw_base_seed

    def __iter__(self) -> Iterator[int]:
        if self.draw_base_seed:
            torch.empty((), dtype=torch.int64).random_(generator=self.generator)
        order = torch.randperm(self.n, generator=self.generator).tolist()
        order += order[: (-self.n) % self.info.world_size]
        return iter(order[self.info.rank::self.info.world_size])

    def __len__(self) -> int:
        return -(-self.n // self.info.world_size)


def order_sampler(n: int, generator: torch.Generator, info: DistInfo, shuffle: bool,
                  draw_base_seed: bool) -> Optional[Sampler]:
    """The sampler that fixes the order of n items for one rank, or None for a DataLoader's own order.

    `draw_base_seed`: the batch source does not draw a DataLoader's base seed itself
    (datasets.device.DeviceBatches), so a shuffled order always comes from a GlobalOrderSampler that
    draws it; that is then the draw for draw the order of a shuffling DataLoader on `generator`
    (base seed, then RandomSampler's randperm). A DataLoader (False) gets None for one process, and
    keeps its RandomSampler (shuffle) or file order."""
    if shuffle and (info.enabled or draw_base_seed):
        return GlobalOrderSampler(n, generator, info, draw_base_seed=draw_base_seed)
    if info.enabled:                # unshuffled: rank r takes items r, r+w, ... (padded like the above)
        return DistributedSampler(range(n), info.world_size, info.rank, shuffle=False)
    return None


class GlobalBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d whose training-mode statistics are those of the global batch over all processes.

    Two differentiable all-reduces per call (count and sum, then the centred sum of squares), so it
    runs on gloo (CPU) as well as nccl, where torch.nn.SyncBatchNorm needs a GPU; the two-pass
    variance matches F.batch_norm's to float rounding. Outside a process group, or in eval mode, it is
    a plain BatchNorm2d; its state_dict keys are the same, so checkpoints load into either."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        from torch.distributed.nn.functional import all_reduce   # its backward all-reduces the gradient
        c, shape = x.shape[1], (1, x.shape[1], 1, 1)
        local_n = torch.full((1,), x.numel() // c, dtype=x.dtype, device=x.device)
        first = all_reduce(torch.cat([local_n, x.sum((0, 2, 3))]))            # (1 + C,)
        count, mean = first[0], first[1:] / first[0]
        xc = x - mean.view(shape)                                             # (B, C, H, W)
        var = all_reduce((xc * xc).sum((0, 2, 3))) / count                    # biased, as in training BN
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked += 1
                m = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                self.running_mean.mul_(1 - m).add_(mean.detach(), alpha=m)
                self.running_var.mul_(1 - m).add_(var.detach() * count / (count - 1), alpha=m)
        y = xc * torch.rsqrt(var + self.eps).view(shape)
        return y * self.weight.view(shape) + self.bias.view(shape) if self.affine else y


def global_batchnorm(module: nn.Module) -> nn.Module:
    """Swap every BatchNorm2d in `module` for a GlobalBatchNorm2d sharing its parameters and buffers."""
    for name, child in module.named_children():
        if type(child) is nn.BatchNorm2d:
            new = GlobalBatchNorm2d(child.num_features, child.eps, child.momentum, child.affine,
                                    child.track_running_stats)
            if child.affine:
                new.weight, new.bias = child.weight, child.bias
            if child.track_running_stats:
                new.running_mean, new.running_var = child.running_mean, child.running_var
                new.num_batches_tracked = child.num_batches_tracked
            setattr(module, name, new.train(child.training))
        else:
            global_batchnorm(child)
    return module

"""Build fault maps for the coming fault seeds in background threads, while the device computes.

The `official` map of a seed is drawn with numpy's MT19937 on the CPU (bit-exact with the released
code; see docs/DESIGN.md): about 10-20 ms a seed. EOPM draws N fresh seeds per batch, so on a GPU
that map would cost more than the batch itself. The seeds of a whole epoch are known when it starts
(they come from a stream seeded by (run seed, rank, epoch)), so a `FaultPrefetcher` builds the maps
of the next batches in a thread pool (numpy releases the GIL while it draws) and `inject_cfg` then
finds them in the map cache. Results are unchanged: the same function fills the same cache.

A `SeedPlan` is that schedule for EOPM training: it draws an epoch's seeds up front and, step by
step, hands out the step's seeds with their maps ready and the coming steps' maps in the works.

Example:
    with FaultPrefetcher(fault_cfg, workers=4) as pf:
        pf.schedule(seeds_of_step[1:3])       # ahead
        pf.wait(seeds_of_step[0])             # ready (errors re-raised here)

    plan = SeedPlan(FaultPrefetcher(fault_cfg, 4), seed_range=(1, 49999), per_step=10)
    plan.start_epoch(run_seed, rank, epoch, steps=len(loader))
    seeds = plan.next()                       # this step's 10 seeds, their maps built
"""
from __future__ import annotations

import os
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Dict, Iterable, List, Tuple

import numpy as np

from bitflip.faults import FaultConfig, prepare_cfg
from bitflip.official import MAP_CACHE

MAX_AHEAD = MAP_CACHE // 2       # seeds in flight at most: prefetched maps must not evict each other


def default_workers() -> int:
    """Threads for map building: the cores beyond the main one, at most 8 (0 = no prefetching)."""
    return max(0, min(8, (os.cpu_count() or 1) - 1))


def resolve_workers(workers: int) -> int:
    """A --prefetch-workers value: negative means `default_workers()`."""
    return default_workers() if workers < 0 else workers


class FaultPrefetcher:
    """Runs `prepare_cfg(cfg, seed)` for scheduled seeds in `workers` threads (0: inline, on wait;
    negative: `default_workers()`)."""

    def __init__(self, cfg: FaultConfig, workers: int = 0):
        self.cfg = cfg
        workers = resolve_workers(workers)
        self.pool = ThreadPoolExecutor(workers, thread_name_prefix="faultmap") if workers > 0 else None
        self.pending: Dict[int, Future] = {}

    def schedule(self, seeds: Iterable[int]) -> None:
        for seed in (int(s) for s in seeds):
            if self.pool is None or seed in self.pending or len(self.pending) >= MAX_AHEAD:
                continue
            self.pending[seed] = self.pool.submit(prepare_cfg, self.cfg, seed)

    def wait(self, seeds: Iterable[int]) -> None:
        for seed in (int(s) for s in seeds):
            future = self.pending.pop(seed, None)
            if future is not None:
                future.result()

    def close(self) -> None:
        if self.pool is not None:
            for f in self.pending.values():
                f.cancel()
            self.pool.shutdown(wait=True)
            self.pool = None
        self.pending.clear()

    def __enter__(self) -> "FaultPrefetcher":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class SeedPlan:
    """The training fault seeds of an epoch, `per_step` fresh ones a step from `seed_range` (inclusive),
    drawn when the epoch starts from a stream of (run seed, rank, epoch) alone, so a resumed run draws
    them again; `next()` returns the step's seeds once their maps are built and schedules those of the
    next steps (at most MAX_AHEAD seeds in flight)."""

    def __init__(self, prefetch: FaultPrefetcher, seed_range: Tuple[int, int], per_step: int):
        self.prefetch = prefetch
        self.lo, self.hi = seed_range
        self.per_step = per_step
        self.ahead = max(1, MAX_AHEAD // per_step)        # steps whose maps are built early
        self.seeds: List[np.ndarray] = []
        self.step = 0

    def start_epoch(self, run_seed: int, rank: int, epoch: int, steps: int) -> None:
        """Draw the epoch's seeds, in the order the steps use them (the same stream as drawing per step)."""
        rng = np.random.default_rng([run_seed, rank, epoch])
        self.seeds = [rng.integers(self.lo, self.hi + 1, size=self.per_step) for _ in range(steps)]
        self.step = 0

    def next(self) -> np.ndarray:
        """This step's seeds (their fault maps ready), after scheduling the maps of the coming steps."""
        i = self.step
        seeds = self.seeds[i]
        self.prefetch.schedule(s for later in self.seeds[i + 1:i + 1 + self.ahead] for s in later)
        self.prefetch.wait(seeds)
        self.step = i + 1
        return seeds

    def close(self) -> None:
        self.prefetch.close()

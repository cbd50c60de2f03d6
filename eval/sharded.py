"""Evaluation over fault seeds, spread across the processes of a torchrun job (DDP ranks).

The (BER, seed) pairs are dealt round-robin to the ranks; each rank evaluates its share with any
per-BER evaluation function, and rank 0 gathers the partial results and merges them in seed order, so
the merged per-seed rows are exactly those one process would compute. A single process simply
evaluates everything. `evaluate` is a parameter so that faster evaluations (e.g. batched perturbed
models on a GPU) plug in unchanged.

Example:
    merged = sharded_over_seeds(lambda ber, seeds: evaluate_seeds(..., replace(fault, ber=ber), seeds),
                                bers=(0.01, 0.005), seeds=range(50000, 50010), info=dist_info)
"""
from __future__ import annotations

from typing import Callable, Dict, List, Optional, Sequence

from common.dist import DistInfo, gather_to_main, shard

# evaluate(ber, seeds) -> {"per_seed": [{"seed": s, ...}, ...], ...seed-independent numbers such as CA}
PerBER = Callable[[float, Sequence[int]], Dict]


def sharded_over_seeds(evaluate: PerBER, bers: Sequence[float], seeds: Sequence[int],
                       info: DistInfo) -> Optional[List[Dict]]:
    """One merged result per BER on rank 0 (every seed's row, in `seeds` order); None on other ranks.

    Seed-independent entries (CA, CA(NF)) are taken from the first partial result of each BER; the
    summary over seeds is left to the caller, who recomputes it from the merged rows."""
    mine = shard([(ber, seed) for ber in bers for seed in seeds], info)
    local = []
    for ber in bers:
        my_seeds = [s for b, s in mine if b == ber]
        if my_seeds:
            local.append((ber, evaluate(ber, my_seeds)))
    gathered = gather_to_main(local, info)
    if gathered is None:
        return None
    position = {s: i for i, s in enumerate(seeds)}
    merged = []
    for ber in bers:
        parts = [res for rank_parts in gathered for b, res in rank_parts if b == ber]
        rows = sorted((r for p in parts for r in p["per_seed"]), key=lambda r: position[r["seed"]])
        merged.append({**parts[0], "per_seed": rows})
    return merged

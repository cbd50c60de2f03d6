"""Benchmark of one EOPM step (paper Eq. 3-5): the released formulation against ours, in one run.

Rows, for a frozen CIFAR-style base model with a ConvL generator, N perturbed models, `official`
faults at BER 1%, fresh fault seeds every step (as in training):
  (a) released-style: our modules used the released way: G(x) and the clean model run again for each
      of the N draws, the fault map is rebuilt for each draw, plus one extra forward for logging (no
      map threads run beside it);
  (b) ours, default: G(x) and the clean model once per batch, maps built ahead in threads
      (`FaultPrefetcher`), no host sync inside the step, the default memory layout
      (NCHW unless --channels-last on) — what `transform_eopm_gen` runs by default;
  (c) floor: the same arithmetic as (b), same layout, with no fault work (N+1 clean passes; the map
      threads run alongside as in (b), so CPU contention from them is inside the floor too);
  (d) ours with another exact path: (d1) K perturbed models batched with vmap, (d2) the other memory
      layout, (d3) --compile (G and the base model's passes through torch.compile; the first,
      compiling step is the untimed warm-up); (c') is the floor with the same batching as (d1)
      (K stacked copies of the clean weights);
  (e) CUDA only: (b) with --amp (bfloat16 autocast); (f) with --amp and channels_last; (g) with
      --compile --amp --channels-last;
  (h) batched fault injection (`train.eopm_fast.BatchedEOPMStep`): all N seeds' faulty weights in a
      few device ops per layer, then the N models one at a time (K=1); (h2) the same with the N
      perturbed passes as one vmap pass (K=N, default layout); (h3) (h2) with --compile;
  (i) CUDA only: the CUDA-graph step (`train.eopm_graph.GraphEOPMStep`, --eopm-step graph): (h) with the
      N perturbed passes captured once and replayed (the capture is in the untimed warm-up step);
      (i2) the same with K=N. On CPU these rows are skipped with a note.
Times are the median of --reps steps after one warm-up step; peak memory is the device's (CUDA).
The last line is `RESULT speedup_vs_original=(a)/(b) floor_ratio=(b)/(c) compile_speedup=(b)/(d3)
[amp_speedup=(b)/(e)] batched_speedup=(b)/(h) batched_all_speedup=(b)/(h2) [graph_speedup=(b)/(i)] ...`
for the first model.

    .venv/bin/python -m bench.eopm_step                      # CPU: batch 32
    python3 -m bench.eopm_step --device cuda                 # CUDA: batch 256, adds the --amp rows
    python3 -m bench.eopm_step --rows a,b,c --archs resnet18 # only some rows (each printed when done)
"""
from __future__ import annotations

import argparse
import statistics
import time
from typing import Callable, Dict, List

import numpy as np
import torch
import torch.nn.functional as F

from bitflip import FaultConfig, perturbed
from bitflip.ensemble import WeightedForward, chunks, stacked_forward
from bitflip.official import official_masks_np, official_period
from bitflip.prefetch import MAX_AHEAD, FaultPrefetcher, resolve_workers
from config import PerfConfig
from generators import get_generator
from models import get_model
from train.eopm import eopm_step
from train.eopm_fast import BatchedEOPMStep
from train.eopm_graph import GraphEOPMStep

BER, LAM, CLASSES = 0.01, 5.0, 10          # the paper's operating point and λ; CIFAR-10 classes
TRAIN_SEEDS = (0, 30000)                    # where EOPM draws its fault seeds


def released_step(gen, base, x, y, fault, seeds, lam, **_) -> None:
    """The released loop: per draw, G and M0 again, a freshly built map, (CE_0 + λ·CE_k) / N."""
    for seed in seeds:
        official_masks_np.cache_clear()
        official_period.cache_clear()
        fx = gen(x)
        loss0 = F.cross_entropy(base(fx), y)
        with perturbed(base, fault, int(seed)):
            loss_k = F.cross_entropy(base(fx), y)
            ((loss0 + lam * loss_k) / len(seeds)).backward()
    with torch.no_grad():
        base(gen(x)).argmax(1)                                  # the logging forward


def floor_step(gen, base, x, y, fault, seeds, lam, batch_models=1, **_) -> None:
    """(b)'s arithmetic without any fault: the clean model stands in for every perturbed one (with
    K > 1, K stacked copies of its clean weights under vmap, as (d1) runs them)."""
    fx = gen(x)
    z = fx.detach().requires_grad_(True)
    F.cross_entropy(base(z), y).backward()
    for chunk in chunks(seeds, batch_models):
        k = len(chunk)
        logits = base(z).unsqueeze(0) if k == 1 else stacked_forward(base, [WeightedForward(base).clean()] * k)(z)
        (F.cross_entropy(logits.flatten(0, 1), y.repeat(k), reduction="sum") / len(y) * lam / len(seeds)).backward()
    fx.backward(z.grad)


def our_step(gen, base, x, y, fault, seeds, lam, batch_models=1, amp=False, runner=None, **_) -> None:
    eopm_step(gen, base, x, y, fault, seeds, lam, batch_models, amp, runner)


def batched_step(gen, base, x, y, fault, seeds, lam, batch_models=1, amp=False, runner=None, fast=None, **_
                 ) -> None:
    fast(gen, base, x, y, fault, seeds, lam, batch_models, amp, runner)


def time_row(step: Callable, gen, base, x, y, fault, seed_plan: List[np.ndarray], reps: int,
             device: torch.device, workers: int = 0, **kw) -> Dict[str, float]:
    """Median seconds per step over `reps` steps after one warm-up, fresh seeds every step, maps
    built one step ahead in threads (the way `transform_eopm_gen` runs)."""
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    with FaultPrefetcher(FaultConfig("official", BER), workers) as prefetch:
        for i, seeds in enumerate(seed_plan[:reps + 1]):
            if i + 1 < len(seed_plan):
                prefetch.schedule(seed_plan[i + 1][:MAX_AHEAD])
            sync()
            t = time.perf_counter()
            prefetch.wait(seeds)
            gen.zero_grad(set_to_none=True)
            step(gen, base, x, y, fault, seeds, LAM, **kw)
            sync()
            if i:                                                # step 0 warms up
                times.append(time.perf_counter() - t)
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else float("nan")
    return {"s": statistics.median(times), "peak_gib": peak}


def bench_model(arch: str, args, device: torch.device) -> Dict[str, Dict[str, float]]:
    torch.manual_seed(0)
    base = get_model(arch, CLASSES).to(device).eval().requires_grad_(False)
    gen = get_generator("ConvL").to(device).train()
    x = torch.rand(args.batch, 3, 32, 32, device=device) * 2 - 1
    y = torch.randint(0, CLASSES, (args.batch,), device=device)
    fault = FaultConfig("official", BER)
    rng = np.random.default_rng(0)
    lo, hi = TRAIN_SEEDS

    def plan():                                                  # fresh seeds for every row and step
        return [rng.integers(lo, hi + 1, size=args.n) for _ in range(args.reps + 1)]

    cl = torch.channels_last
    default_cl = PerfConfig().use_channels_last                 # the layout a user gets by default
    layout = cl if default_cl else torch.contiguous_format
    other = torch.contiguous_format if default_cl else cl
    k = args.batch_models
    name = "channels_last" if other == cl else "contiguous (NCHW)"
    cuda = device.type == "cuda"

    def in_layout(fmt):
        return gen.to(memory_format=fmt), base.to(memory_format=fmt), x.contiguous(memory_format=fmt)

    # (id, label, what to time, memory layout, keyword arguments); run in this order
    specs = [("a", "(a) released-style", released_step, layout, {"reps": args.slow_reps, "workers": 0}),
             ("b", "(b) ours, default", our_step, layout, {}),
             ("c", "(c) floor, no fault work", floor_step, layout, {}),
             ("c2", f"(c') floor, K={k}", floor_step, layout, {"batch_models": k}),
             ("d1", f"(d1) ours, K={k} (vmap)", our_step, layout, {"batch_models": k}),
             ("d2", f"(d2) ours, {name}", our_step, other, {}),
             ("d3", "(d3) ours, --compile", our_step, layout, {"compile": True})]
    if cuda:
        specs += [("e", "(e) ours, --amp", our_step, layout, {"amp": True}),
                  ("f", "(f) ours, --amp --channels-last", our_step, cl, {"amp": True}),
                  ("g", "(g) ours, --compile --amp --channels-last", our_step, cl,
                   {"amp": True, "compile": True})]
    n, nchw = args.n, torch.contiguous_format                   # vmap runs the default layout only
    specs += [("h", "(h) batched faults, K=1", batched_step, layout, {"batched": True}),
              ("h2", f"(h2) batched faults, K={n} (vmap)", batched_step, nchw, {"batched": True, "batch_models": n}),
              ("h3", f"(h3) batched faults, K={n}, --compile", batched_step, nchw,
               {"batched": True, "batch_models": n, "compile": True})]
    if cuda:
        specs += [("i", "(i) CUDA-graph step, K=1", batched_step, layout, {"graph": True}),
                  ("i2", f"(i2) CUDA-graph step, K={n} (vmap)", batched_step, nchw, {"graph": True, "batch_models": n})]
    elif args.rows & {"i", "i2"}:
        print(f"  {arch} rows i, i2 (CUDA-graph step) skipped: CUDA only", flush=True)
    rows = {}
    for key, label, fn, fmt, kw in specs:
        if key not in args.rows:
            continue
        kw = dict(kw)
        reps, compiled, batched = kw.pop("reps", args.reps), kw.pop("compile", False), kw.pop("batched", False)
        graph = kw.pop("graph", False)
        workers = kw.pop("workers", args.prefetch_workers)   # (a) builds its maps itself: no threads
        g, b, xf = in_layout(fmt)
        t = time.perf_counter()
        if compiled:                      # as transform_eopm_gen --compile: G and the base passes compiled
            torch._dynamo.reset()
            g, kw["runner"] = torch.compile(g), WeightedForward(b, compile=True)
        if batched:                       # made once per base model, as a run would
            kw["fast"] = BatchedEOPMStep(b, fault, compile=compiled)
        if graph:                         # captured in the warm-up step, replayed in the timed ones
            kw["fast"] = GraphEOPMStep(b, fault)
        rows[key] = {"label": label, **time_row(fn, g, b, xf, y, fault, plan(), reps, device, workers, **kw)}
        if compiled:
            rows[key]["total_s"] = time.perf_counter() - t
        print(f"  {arch} {label}: {rows[key]['s']:.3f} s/step", flush=True)   # kept if a later row fails
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    ap.add_argument("--archs", default="resnet18,vgg16", help="comma list (default resnet18,vgg16)")
    ap.add_argument("--batch", type=int, default=None, help="images per step (default 32 CPU, 256 CUDA)")
    ap.add_argument("-N", dest="n", type=int, default=10, help="perturbed models per step (default 10)")
    ap.add_argument("--batch-models", type=int, default=None, help="K for row (d) (default: N on CUDA, 2 CPU)")
    ap.add_argument("--reps", type=int, default=None, help="timed steps per row (default 3 CPU, 10 CUDA)")
    ap.add_argument("--slow-reps", type=int, default=None, help="timed steps of row (a) (default 2 CPU, 5 CUDA)")
    ap.add_argument("--no-compile", action="store_true", help="skip the --compile rows (they compile first)")
    ap.add_argument("--rows", default=None, help="comma list of rows to run: a,b,c,c2,d1,d2,d3,h,h2,h3 (+ e,f,g,"
                                                  "i,i2 on CUDA); default all")
    ap.add_argument("--prefetch-workers", type=int, default=-1,
                    help="threads that build fault maps ahead (default: as transform_eopm_gen)")
    args = ap.parse_args()
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    args.batch = args.batch or (256 if cuda else 32)
    args.batch_models = args.batch_models or (args.n if cuda else 2)
    args.reps = args.reps or (10 if cuda else 3)
    args.slow_reps = args.slow_reps or (5 if cuda else 2)
    args.prefetch_workers = resolve_workers(args.prefetch_workers)
    if cuda:
        torch.backends.cudnn.benchmark = True
    name = torch.cuda.get_device_name(device) if cuda else f"CPU, {torch.get_num_threads()} threads"
    print(f"EOPM step: ConvL, N={args.n}, batch {args.batch}, official faults at BER {BER}; "
          f"torch {torch.__version__}; {name}; map threads {args.prefetch_workers}")
    args.rows = set((args.rows or "a,b,c,c2,d1,d2,d3,e,f,g,h,h2,h3,i,i2").split(","))
    if args.no_compile:
        args.rows -= {"d3", "g", "h3"}
    result = None
    for arch in args.archs.split(","):
        rows = bench_model(arch, args, device)
        ref, ours, floor = (rows[k]["s"] if k in rows else float("nan") for k in ("a", "b", "c"))
        print(f"\n{arch}\n{'row':48s} {'s/step':>8s} {'vs (a)':>7s} {'vs floor':>9s} {'peak GiB':>9s}")
        for r in rows.values():
            note = f"  (row incl. compiling: {r['total_s']:.0f} s)" if "total_s" in r else ""
            print(f"{r['label']:48s} {r['s']:8.3f} {ref / r['s']:6.2f}x {r['s'] / floor:8.2f} "
                  f"{r['peak_gib']:9.2f}{note}")
        if result is None:
            result = f"RESULT arch={arch} speedup_vs_original={ref / ours:.2f} floor_ratio={ours / floor:.2f}"
            for key, name in (("d3", "compile_speedup"), ("e", "amp_speedup"), ("h", "batched_speedup"),
                              ("h2", "batched_all_speedup"), ("h3", "batched_all_compiled_speedup"),
                              ("i", "graph_speedup"), ("i2", "graph_all_speedup")):
                if key in rows:
                    result += f" {name}={ours / rows[key]['s']:.2f}"
            fast = [r["s"] for k_, r in rows.items() if k_.startswith(("d", "f", "g", "h", "i"))]
            if fast:
                result += f" best_fast_path_speedup_vs_original={ref / min(fast):.2f}"
    print(result)


if __name__ == "__main__":
    main()

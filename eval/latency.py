"""Inference latency of the base model alone and behind each NeuralFuse generator (paper Table 9; docs/DESIGN.md §14).

Batch 1, eval mode, `torch.inference_mode`: `warmup` untimed forward passes (allocator, cuDNN
autotuning, caches), then `repeats` timed ones, each bracketed by `torch.cuda.synchronize` on CUDA so
the kernel time is inside the bracket; the result is the median in milliseconds (robust to the odd
slow repeat). The variants of a table are timed in rotating rounds (one pass of each per round), so a
drift of the machine during the measurement reaches all of them alike; each row also gives the IQR of
its passes, the noise to read an overhead against. The generator variant times F(x) followed by the
base model, as deployed. Weights are freshly initialised (latency does not depend on their values);
both networks are the 8-bit fake-quantized modules the rest of the code runs, so this measures this
implementation, not an accelerator. The paper does not name its device; its ResNet18 CIFAR-10 base is 5.84 ms and the
generators add 1.3-5.2 ms.

Example:
    python zs_main.py resnet18 latency cifar10 -G all --device cuda
    latency_rows("resnet18", ["ConvL"], "cifar10", torch.device("cpu"))  # [{'generator': None, 'ms': ..}, ..]
"""
from __future__ import annotations

import json
import statistics
import time
from typing import Callable, Dict, List, Mapping, Optional, Sequence

import torch
import torch.nn as nn

LATENCY_SEED = 0   # the one random input image (values do not change the latency)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def latency_samples(model: nn.Module, input_shape: Sequence[int], device: torch.device, warmup: int = 10,
                    repeats: int = 100, clock: Callable[[], float] = time.perf_counter) -> List[float]:
    """Milliseconds of each of `repeats` timed batch-1 forward passes of `model` on `device`, after
    `warmup` untimed ones. `input_shape` is one sample's shape, e.g. (3, 32, 32). `clock` (seconds)
    is read only around the timed passes. The model is put in eval mode on `device`."""
    return interleaved_samples({"model": model}, input_shape, device, warmup, repeats, clock)["model"]


def measure_latency(model: nn.Module, input_shape: Sequence[int], device: torch.device, warmup: int = 10,
                    repeats: int = 100, clock: Callable[[], float] = time.perf_counter) -> float:
    """Median latency in ms of a batch-1 forward pass (see `latency_samples`)."""
    return statistics.median(latency_samples(model, input_shape, device, warmup, repeats, clock))


def interleaved_samples(models: Mapping[str, nn.Module], input_shape: Sequence[int], device: torch.device,
                        warmup: int = 10, repeats: int = 100,
                        clock: Callable[[], float] = time.perf_counter) -> Dict[str, List[float]]:
    """Milliseconds of `repeats` timed batch-1 passes of each named model, taken in rounds: round i times
    one pass of every model, the order rotated by i, so a slow drift of the machine (clock frequency, a
    neighbour's load) reaches every model alike instead of whichever was timed last. Each model gets
    `warmup` untimed passes first."""
    for name, value, least in (("warmup", warmup, 0), ("repeats", repeats, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise ValueError(f"{name} must be an integer >= {least}, got {value!r}")
    names = list(models)
    nets = {n: models[n].to(device).eval() for n in names}
    x = torch.rand(1, *input_shape, generator=torch.Generator().manual_seed(LATENCY_SEED))
    x = (x * 2 - 1).to(device)                                   # (1, C, H, W) in [-1, 1]
    samples: Dict[str, List[float]] = {n: [] for n in names}
    with torch.inference_mode():
        for n in names:
            for _ in range(warmup):
                nets[n](x)
        _sync(device)
        for i in range(repeats):
            for n in names[i % len(names):] + names[:i % len(names)]:
                _sync(device)
                t0 = clock()
                nets[n](x)
                _sync(device)
                samples[n].append(1000.0 * (clock() - t0))
    return samples


def _quartiles(samples: List[float]) -> tuple:
    return tuple(statistics.quantiles(samples, n=4, method="inclusive")) if len(samples) > 1 else (samples[0],) * 3


def latency_table(base: nn.Module, generators: Mapping[str, nn.Module], input_shape: Sequence[int],
                  device: torch.device, warmup: int = 10, repeats: int = 100,
                  clock: Callable[[], float] = time.perf_counter) -> List[Dict]:
    """Paper Table 9 for given modules: the base model alone (generator None), then F(x) -> base for
    each named generator, timed interleaved (`interleaved_samples`). Each row: generator, ms (median),
    overhead_ms (vs. the base row), iqr_ms (interquartile range of its passes: the noise to read the
    overheads against)."""
    models = {None: base, **{name: nn.Sequential(gen, base) for name, gen in generators.items()}}  # F(x) -> base
    samples = interleaved_samples(models, input_shape, device, warmup, repeats, clock)
    quartiles = {name: _quartiles(ms) for name, ms in samples.items()}        # (q1, median, q3)
    return [{"generator": name, "ms": q[1], "overhead_ms": q[1] - quartiles[None][1], "iqr_ms": q[2] - q[0]}
            for name, q in quartiles.items()]


def latency_rows(arch: str, generators: Sequence[str], dataset: str, device: torch.device, warmup: int = 10,
                 repeats: int = 100, bits: Optional[int] = None) -> List[Dict]:
    """`latency_table` for base model `arch` and the named generators, built for `dataset`'s input size
    and classes. Each row also has base, dataset, image_size, device, warmup, repeats."""
    from datasets import get_dataset_info
    from generators import get_generator
    from models import get_model
    from models.quant import DEFAULT_BITS
    bits = DEFAULT_BITS if bits is None else bits
    info = get_dataset_info(dataset)
    base = get_model(arch, info.num_classes, bits=bits, input_size=info.image_size)
    gens = {g: get_generator(g, bits=bits, input_size=info.image_size) for g in generators}
    rows = latency_table(base, gens, (3, info.image_size, info.image_size), device, warmup, repeats)
    common = {"base": arch, "dataset": dataset, "image_size": info.image_size, "device": str(device),
              "warmup": warmup, "repeats": repeats}
    return [{**common, **r} for r in rows]


def format_latency_table(rows: List[Dict]) -> str:
    """Plain aligned text, one line per row."""
    if not rows:
        return ""
    r0 = rows[0]
    head = (f"{r0['base']} on {r0['dataset']} ({r0['image_size']} px), batch 1, {r0['device']}: median of "
            f"{r0['repeats']} passes each, interleaved, after {r0['warmup']} warm-up passes; an overhead "
            f"within the IQRs is noise")
    lines = [f"{'model':14s} {'ms':>9s} {'overhead ms':>12s} {'IQR ms':>9s}"]
    for r in rows:
        name = r["base"] if r["generator"] is None else f"+{r['generator']}"
        over = "-" if r["generator"] is None else f"{r['overhead_ms']:.3f}"
        lines.append(f"{name:14s} {r['ms']:9.3f} {over:>12s} {r['iqr_ms']:9.3f}")
    return "\n".join([head] + lines)


def run(cfgs) -> int:
    """The `latency` mode: arch, dataset, device from `cfgs`; generators from -G (cfgs.energy.generators,
    'all' for every one); warm-up / repeats from `cfgs.latency`, --json from `cfgs.energy`."""
    settings = cfgs.latency
    from common.runs import UsageError
    from common.session import resolve_device
    device = resolve_device(cfgs.run.device)
    try:
        rows = latency_rows(cfgs.run.arch, list(cfgs.energy.generators), cfgs.data.dataset, device,
                            settings.warmup, settings.repeats, bits=cfgs.bits)
    except ValueError as e:  # warm-up / repeats out of range
        raise UsageError(str(e)) from None
    print(json.dumps(rows) if cfgs.energy.json else format_latency_table(rows), flush=True)
    return 0

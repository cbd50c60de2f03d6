"""Fault models (docs/DESIGN.md §5): invariants, measured rates within binomial tolerances, parity with the
`official` recipe of docs/DESIGN.md §5, and perturbed models that restore exactly.

Tolerances are Z_TOL standard deviations of the count under the model's own distribution.

    .venv/bin/python -m pytest tests/test_bitflip.py -q -p no:cacheprovider
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn as nn

import bitflip
from bitflip import FaultConfig, inject, inject_cfg, list_fault_models, perturbed, rate_fault_models
from models.quant import quant_layers, quantize_

Z_TOL = 5.0                                     # std of the count allowed for every rate check
POPCOUNT = torch.tensor([bin(i).count("1") for i in range(256)], dtype=torch.int64)
ALL_MODELS = rate_fault_models()                # chipmap: tests/test_chipmap.py


def random_q(n: int, seed: int = 0, lo: int = -128, hi: int = 128) -> torch.Tensor:
    return torch.randint(lo, hi, (n,), dtype=torch.int8, generator=torch.Generator().manual_seed(seed))


def popcount(x: torch.Tensor) -> int:
    return int(POPCOUNT[x.view(torch.uint8).long()].sum())


def bit_counts(x: torch.Tensor) -> torch.Tensor:
    """(8,) how many bytes of x have bit j set."""
    u = x.view(torch.uint8).long()
    return torch.stack([((u >> j) & 1).sum() for j in range(8)])


def assert_binomial(count: int, trials: int, p: float, what: str):
    sd = math.sqrt(trials * p * (1 - p))
    assert abs(count - trials * p) <= Z_TOL * sd + 1, f"{what}: {count} vs {trials * p:.1f} ± {sd:.1f}"


# ----------------------------------------------------------------------------- config and registry
def test_registry_and_defaults():
    assert ALL_MODELS[0] == "official" and set(ALL_MODELS) == {"official", "stuckat", "flip"}
    assert set(list_fault_models()) == {*ALL_MODELS, "chipmap"}
    cfg = FaultConfig()
    assert (cfg.model, cfg.ber, cfg.position, cfg.bits) == ("official", 0.01, -1, 8)


@pytest.mark.parametrize("kwargs, word", [(dict(model="nope"), "official"), (dict(ber=1.0), "ber"),
                                          (dict(ber=-0.1), "ber"), (dict(position=8), "position"),
                                          (dict(position=4, bits=4), "position"), (dict(bits=9), "bits")])
def test_config_validation(kwargs, word):
    with pytest.raises(ValueError, match=word):
        FaultConfig(**kwargs)


def test_bad_inputs():
    with pytest.raises(ValueError, match="int8"):
        inject(torch.zeros(4), "flip", 0.1, seed=0)
    with pytest.raises(ValueError, match="seed"):
        inject(random_q(4), "flip", 0.1, seed=-1)


# ----------------------------------------------------------------------------- invariants, all models
@pytest.mark.parametrize("model", ALL_MODELS)
def test_ber0_identity_and_input_untouched(model):
    q = random_q(5000).view(50, 100)
    before = q.clone()
    assert torch.equal(inject(q, model, 0.0, seed=1), q)
    out = inject(q, model, 0.05, seed=1)
    assert torch.equal(q, before) and out.shape == q.shape and out.dtype == torch.int8


@pytest.mark.parametrize("model", ALL_MODELS)
def test_seeds_reproducible_and_distinct(model):
    q = random_q(20000).view(20, 10, 10, 10)[:, ::2]            # non-contiguous input
    a, b = inject(q, model, 0.01, seed=7), inject(q, model, 0.01, seed=7)
    assert torch.equal(a, b) and not torch.equal(a, inject(q, model, 0.01, seed=8))
    assert torch.equal(a, inject_cfg(q, FaultConfig(model, 0.01), seed=7))
    strided = random_q(40000)[::2]                              # 1-D, non-contiguous
    assert torch.equal(inject(strided, model, 0.01, seed=7), inject(strided.clone(), model, 0.01, seed=7))


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("model", ALL_MODELS)
@pytest.mark.parametrize("bits, position", [(8, -1), (8, 3), (5, -1)])
def test_same_bytes_on_cuda(model, bits, position):
    lim = 2 ** (bits - 1)
    q = random_q(3_000_000, lo=-lim, hi=lim)                    # > one official period
    cpu = inject(q, model, 0.02, seed=11, position=position, bits=bits, layer_index=2)
    gpu = inject(q.cuda(), model, 0.02, seed=11, position=position, bits=bits, layer_index=2)
    assert gpu.is_cuda and torch.equal(cpu, gpu.cpu())


# ----------------------------------------------------------------------------- flip
@pytest.mark.parametrize("ber", [1e-3, 1e-2, 0.1])
def test_flip_rate_and_positions(ber):
    n = 2 ** 17                                                 # 1,048,576 bits
    q = random_q(n)
    diff = q ^ inject(q, "flip", ber, seed=3)
    assert_binomial(popcount(diff), 8 * n, ber, "flipped bits")
    for j, c in enumerate(bit_counts(diff).tolist()):           # every bit position at the same rate
        assert_binomial(c, n, ber, f"bit {j}")


@pytest.mark.parametrize("model", ALL_MODELS)
@pytest.mark.parametrize("k", [0, 5, 7])
def test_position_only_touches_bit_k(model, k):
    n = 2 ** 17
    q = random_q(n)
    diff = q ^ inject(q, model, 0.05, seed=4, position=k)
    assert int((diff.view(torch.uint8) & (0xFF ^ (1 << k))).count_nonzero()) == 0
    if model == "flip":
        assert_binomial(popcount(diff), n, 0.05, f"flips at bit {k}")
    elif model == "stuckat":
        assert_binomial(popcount(diff), n, 0.05 / 2, f"stuck flips at bit {k}")
    else:                                                       # 2^17 weights = 512 rows x 16 cells
        assert popcount(diff) > 0


# ----------------------------------------------------------------------------- stuck-at physics
@pytest.mark.parametrize("model", ["stuckat", "official"])
def test_stuck_cells_are_data_independent(model):
    """q' = (q AND NOT S0) OR S1 with S1 read from all-0 weights and S0 from all-1 weights."""
    n = 70_000
    zeros, ones = torch.zeros(n, dtype=torch.int8), torch.full((n,), -1, dtype=torch.int8)
    s1 = inject(zeros, model, 0.05, seed=9, layer_index=1)      # stuck-at-1 only sets bits
    s0 = ~inject(ones, model, 0.05, seed=9, layer_index=1)      # stuck-at-0 only clears bits
    assert popcount(s1) > 0 and popcount(s0) > 0 and popcount(s1 & s0) == 0
    q = random_q(n)
    assert torch.equal(inject(q, model, 0.05, seed=9, layer_index=1), (q & ~s0) | s1)


def test_stuckat_rate():
    n, ber = 2 ** 17, 0.02
    q = random_q(n)                                             # uniform bytes: a stuck cell flips w.p. 1/2
    assert_binomial(popcount(q ^ inject(q, "stuckat", ber, seed=5)), 8 * n, ber / 2, "stuckat flips")
    s1 = inject(torch.zeros(n, dtype=torch.int8), "stuckat", ber, seed=5)
    assert_binomial(popcount(s1), 8 * n, ber / 2, "stuck-at-1 cells")


# ----------------------------------------------------------------------------- official
OFFICIAL_N = 8192 * 256                                        # one full pass over the map


def test_official_rates():
    ber = 0.01
    s1 = inject(torch.zeros(OFFICIAL_N, dtype=torch.int8), "official", ber, seed=2)
    s0 = ~inject(torch.full((OFFICIAL_N,), -1, dtype=torch.int8), "official", ber, seed=2)
    cells = 8192 * 128                                          # independent cells: first 16 of each block
    distinct = lambda m: m.view(8192, 16, 16)[:, 0]             # noqa: E731
    assert_binomial(popcount(distinct(s1)) + popcount(distinct(s0)), cells, ber, "faulty cells")
    q = random_q(OFFICIAL_N)
    flips = popcount(q ^ inject(q, "official", ber, seed=2))
    # each cell is used by 16 weights: count = sum_c F_c * D_c, F ~ Bern(ber), D ~ Binom(16, 1/2)
    var = cells * (ber * (4 + 64) - 64 * ber ** 2)
    assert abs(flips - 8 * OFFICIAL_N * ber / 2) <= Z_TOL * math.sqrt(var), flips


@pytest.mark.parametrize("bits", [8, 4])
def test_official_tiling(bits):
    wpr = 128 // bits
    block = wpr * wpr
    n = 8192 * block + 300
    s1 = inject(torch.zeros(n, dtype=torch.int8), "official", 0.05, seed=6, bits=bits)
    head = s1[:8192 * block].view(8192, wpr, wpr)              # weights i and i + wpr share a cell
    assert torch.equal(head, head[:, :1].expand_as(head))
    assert torch.equal(s1[8192 * block:], s1[:300])             # past row 8191 the map wraps to row 0
    part = inject(torch.zeros(1000, dtype=torch.int8), "official", 0.05, seed=6, bits=bits, layer_index=5)
    assert torch.equal(part, s1[:1000])                         # every layer starts at row 0


def reference_official(q: np.ndarray, seed: int, ber: float, rows: int) -> np.ndarray:
    """docs/DESIGN.md §5 written out with loops, for the first `rows` map rows (q holds rows·256 weights)."""
    faulty = np.random.RandomState(seed).rand(8192, 128) < ber
    stuck = np.random.RandomState(seed + 1).rand(8192, 128)
    out = q.copy()
    for r in range(rows):
        s1, s0 = [0] * 16, [0] * 16
        for cell in range(128):
            if faulty[r, cell]:
                k, j = divmod(cell, 8)
                if stuck[r, cell] < 0.5:
                    s1[k] |= 1 << j
                else:
                    s0[k] |= 1 << j
        for i in range(r * 256, (r + 1) * 256):
            byte = int(q[i]) & 0xFF
            new = (byte & ~s0[i % 16] & 0xFF) | s1[i % 16]
            out[i] = new - 256 if new > 127 else new
    return out


@pytest.mark.parametrize("seed", [0, 1, 50003])
def test_official_matches_reference(seed):
    rows, ber = 6, 0.1
    q = random_q(rows * 256, seed=seed)
    expect = reference_official(q.numpy(), seed, ber, rows)
    got = inject(q, "official", ber, seed=seed)
    assert (q.numpy() != expect).any() and np.array_equal(got.numpy(), expect)


# ----------------------------------------------------------------------------- reduced precision
@pytest.mark.parametrize("model", ALL_MODELS)
@pytest.mark.parametrize("bits", [4, 6])
def test_reduced_precision(model, bits):
    lim = 2 ** (bits - 1)
    q = random_q(40_000, lo=-lim, hi=lim)
    out = inject(q, model, 0.1, seed=12, bits=bits)
    assert int(out.min()) >= -lim and int(out.max()) < lim     # still a b-bit value
    low = (1 << bits) - 1
    changed = (q ^ out).view(torch.uint8)
    assert (changed & low).count_nonzero() > 0
    sign_changed = ((changed >> (bits - 1)) & 1).bool()        # high bits follow the b-bit sign bit
    assert torch.equal((out < 0) != (q < 0), sign_changed)
    if model == "flip":
        assert_binomial(popcount(changed & low), bits * q.numel(), 0.1, "flips in low bits")


# ----------------------------------------------------------------------------- perturbed models
def tiny_model() -> nn.Module:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 6 * 6, 10))
    return quantize_(net).eval()


@pytest.mark.parametrize("model_name", ALL_MODELS)
def test_perturbed_model_restores_exactly(model_name):
    net, x = tiny_model(), torch.randn(4, 3, 8, 8)
    state = {k: v.clone() for k, v in net.state_dict().items()}
    clean_q = [layer.int8_weight()[0] for _, layer in quant_layers(net)]
    with torch.no_grad():
        y0 = net(x)
        with perturbed(net, FaultConfig(model_name, 0.0), seed=1):
            assert torch.equal(net(x), y0)
        with perturbed(net, FaultConfig(model_name, 0.01), seed=1):
            assert all(layer.is_faulty for _, layer in quant_layers(net))
            assert not torch.equal(net(x), y0)
        with pytest.raises(RuntimeError, match="boom"):
            with perturbed(net, FaultConfig(model_name, 0.01), seed=2):
                raise RuntimeError("boom")
        assert torch.equal(net(x), y0)
    assert not any(layer.is_faulty for _, layer in quant_layers(net))
    assert all(torch.equal(v, state[k]) for k, v in net.state_dict().items())
    assert all(torch.equal(layer.int8_weight()[0], q) for (_, layer), q in zip(quant_layers(net), clean_q))


@pytest.mark.parametrize("model_name", ALL_MODELS)
def test_layer_streams(model_name):
    """flip/stuckat: identical layers get independent errors; official: the same map on every layer."""
    net = quantize_(nn.Sequential(nn.Linear(64, 64), nn.Linear(64, 64)))
    with torch.no_grad():
        net[1].weight.copy_(net[0].weight)
    bitflip.perturb(net, FaultConfig(model_name, 0.05), seed=3)
    same = torch.equal(net[0].fault_weight, net[1].fault_weight)
    bitflip.clear_faults(net)
    assert same == (model_name == "official")


def test_bits_mismatch_is_refused():
    net = quantize_(nn.Sequential(nn.Linear(4, 4)), bits=4)
    with pytest.raises(ValueError, match="bits"):
        with perturbed(net, FaultConfig("flip", 0.01), seed=0):
            pass
    assert not net[0].is_faulty


def test_hooks_live_in_the_registry_metadata():
    """Each fault model's hooks are named in its register call (no function attributes)."""
    from bitflip.faults import FAULT_MODELS, check_seed
    for name in list_fault_models():
        meta = FAULT_MODELS.meta(name)
        assert ("tiled" in meta) != ("cells" in meta), name          # exactly one batched form
        assert not hasattr(FAULT_MODELS.get(name), "prepare")
    assert {n for n in list_fault_models() if "prepare" in FAULT_MODELS.meta(n)} == {"official", "chipmap"}
    assert check_seed(np.int64(7)) == 7 and check_seed(2 ** 32 - 2) == 2 ** 32 - 2
    for bad in (-1, 2 ** 32 - 1, 1.5, "3", None):
        with pytest.raises(ValueError, match="seed"):
            check_seed(bad)

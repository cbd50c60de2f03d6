"""SECDED (72,64) decoding of the weight SRAM (bitflip/ecc.py, docs/DESIGN.md §14): every single error fixed, no
double error fixed, 3+ errors exactly as a matrix-based reference decoder does, the binomial rate of words left
wrong, deterministic check-bit faults."""
import itertools
import math

import numpy as np
import pytest
import torch

from bitflip import FaultConfig, inject_cfg
from bitflip.ecc import (CLEAN, CODE_BITS, CORRECTED, DATA_POSITIONS, DETECTED, check_bit_errors,
                         encode_check_bits, inject_ecc, parity_check_matrix, secded, secded_decode)

H = parity_check_matrix()                                   # (8, 72)
DATA_COLS = np.array(DATA_POSITIONS)                        # codeword position of data bit d
CHECK_COLS = np.array([1, 2, 4, 8, 16, 32, 64, 0])          # codeword position of check-byte bit i
SIGMAS = 5                                                  # statistical tolerance in binomial std


def _weights(n: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(-127, 128, (n,), generator=torch.Generator().manual_seed(seed), dtype=torch.int8)


def _codeword(q8: np.ndarray, check: int) -> np.ndarray:
    """The 72 stored bits of one word (8 int8 weights) and its check byte, by position."""
    data = np.unpackbits(q8.view(np.uint8), bitorder="little")              # (64,) data bit d = 8k + j
    cw = np.zeros(CODE_BITS, dtype=np.uint8)
    cw[DATA_COLS] = data
    cw[CHECK_COLS] = np.unpackbits(np.array([check], dtype=np.uint8), bitorder="little")
    return cw


def _errors_to_tensors(clean_word: torch.Tensor, err_positions) -> tuple:
    """Faulty word (int8 (8,)) and check error byte for errors at codeword positions `err_positions`."""
    e = np.zeros(CODE_BITS, dtype=np.uint8)
    e[list(err_positions)] = 1
    data_err = np.packbits(e[DATA_COLS], bitorder="little").view(np.int8)  # (8,)
    check_err = int(np.packbits(e[CHECK_COLS], bitorder="little")[0])
    return clean_word ^ torch.from_numpy(data_err), check_err


def _reference_decode(cw_read: np.ndarray) -> np.ndarray:
    """Textbook SECDED on one received codeword with the matrix H: syndrome = H·r mod 2."""
    syn = (H.astype(np.int64) @ cw_read) % 2                               # (8,)
    s, odd = int(sum(int(b) << i for i, b in enumerate(syn[:7]))), int(syn[7])
    out = cw_read.copy()
    if odd and s < CODE_BITS:
        out[s] ^= 1
    return out


def test_encoding_is_a_codeword():
    q = _weights(8 * 200, seed=1)
    checks = encode_check_bits(q)
    assert checks.shape == (200,) and checks.dtype == torch.uint8
    for w in range(0, 200, 7):
        cw = _codeword(q[8 * w:8 * w + 8].numpy(), int(checks[w]))
        assert not ((H.astype(np.int64) @ cw) % 2).any()                   # H·c = 0
    # distance >= 4 in practice: changing one data bit changes at least 3 check bits
    flip1 = q.clone()
    flip1[0] ^= 1
    assert bin(int(checks[0]) ^ int(encode_check_bits(flip1)[0])).count("1") >= 3


def test_zero_errors_is_identity():
    q = _weights(1003, seed=2).view(17, 59)                                # a partial last word
    r = secded_decode(q, q.clone(), torch.zeros(126, dtype=torch.uint8))
    assert torch.equal(r.q, q) and r.q.shape == q.shape
    assert (r.status == CLEAN).all() and not r.check_errors.any()


def test_every_single_error_position_is_corrected():
    word = _weights(8, seed=3)
    clean = word.repeat(CODE_BITS)                                          # one word per position
    faulty, checks = clean.clone(), torch.zeros(CODE_BITS, dtype=torch.uint8)
    for p in range(CODE_BITS):
        faulty[8 * p:8 * p + 8], checks[p] = _errors_to_tensors(word, [p])
    assert (faulty != clean).view(CODE_BITS, 8).any(1).sum() == 64         # 64 data positions, 8 check
    r = secded_decode(clean, faulty, checks)
    assert torch.equal(r.q, clean)
    assert (r.status == CORRECTED).all() and not r.check_errors.any()


def test_no_double_error_is_corrected():
    pairs = list(itertools.combinations(range(CODE_BITS), 2))             # all 2,556
    word = _weights(8, seed=4)
    clean = word.repeat(len(pairs))
    faulty, checks = clean.clone(), torch.zeros(len(pairs), dtype=torch.uint8)
    for i, pair in enumerate(pairs):
        faulty[8 * i:8 * i + 8], checks[i] = _errors_to_tensors(word, pair)
    r = secded_decode(clean, faulty, checks)
    assert (r.status == DETECTED).all()
    assert torch.equal(r.q, faulty) and torch.equal(r.check_errors, checks)  # passed through as read


@pytest.mark.parametrize("n_errors", [3, 4, 5])
def test_multi_errors_match_reference_decoder(n_errors):
    """3+ errors: the vectorised decoder does exactly what the matrix decoder does (miscorrection included)."""
    rng = np.random.default_rng(n_errors)
    n = 300
    words = _weights(8 * n, seed=5)
    checks = encode_check_bits(words)
    faulty, errs, expect = words.clone(), torch.zeros(n, dtype=torch.uint8), []
    for w in range(n):
        pos = rng.choice(CODE_BITS, n_errors, replace=False)
        faulty[8 * w:8 * w + 8], errs[w] = _errors_to_tensors(words[8 * w:8 * w + 8], pos)
        read = _codeword(faulty[8 * w:8 * w + 8].numpy(), int(checks[w]) ^ int(errs[w]))
        expect.append(_reference_decode(read))
    r = secded_decode(words, faulty, errs)
    for w in range(n):
        got = _codeword(r.q[8 * w:8 * w + 8].numpy(), int(checks[w]) ^ int(r.check_errors[w]))
        assert np.array_equal(got, expect[w]), w
    left = [int((e != _codeword(words[8 * w:8 * w + 8].numpy(), int(checks[w]))).sum())
            for w, e in enumerate(expect)]
    assert min(left) >= 2                                                   # never restored
    if n_errors % 2:                                                        # odd: the decoder acts
        assert (r.status != DETECTED).any() and set(left) <= {n_errors - 1, n_errors, n_errors + 1}
    else:                                                                   # even: P = 0, nothing flipped
        assert not (r.status == CORRECTED).any() and set(left) == {n_errors}


@pytest.mark.parametrize("model", ["flip", "stuckat", "official"])
def test_words_left_wrong_match_binomial(model):
    """A word's codeword stays wrong iff 2+ of its 72 cells err: P(K >= 2), K ~ Bin(72, p_err)."""
    n_words, ber = 8 * 8192, 0.01                           # a quarter of the `official` map period
    p_err = ber if model == "flip" else ber / 2             # a stuck cell errs where it differs: half
    q = _weights(8 * n_words, seed=6)
    cfg = FaultConfig(model, ber)
    r = secded(q, inject_cfg(q, cfg, seed=11), cfg, seed=11)
    wrong = (r.q != q).view(n_words, 8).any(1) | (r.check_errors != 0)
    p_wrong = 1 - (1 - p_err) ** CODE_BITS - CODE_BITS * p_err * (1 - p_err) ** (CODE_BITS - 1)
    # `official`: the 16 words of a map row with the same word column share their cells, so only
    # n_words / 16 of them are independent draws (conservative: their data, hence stuck errors, differ)
    n_eff = n_words // 16 if model == "official" else n_words
    tol = SIGMAS * math.sqrt(p_wrong * (1 - p_wrong) / n_eff)
    assert wrong.float().mean().item() == pytest.approx(p_wrong, abs=tol)
    data_wrong = (r.q != q).view(n_words, 8).any(1).float().mean().item()
    assert data_wrong <= wrong.float().mean().item() and data_wrong > 0


def test_check_bit_faults_are_deterministic_and_at_the_ber():
    q = _weights(8 * 50_000, seed=7)
    cfg = FaultConfig("flip", 0.02)
    a, b = check_bit_errors(q, cfg, 5, 3), check_bit_errors(q, cfg, 5, 3)
    assert torch.equal(a, b) and not torch.equal(a, check_bit_errors(q, cfg, 6, 3))
    assert not torch.equal(a, check_bit_errors(q, cfg, 5, 4))              # per-layer streams
    n_cells = 8 * 50_000
    rate = np.unpackbits(a.numpy()).sum() / n_cells
    assert rate == pytest.approx(0.02, abs=SIGMAS * math.sqrt(0.02 * 0.98 / n_cells))
    stuck = check_bit_errors(q, FaultConfig("stuckat", 0.02), 5, 3)
    rate = np.unpackbits(stuck.numpy()).sum() / n_cells                    # stuck cells err half the time
    assert rate == pytest.approx(0.01, abs=SIGMAS * math.sqrt(0.01 * 0.99 / n_cells))
    off = check_bit_errors(q, FaultConfig("official", 0.02), 5, 0)
    assert torch.equal(off, check_bit_errors(q, FaultConfig("official", 0.02), 5, 9))  # one map, all layers
    assert not check_bit_errors(q, FaultConfig("flip", 0.0), 5).any()


def test_stuck_check_cells_err_only_where_the_stored_bit_differs():
    from bitflip.ecc import check_cell_faults
    n_words, cfg = 30_000, FaultConfig("stuckat", 0.05)
    faulty, stuck1 = (torch.from_numpy(a) for a in check_cell_faults(n_words, cfg, seed=4))
    zeros, q = torch.zeros(8 * n_words, dtype=torch.int8), _weights(8 * n_words, seed=9)
    assert not encode_check_bits(zeros).any()                               # all-zero words store 0 checks
    e0, eq = check_bit_errors(zeros, cfg, 4), check_bit_errors(q, cfg, 4)
    assert torch.equal(e0, faulty & stuck1)                                 # only stuck-at-1 cells err on 0
    assert not torch.equal(e0, eq)
    assert not ((e0 ^ eq) & ~encode_check_bits(q)).any()             # differ only where stored bits do
    assert not (eq & ~faulty).any()                                         # never a healthy cell


def test_official_check_map_is_tiled_like_the_data_map():
    from bitflip.ecc import check_cell_faults
    n_words = 2 * 32 * 8192 + 64                                            # wraps past one map period
    faulty, stuck1 = check_cell_faults(n_words, FaultConfig("official", 0.05), seed=3)
    period = 32 * 8192
    assert np.array_equal(faulty[period:], faulty[:n_words - period])
    # words 0..31 (weights 0..255) read map row 0, word column w mod 2; words 32..63 read row 1
    assert (faulty[:32].reshape(16, 2) == faulty[:2]).all() and (stuck1[:32].reshape(16, 2) == stuck1[:2]).all()
    rows = faulty[:period].reshape(8192, 16, 2)[:, 0, :]                    # (row, word column)
    assert len({bytes(r) for r in rows}) > 100                              # rows differ from each other


def test_inject_ecc_reduces_errors_and_refuses_what_it_does_not_model():
    q = _weights(8 * 20_000, seed=8).view(400, 400)
    cfg = FaultConfig("flip", 0.001)
    raw, fixed = inject_cfg(q, cfg, seed=2), inject_ecc(q, cfg, seed=2)
    assert fixed.shape == q.shape and fixed.dtype == torch.int8
    assert (fixed != q).sum() * 10 < (raw != q).sum()                      # P(K>=2) << P(K>=1) at 0.1%
    for bad in (FaultConfig("flip", 0.01, position=3), FaultConfig("flip", 0.01, bits=4)):
        with pytest.raises(ValueError, match="ECC needs"):
            inject_ecc(q, bad, seed=0)
    with pytest.raises(ValueError, match="int8 of one shape"):
        secded_decode(q, q.view(-1), torch.zeros(20_000, dtype=torch.uint8))
    with pytest.raises(ValueError, match="check_errors"):
        secded_decode(q, q, torch.zeros(7, dtype=torch.uint8))

"""SECDED error correction of the weight SRAM: a (72,64) extended Hamming code per 64-bit word (docs/DESIGN.md §15).

The standard single-error-correcting, double-error-detecting code of server memory (Hamming 1950,
extended by an overall parity bit; Hsiao 1970 is a variant with the same guarantees): every word of
8 consecutive int8 weights (64 data bits, PyTorch contiguous order, the last word of a layer zero-
padded) is stored with 8 check bits, 72 SRAM cells in all.

Code layout. Codeword positions 0..71: position 0 is the overall parity bit; positions 1, 2, 4, ..,
64 hold the seven Hamming check bits; the other 64 positions (3, 5, 6, 7, 9, ..) hold data bits
d0..d63 in increasing order, data bit 8k + j = bit j of weight k of the word (bit 0 = LSB). The
parity-check matrix H (8 x 72) has column p = (binary p, 1): Hamming check bit i makes the XOR of all
positions with bit i set even, the overall parity bit makes the whole codeword's parity even.
Stored check byte: bit i (0..6) = Hamming check at position 2^i, bit 7 = overall parity.

Decoder (what a real SECDED decoder does with the 7-bit syndrome s = XOR of the positions in error
and the overall parity P of the errors; all of it exact, including 3+ errors):
    s = 0, P = 0    no error seen: the data pass as read
    P = 1, s <= 71  "single error": flip position s (s = 0: the parity bit); with 3, 5, .. errors
                    this is a miscorrection, i.e. one more wrong bit or a wrong bit flipped back
    P = 1, s > 71   syndrome names no position: detected, uncorrectable; data pass as read
    P = 0, s != 0   double error (or any even count): detected, uncorrectable; data pass as read
So every word with at most one wrong bit among its 72 comes out right, and every word with two or
more comes out with at least one wrong bit in its codeword (data or check bits).

Faults in the check bits. They are SRAM cells at the same BER. `check_bit_errors` draws them from
numpy's PCG64 seeded with (ECC_STREAM, fault seed, layer index, purpose), so the same (fault model,
ber, seed, layer) gives the same bits on any device, independent of the data-bit streams of
bitflip/sampled.py. Physics as the data's fault model: `flip` XORs each check cell with prob. ber;
`stuckat` / `official` stick a faulty cell at 0 or 1 (prob. 1/2 each), an error only where the
stored check bit differs. For `official` the check cells form one map per seed, tiled like the
data map (each 128-cell row of 16 weights = 2 words gets 2 x 8 check cells; word w reads map row
(w // 32) mod 8192, word column w mod 2; every layer restarts at row 0). Fault position `-pos` and
b < 8 bit weights are not modelled (a word is 8 full int8 weights).

Use. `ECC_DECODERS` maps an --ecc name to its decoder (clean, faulty, cfg, seed, layer_index) ->
SecdedResult; `bitflip.apply.faulty_int8` runs it on every layer after the faults when cfg.ecc is not
"none", so every path that perturbs a model (evaluation, EOPM, samples, fault-aware training) reads
the weights as decoded. `word_counts` turns one layer's decoding into counts of 72-bit words (wrong
before / after decoding, corrected), which the evaluation records.

Example:
    from bitflip.ecc import inject_ecc
    q2 = inject_ecc(q, FaultConfig("official", 0.01), seed=50000)  # int8 of q's shape, as decoded
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Callable, Dict, Tuple

import numpy as np
import torch

from bitflip.faults import FaultConfig, inject_cfg
from bitflip.official import MAP_ROWS
from bitflip.sampled import faulty_cells

WORD_WEIGHTS = 8                  # int8 weights per 64-bit data word
CODE_BITS = 72                    # stored cells per word: 64 data + 8 check
SYNDROME_MASK = 0x7F              # the seven Hamming syndrome bits of a packed (syndrome | P << 7) byte
PARITY_BIT = 0x80
CLEAN, CORRECTED, DETECTED = 0, 1, 2   # decoder status per word
ECC_STREAM = 3                    # seed-sequence word; bitflip/sampled.py uses 1 (flip) and 2 (stuckat)
POSITIONS, VALUES = 0, 1          # last seed-sequence word: which cells are faulty / their stuck values
TILED_WORDS = 2                   # `official`: words per 128-cell map row (16 weights)
TILE_PERIOD_WORDS = 32            # `official`: words per map row period (256 weights)
# fault model -> (stuck-at physics, tiled like the official map)
CHECK_CELL_PHYSICS = {"official": (True, True), "stuckat": (True, False), "flip": (False, False)}

# Position of data bit d in the codeword: the 64 positions in 1..71 that are not powers of two.
DATA_POSITIONS = tuple(p for p in range(1, CODE_BITS) if p & (p - 1))


def parity_check_matrix() -> np.ndarray:
    """H, uint8 (8, 72): column p = the 7 bits of p (rows 0..6) and a 1 (row 7, overall parity)."""
    pos = np.arange(CODE_BITS)
    return np.vstack([(pos >> i) & 1 for i in range(7)] + [np.ones(CODE_BITS, dtype=np.int64)]).astype(np.uint8)


def _tables() -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(data, check, fix_data, fix_check) lookup tables, uint8, on the CPU.

    data (8, 256): for weight slot k of a word and an error byte b, syndrome | P << 7 of those errors;
    check (256,): the same for an error byte of the 8 check bits; fix_data (128, 8): the data bits a
    single-error correction at syndrome s flips (per weight slot); fix_check (128,): the check bits.
    """
    bits = (np.arange(256)[:, None] >> np.arange(8)) & 1                     # (256, 8): bit j of byte b
    pos = np.array(DATA_POSITIONS, dtype=np.int64).reshape(WORD_WEIGHTS, 8)  # (slot k, bit j)
    data = np.zeros((WORD_WEIGHTS, 256), dtype=np.int64)
    for j in range(8):                                                       # XOR over the set bits
        data ^= bits[:, j][None, :] * pos[:, j][:, None]
    data |= (bits.sum(1) & 1)[None, :] << 7                                  # overall parity
    check = (np.arange(256) & SYNDROME_MASK) | ((bits.sum(1) & 1) << 7)      # 2^i -> syndrome bit i
    fix_data = np.zeros((128, WORD_WEIGHTS), dtype=np.uint8)
    for d, p in enumerate(DATA_POSITIONS):
        fix_data[p, d // 8] = 1 << (d % 8)
    fix_check = np.zeros(128, dtype=np.uint8)
    fix_check[0] = PARITY_BIT                                                # s = 0 with P = 1
    for i in range(7):
        fix_check[1 << i] = 1 << i
    return tuple(torch.from_numpy(t.astype(np.uint8)) for t in (data, check, fix_data, fix_check))


@functools.lru_cache(maxsize=8)
def _tables_on(device: torch.device) -> Tuple[torch.Tensor, ...]:
    return tuple(t.to(device) for t in _tables())


def _words(q: torch.Tensor) -> torch.Tensor:
    """int8 weights (any shape) -> uint8 (W, 8) words, the last one zero-padded."""
    flat = q.reshape(-1).contiguous().view(torch.uint8)                      # (n,)
    pad = -flat.numel() % WORD_WEIGHTS
    if pad:
        flat = torch.cat([flat, flat.new_zeros(pad)])
    return flat.view(-1, WORD_WEIGHTS)                                       # (W, 8)


def _xor_fold(x: torch.Tensor) -> torch.Tensor:
    """XOR over the last dimension of a contiguous uint8 (W, 8) tensor -> uint8 (W,).

    The 8 bytes are read as one int64 and folded by shifts (3 whole-tensor ops, no strided slices);
    the XOR of all 8 bytes lands in the lowest byte whatever the byte order.
    """
    x = x.contiguous().view(torch.int64).view(-1)                            # (W,)
    x = x ^ (x >> 32)
    x = x ^ (x >> 16)
    x = x ^ (x >> 8)
    return (x & 0xFF).to(torch.uint8)


def _lookup(table: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """table[index] for a uint8 index tensor (int32 index_select: the fast gather on the CPU)."""
    return table.index_select(0, index.reshape(-1).int()).view(*index.shape, *table.shape[1:])


def _syndrome_of_data(words: torch.Tensor) -> torch.Tensor:
    """uint8 (W,) = syndrome | P << 7 of a (W, 8) uint8 bit pattern placed in the data positions."""
    data, _, _, _ = _tables_on(words.device)
    slots = torch.arange(WORD_WEIGHTS, device=words.device, dtype=torch.int32) * 256   # (8,)
    return _xor_fold(_lookup(data.view(-1), words.int() + slots))            # (W, 8) -> (W,)


def encode_check_bits(q: torch.Tensor) -> torch.Tensor:
    """The 8 check bits stored with each word of int8 weights q: uint8 (W,), W = ceil(n / 8)."""
    v = _syndrome_of_data(_words(q))                                         # Hamming bits | data parity
    hamming = v & SYNDROME_MASK
    _, check, _, _ = _tables_on(q.device)
    # overall parity bit: makes the parity of all 72 bits even
    return hamming | ((v ^ _lookup(check, hamming)) & PARITY_BIT)


@dataclass(frozen=True)
class SecdedResult:
    """What the decoder delivers: `q` the int8 weights (shape of the input), and per word (W,):
    `status` (CLEAN / CORRECTED / DETECTED as the decoder sees it), `check_errors` the check-bit
    errors left after decoding (uint8; 0 where the codeword's check part is right), `read_errors` the
    check-bit errors as read, before decoding."""
    q: torch.Tensor
    status: torch.Tensor
    check_errors: torch.Tensor
    read_errors: torch.Tensor


def secded_decode(clean: torch.Tensor, faulty: torch.Tensor, check_errors: torch.Tensor) -> SecdedResult:
    """Decode every word of `faulty` (int8, shape of `clean`) whose check bits carry the error
    pattern `check_errors` (uint8 (W,), bit i = check bit i read wrong), written as `clean`.

    Pure and vectorised: the syndrome is computed from the error pattern (the code is linear, so
    H·(codeword XOR e) = H·e), and the decoder rules of the module docstring are applied to all words.
    """
    if clean.dtype != torch.int8 or faulty.dtype != torch.int8 or clean.shape != faulty.shape:
        raise ValueError(f"clean and faulty must be int8 of one shape, got {clean.dtype} {tuple(clean.shape)} "
                         f"and {faulty.dtype} {tuple(faulty.shape)}")
    read = _words(faulty)                                                    # (W, 8) uint8 as read
    n_words = read.shape[0]
    if check_errors.dtype != torch.uint8 or check_errors.shape != (n_words,):
        raise ValueError(f"check_errors must be uint8 of shape ({n_words},), got {check_errors.dtype} "
                         f"{tuple(check_errors.shape)}")
    _, check, fix_data, fix_check = _tables_on(read.device)
    check_errors = check_errors.to(read.device)
    v = _syndrome_of_data(_words(clean) ^ read) ^ _lookup(check, check_errors)   # (W,) syndrome | P << 7
    s, odd = v & SYNDROME_MASK, (v >> 7).bool()                              # (W,), (W,)
    fixes = odd & (s < CODE_BITS)                                            # decoder flips position s
    out = read ^ _lookup(fix_data, s) * fixes[:, None]                       # (W, 8) uint8
    left = check_errors ^ _lookup(fix_check, s) * fixes
    status = torch.where(fixes, CORRECTED, torch.where(v == 0, CLEAN, DETECTED)).to(torch.uint8)
    q = out.view(-1)[:clean.numel()].view(torch.int8).view(clean.shape)
    return SecdedResult(q, status, left, check_errors)


def _pack(cells: np.ndarray, n_cells: int) -> np.ndarray:
    """Sorted faulty cell indices in [0, n_cells) -> uint8 (n_cells / 8,): cell 8w + i -> bit i of byte w."""
    hit = np.zeros(n_cells, dtype=bool)
    hit[cells] = True
    return np.packbits(hit.reshape(-1, 8), axis=1, bitorder="little")[:, 0]


def check_cell_faults(n_words: int, cfg: FaultConfig, seed: int, layer_index: int = 0
                      ) -> Tuple[np.ndarray, np.ndarray]:
    """(faulty, stuck1): uint8 (W,) per word, bit i = check cell i is faulty / would be stuck at 1."""
    if cfg.model not in CHECK_CELL_PHYSICS:
        raise ValueError(f"ECC check-bit faults are modelled for {', '.join(CHECK_CELL_PHYSICS)}, "
                         f"not {cfg.model!r}")
    if cfg.position >= 0 or cfg.bits != 8:
        raise ValueError(f"ECC needs whole 8-bit weights at any bit position (-pos -1, --bits 8), "
                         f"got position {cfg.position}, bits {cfg.bits}")
    _, tiled = CHECK_CELL_PHYSICS[cfg.model]
    layer = 0 if tiled else int(layer_index)      # `official`: one map for every layer
    n_map = MAP_ROWS * TILED_WORDS if tiled else n_words
    cells = faulty_cells(np.random.default_rng([ECC_STREAM, seed, layer, POSITIONS]), n_map * 8, cfg.ber)
    faulty = _pack(cells, n_map * 8)                                         # (n_map,)
    stuck1 = np.random.default_rng([ECC_STREAM, seed, layer, VALUES]).integers(0, 256, n_map, dtype=np.uint8)
    if tiled:
        w = np.arange(n_words)
        index = ((w // TILE_PERIOD_WORDS) % MAP_ROWS) * TILED_WORDS + w % TILED_WORDS
        faulty, stuck1 = faulty[index], stuck1[index]
    return faulty, stuck1


def check_bit_errors(clean: torch.Tensor, cfg: FaultConfig, seed: int, layer_index: int = 0) -> torch.Tensor:
    """uint8 (W,) on clean's device: which of each word's 8 check bits are read wrong under `cfg`."""
    n_words = -(-clean.numel() // WORD_WEIGHTS)
    if cfg.ber == 0:
        return torch.zeros(n_words, dtype=torch.uint8, device=clean.device)
    faulty, stuck1 = (torch.from_numpy(a).to(clean.device) for a in check_cell_faults(n_words, cfg, seed, layer_index))
    if not CHECK_CELL_PHYSICS[cfg.model][0]:
        return faulty                                                        # flip: every faulty cell errs
    return faulty & (stuck1 ^ encode_check_bits(clean))                      # stuck: only where it differs


def secded(clean: torch.Tensor, faulty: torch.Tensor, cfg: FaultConfig, seed: int, layer_index: int = 0
           ) -> SecdedResult:
    """`secded_decode` with the check-bit faults of (cfg, seed, layer_index) drawn by `check_bit_errors`."""
    return secded_decode(clean, faulty, check_bit_errors(clean, cfg, seed, layer_index))


def inject_ecc(q: torch.Tensor, cfg: FaultConfig, seed: int, layer_index: int = 0) -> torch.Tensor:
    """`bitflip.inject_cfg` behind a SECDED decoder: the int8 weights (q's shape) the decoder delivers."""
    return secded(q, inject_cfg(q, cfg, seed, layer_index), cfg, seed, layer_index).q


def word_counts(clean: torch.Tensor, faulty: torch.Tensor, result: SecdedResult) -> Dict[str, int]:
    """Counts of one layer's 72-bit words: {'words', 'wrong_before' (any of the 72 cells read wrong),
    'wrong_after' (any bit still wrong after decoding, data or check), 'corrected' (wrong before, right
    after)}. The zero-padded tail of the last word holds no weights, so it never counts as wrong."""
    stored = _words(clean)                                                   # (W, 8)
    before = (stored != _words(faulty)).any(1) | (result.read_errors != 0)   # (W,)
    after = (stored != _words(result.q)).any(1) | (result.check_errors != 0)
    return {"words": int(stored.shape[0]), "wrong_before": int(before.sum()), "wrong_after": int(after.sum()),
            "corrected": int((before & ~after).sum())}


# --ecc name -> decoder(clean, faulty, cfg, seed, layer_index) -> SecdedResult (bitflip.faults.ECC_CODES
# lists the names; "none" has no decoder)
Decoder = Callable[[torch.Tensor, torch.Tensor, FaultConfig, int, int], SecdedResult]
ECC_DECODERS: Dict[str, Decoder] = {"secded": secded}

"""The `chipmap` fault model: exported official maps round-trip bit-exactly, the file rules, bad files."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from bitflip import FaultConfig, inject, inject_cfg, perturbed
from bitflip.chipmap import (FaultMapError, describe, export_official, map_file, measured_ber, read_map,
                             resolve_maps, write_map)
from bitflip.faultmap_cli import main as faultmap_main
from bitflip.official import MAP_COLS, MAP_ROWS
from models.quant import quant_layers, quantize_

PERIOD = MAP_ROWS * 16 * 16          # weights per map period at 8 bits


def random_q(n: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(-128, 128, (n,), dtype=torch.int8, generator=torch.Generator().manual_seed(seed))


def chip_cfg(maps, **kw) -> FaultConfig:
    return FaultConfig("chipmap", maps=maps, **kw)


@pytest.mark.parametrize("seed, ber, bits, pos", [(50000, 0.01, 8, -1), (3, 0.05, 4, -1), (11, 0.02, 8, 6),
                                                  (5, 0.1, 3, 1)])
def test_export_then_chipmap_is_official(tmp_path, seed, ber, bits, pos):
    assert faultmap_main(["export", "--seed", str(seed), "-ber", str(ber), "--out", str(tmp_path / "chip"),
                          "--bits", str(bits), "-pos", str(pos), "--voltage", "0.62"]) == 0
    maps = resolve_maps([str(tmp_path / "chip")])
    n = 8192 * (128 // bits) ** 2 + 12345 if bits == 8 else 50000    # wraps past one period at 8 bits
    q = random_q(n, seed)
    if bits < 8:
        q = q % (1 << (bits - 1))                                     # a valid b-bit value
    want = inject(q, "official", ber, seed=seed, bits=bits, position=pos)
    got = inject_cfg(q, chip_cfg(maps, bits=bits, position=pos), seed=0)
    assert torch.equal(got, want) and not torch.equal(got, q)


def test_maps_are_seeds_of_a_model(tmp_path):
    for s in (100, 101):
        export_official(tmp_path / "chips" / f"s{s}", s, 0.02)
    maps = resolve_maps([str(tmp_path / "chips")])
    assert [map_file(tmp_path / "chips" / f"s{s}", 0, "0") for s in (100, 101)] == [type(tmp_path)(m) for m in maps]
    net = quantize_(torch.nn.Sequential(torch.nn.Linear(64, 300), torch.nn.Linear(300, 10)))
    for i, s in enumerate((100, 101)):
        with perturbed(net, chip_cfg(maps), seed=i):
            got = [layer.fault_weight.clone() for _, layer in quant_layers(net)]
        with perturbed(net, FaultConfig("official", 0.02), seed=s):
            want = [layer.fault_weight.clone() for _, layer in quant_layers(net)]
        assert all(torch.equal(a, b) for a, b in zip(got, want))
    with pytest.raises(ValueError, match="2 map"):
        inject_cfg(random_q(10), chip_cfg(maps), seed=2)
    assert abs(measured_ber(maps) - 0.02) < 0.002


def test_cell_in_both_reads_one_and_npz_matches_txt(tmp_path):
    sa0 = np.zeros((MAP_ROWS + 8, MAP_COLS), dtype=bool)      # more rows than 8192 are allowed
    sa1 = np.zeros_like(sa0)
    sa0[0, 0:8] = True                                       # weight 0: every bit stuck at 0 ...
    sa1[0, 0:2] = True                                       # ... and bits 0, 1 also stuck at 1
    sa1[0, 8 + 7] = True                                     # weight 1: sign bit stuck at 1
    write_map(tmp_path / "chip", "0.5", sa0, sa1)
    np.savez(tmp_path / "chip.npz", sa0=sa0, sa1=sa1)
    q = torch.tensor([5, 5, 5], dtype=torch.int8)
    for maps in (resolve_maps([str(tmp_path / "chip")]), (str(tmp_path / "chip.npz"),)):
        out = inject_cfg(q, chip_cfg(maps), seed=0)
        assert out.tolist() == [3, 5 - 128, 5]                 # 0b11: stuck-at-1 wins; sign bit set
    assert "8 stuck-at-0, 3 stuck-at-1, 2 in both: read as 1" in describe(str(tmp_path / "chip.npz"))


def test_voltages_from_file_names(tmp_path):
    export_official(tmp_path / "chip", 1, 0.01, voltage="0.70")
    export_official(tmp_path / "chip", 2, 0.03, voltage="0.55")
    with pytest.raises(FaultMapError, match="voltages 0.55, 0.70; pick one"):
        resolve_maps([str(tmp_path / "chip")])
    with pytest.raises(FaultMapError, match="--voltage 0.6: .* has 0.55, 0.70"):
        resolve_maps([str(tmp_path / "chip")], "0.6")
    (hi,) = resolve_maps([str(tmp_path / "chip")], "0.55")
    assert abs(measured_ber([hi]) - 0.03) < 0.003
    assert len(resolve_maps([str(tmp_path / "chip")], "all")) == 2


def _bad(tmp_path, name, text):
    chip = tmp_path / name
    chip.mkdir()
    export_official(chip, 1, 0.01)
    if text is not None:
        (chip / "fmap_sa1_v_0.txt").write_text(text)
    else:
        (chip / "fmap_sa1_v_0.txt").unlink()
    return chip


@pytest.mark.parametrize("name, text, message", [
    ("short", "0,1\n" * 10, "shape 10x2; need at least 8192 rows x 128 columns"),
    ("two", ("0," * 127 + "2\n") * MAP_ROWS, "value 2 at row 0, column 127; only 0 and 1"),
    ("text", "a,b\n", "not comma-separated 0/1 integers"),
    ("missing", None, "has fmap_sa0_v_0.txt but no fmap_sa1_v_0.txt"),
])
def test_bad_files_are_one_line_errors(tmp_path, capsys, name, text, message):
    chip = _bad(tmp_path, name, text)
    read_map.cache_clear()
    with pytest.raises(FaultMapError, match=message):
        read_map(str(resolve_maps([str(chip)])[0]))
    assert faultmap_main(["info", str(chip)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message.split(";")[0] in err


def test_bad_npz_and_config(tmp_path):
    np.savez(tmp_path / "x.npz", sa0=np.zeros((MAP_ROWS, MAP_COLS)))
    with pytest.raises(FaultMapError, match="no array sa1"):
        read_map(str(tmp_path / "x.npz"))
    with pytest.raises(FaultMapError, match="not found"):
        resolve_maps([str(tmp_path / "nope")])
    with pytest.raises(ValueError, match="chipmap needs --fault-map"):
        FaultConfig("chipmap")
    with pytest.raises(ValueError, match="only used with --fault-model chipmap"):
        FaultConfig("official", maps=("a.npz",))
    cfg = chip_cfg(["a.npz"])
    assert cfg.maps == ("a.npz",) and hash(cfg) == hash(chip_cfg(("a.npz",)))   # hashable: LRU-cache key

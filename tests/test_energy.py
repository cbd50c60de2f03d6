"""Energy model (eval/energy.py, docs/DESIGN.md §10): TWMA against the paper's Table 6, ES against Table 2, the
operating points, and the `energy` CLI mode."""
import json

import pytest
import torch.nn as nn

from eval.macs import layer_stats
from common.registry import UnknownName
from eval.energy import (ECC_OVERHEAD, PAPER_SAVING, access_saving, energy_rows, energy_saving,
                         format_energy_table, model_costs, operating_point, twma, weight_reads)
from eval.paper import ENERGY_SAVING  # Table 2: ES (%) at 1% BER, CIFAR-10
from generators import list_generators
from zs_main import main

# Paper Table 6: total weight-memory accesses of one 32 px inference (SCALE-Sim, 32x32 OS array).
TABLE6 = {"resnet18": 2755968, "resnet50": 6182144, "vgg11": 1334656, "vgg16": 2366848, "vgg19": 3104128,
          "ConvL": 320256, "ConvS": 41508, "DeConvL": 259264, "DeConvS": 86208, "UNetL": 180894,
          "UNetS": 45711}
NOT_IN_TABLE6 = {"UIP": 0}  # one added tensor, no conv/linear weights (docs/DESIGN.md §14)
TWMA_TOL = 0.001   # relative; exact for 9 entries, UNetL/UNetS -0.017% / -0.033% (their 1x1 out conv)
ES_TOL = 0.5       # points; gaps <= 0.07 (one-decimal rounding) but VGG19+ConvS 0.41 (see eval/energy.py)
BASES = list(ENERGY_SAVING)


@pytest.mark.slow
@pytest.mark.parametrize("name", list(TABLE6))
def test_twma_matches_table6(name):
    kind = "base" if name in BASES else "gen"
    assert model_costs(kind, name, 32)["twma"] == pytest.approx(TABLE6[name], rel=TWMA_TOL)


@pytest.mark.parametrize("name", list_generators())
def test_every_registered_generator_has_its_twma(name):
    expected = {**TABLE6, **NOT_IN_TABLE6}
    assert name in expected, f"add the TWMA of the new generator {name!r} to TABLE6 or NOT_IN_TABLE6"
    assert model_costs("gen", name, 32)["twma"] == pytest.approx(expected[name], rel=TWMA_TOL)


@pytest.mark.parametrize("arch,gen", [(a, g) for a in BASES for g in ENERGY_SAVING[a]])
def test_energy_saving_matches_table2(arch, gen):
    row = energy_rows(arch, [gen])[0]
    assert row["es_twma"] == pytest.approx(ENERGY_SAVING[arch][gen], abs=ES_TOL)
    assert row["saving"] == pytest.approx(PAPER_SAVING)


def test_hand_count_small_net():
    net = nn.Sequential(nn.Conv2d(3, 4, 3, 2, 1, bias=False),          # 8 px -> 4 px (PyTorch)
                        nn.ConvTranspose2d(4, 2, 4, 2, 1, bias=False),  # 4 px -> 8 px
                        nn.Flatten(), nn.Linear(2 * 64, 5, bias=False))
    recs = [r for r in layer_stats(net, (3, 8, 8)) if r["kind"] in ("conv", "deconv", "linear")]
    conv, deconv, linear = recs
    # SCALE-Sim rounds up: ceil((8 + 2 - 3 + 2) / 2) = 5 -> 25 positions, ceil(25 / 4) = 7 folds of 4 rows
    assert weight_reads(conv, rows=4) == 108 * 7
    # transposed conv as a stride-1 conv over the 8 px upsampled input padded by 1: 8 + 2 - 4 + 1 = 7 -> 49
    assert weight_reads(deconv, rows=4) == 128 * 13
    assert weight_reads(linear, rows=4) == 640 * 1
    assert twma(recs, rows=4) == (108 * 7 + 128 * 13 + 640) / 8


def test_operating_points():
    p = operating_point(0.01)
    assert p["saving"] == pytest.approx(PAPER_SAVING) and p["v_rel"] == pytest.approx(0.833, abs=5e-4)
    assert "paper" in p["source"]
    bers = [1e-9, 1e-4, 1e-3, 5e-3, 1e-2, 2e-2, 5e-2]
    savings = [operating_point(b)["saving"] for b in bers]
    assert savings == sorted(savings) and savings[0] == 0.0  # below Vmin's error rate: no saving
    assert "not a paper number" in operating_point(0.005)["source"]
    with pytest.raises(ValueError):
        operating_point(0.0)


def test_saving_override_and_eq7():
    base, custom = energy_rows("vgg11", ["ConvS"])[0], energy_rows("vgg11", ["ConvS"], saving=20.0)[0]
    assert custom["saving"] == 20.0
    assert custom["es_twma"] == pytest.approx(base["es_twma"] - (PAPER_SAVING - 20.0))
    assert base["es_mac"] == pytest.approx(energy_saving(PAPER_SAVING, base["macs"], base["base_macs"]))
    assert base["params"] == 113_187 and base["base_twma"] == TABLE6["vgg11"]
    with pytest.raises(ValueError):
        energy_rows("vgg11", ["ConvS"], saving=100.0)
    with pytest.raises(UnknownName):
        energy_rows("vgg11", ["Bogus"])


def test_ecc_overhead_shrinks_the_per_access_saving():
    assert ECC_OVERHEAD == 0.125
    assert access_saving(PAPER_SAVING) == pytest.approx(PAPER_SAVING)
    # 72 cells at (1 - S) of the energy each, against 64 cells at full energy
    assert access_saving(PAPER_SAVING, ECC_OVERHEAD) == pytest.approx(100 * (1 - 72 / 64 * (1 - 0.3063)))
    assert access_saving(PAPER_SAVING, ECC_OVERHEAD) == pytest.approx(21.96, abs=0.005)
    assert access_saving(0.0, ECC_OVERHEAD) == pytest.approx(-12.5)     # ECC at nominal voltage costs energy
    plain, ecc = energy_rows("resnet18", ["ConvL"])[0], energy_rows("resnet18", ["ConvL"], ecc_overhead=ECC_OVERHEAD)[0]
    assert ecc["saving"] == plain["saving"] and ecc["twma"] == plain["twma"]
    shrink = PAPER_SAVING - access_saving(PAPER_SAVING, ECC_OVERHEAD)  # same drop for every generator
    assert ecc["es_twma"] == pytest.approx(plain["es_twma"] - shrink)
    assert ecc["es_mac"] == pytest.approx(plain["es_mac"] - shrink)
    assert ecc["es_twma"] == pytest.approx(energy_saving(PAPER_SAVING, ecc["twma"], ecc["base_twma"], ECC_OVERHEAD))
    assert "SECDED" in format_energy_table([ecc]) and "SECDED" not in format_energy_table([plain])
    with pytest.raises(ValueError, match="ecc_overhead"):
        access_saving(PAPER_SAVING, -0.1)


def test_cli_json_all_generators(capsys):
    assert main(["resnet18", "energy", "cifar10", "-G", "all", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out.strip().splitlines()[-1])  # after zs_main's header line
    assert [r["generator"] for r in rows] == list_generators()
    for r in rows:
        assert {"base", "generator", "params", "macs", "twma", "base_twma", "es_twma", "es_mac"} <= set(r)
        assert r["base"] == "resnet18" and r["base_twma"] == TABLE6["resnet18"]


def test_cli_text_table(capsys):
    assert main(["vgg16", "energy", "cifar10", "-G", "UNetS", "-ber", "0.005"]) == 0
    out = capsys.readouterr().out
    assert "UNetS" in out and "2,366,848" in out and "not a paper number" in out


def test_cli_rejects_bad_generator_and_saving(capsys):
    assert main(["resnet18", "energy", "cifar10", "-G", "Bogus"]) == 2            # argparse's error, returned
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
    assert main(["resnet18", "energy", "cifar10", "--saving", "-5"]) == 2
    assert "outside [0, 100)" in capsys.readouterr().err

"""The iso-energy point (eval/iso_energy.py, docs/DESIGN.md §15): it inverts eval/energy.py's voltage <-> saving
<-> BER model, is monotonic, refuses savings no voltage gives, and annotates energy rows."""
import math

import pytest

from eval.energy import ECC_OVERHEAD, PAPER_BER, PAPER_SAVING, energy_rows, operating_point
from eval.iso_energy import MAX_ISO_BER, iso_energy_ber, iso_energy_rows, max_iso_saving

SAVINGS = [0.5, 5.0, 10.0, 19.0, 25.0, PAPER_SAVING, 33.0, 40.0, 50.0]


@pytest.mark.parametrize("net", SAVINGS)
def test_inverts_the_operating_point_model(net):
    v, ber = iso_energy_ber(net)
    point = operating_point(ber)                       # forward model: BER -> voltage -> saving
    assert point["saving"] == pytest.approx(net, abs=1e-6)
    assert point["v_rel"] == pytest.approx(v, abs=1e-8)
    assert 1 - v * v == pytest.approx(net / 100)


def test_paper_point_and_vmin():
    v, ber = iso_energy_ber(PAPER_SAVING)              # the paper's 1% BER at 0.83 Vmin
    assert ber == pytest.approx(PAPER_BER, rel=1e-9) and v == pytest.approx(0.833, abs=5e-4)
    v0, ber0 = iso_energy_ber(0.0)                     # no saving: Vmin, where one cell of 256 KB fails
    assert v0 == 1.0 and ber0 == pytest.approx(1 / (256 * 1024 * 8), rel=1e-6)


def test_monotonic():
    points = [iso_energy_ber(s) for s in [0.0] + SAVINGS + [max_iso_saving() - 1e-9]]
    volts, bers = [v for v, _ in points], [b for _, b in points]
    assert all(a > b for a, b in zip(volts, volts[1:]))     # more saving: lower voltage
    assert all(a < b for a, b in zip(bers, bers[1:]))       # ... and more bit errors
    assert 0 < bers[0] and bers[-1] == pytest.approx(MAX_ISO_BER)


@pytest.mark.parametrize("bad", [-0.1, -20.0, "top", 60.0, 100.0, math.nan])
def test_out_of_range_is_a_clear_error(bad):
    bad = max_iso_saving() if bad == "top" else bad
    with pytest.raises(ValueError, match=r"outside \[0, 53\.5\)"):
        iso_energy_ber(bad)


def test_rows_carry_the_iso_point():
    rows = iso_energy_rows("resnet18", ["ConvL", "UIP"])
    plain = energy_rows("resnet18", ["ConvL", "UIP"])
    for r, p in zip(rows, plain):
        assert r["es_twma"] == p["es_twma"] and r["iso_cost"] == "twma"
        assert (r["iso_v_rel"], r["iso_ber"]) == iso_energy_ber(r["es_twma"])
    conv, uip = rows
    assert conv["iso_ber"] < PAPER_BER                 # the generator's own cost: a milder iso voltage
    assert uip["iso_ber"] == pytest.approx(PAPER_BER)  # 0 cost: the same operating point
    mac = iso_energy_rows("resnet18", ["ConvL"], cost="mac")[0]
    assert mac["iso_ber"] == iso_energy_ber(mac["es_mac"])[1]
    with pytest.raises(ValueError, match="cost must be"):
        iso_energy_rows("resnet18", ["ConvL"], cost="flops")


def test_negative_net_saving_has_no_iso_point():
    # VGG11 + ConvL at 0.01% BER: S = 14.8% < cost(G) / cost(base) = 24%; with ECC lower still
    row = iso_energy_rows("vgg11", ["ConvL"], ber=1e-4, ecc_overhead=ECC_OVERHEAD)[0]
    assert row["es_twma"] < 0 and row["iso_v_rel"] is None and row["iso_ber"] is None


def test_energy_mode_prints_iso_points_and_a_runnable_eval_command(capsys):
    """`energy --iso-energy`: per generator the iso voltage and BER, the --eval-bers list (the -ber itself
    and every iso BER within 0.5%), and a transform_eval command the run parser accepts as it stands."""
    import shlex
    from eval.iso_energy import rounded_ber
    from zs_main import build_configs, build_parser, main
    assert main(["resnet18", "energy", "cifar10", "-G", "all", "-ber", "0.005", "--iso-energy", "-cp",
                 "my base.pt", "--fault-model", "flip"]) == 0
    out = capsys.readouterr().out.split("Iso-energy points")[1]           # the section under the table
    rows = iso_energy_rows("resnet18", ["ConvL", "ConvS", "DeConvL", "DeConvS", "UNetL", "UNetS", "UIP"],
                           ber=0.005)
    for r in rows:
        line = next(ln for ln in out.splitlines() if ln.startswith(r["generator"] + " "))
        assert f"{r['es_twma']:.2f}" in line and f"{r['iso_v_rel']:.3f} Vmin" in line
        assert line.split()[-1 if r["generator"] != "UIP" else 4] == f"{r['iso_ber']:.3g}"
    listed = next(ln for ln in out.splitlines() if ln.strip().startswith("--eval-bers")).split()[1]
    bers = [float(b) for b in listed.split(",")]
    assert bers[0] == 0.005 and bers == sorted(bers, reverse=True)
    assert all(any(abs(b - r["iso_ber"]) <= 0.005 * r["iso_ber"] for b in bers) for r in rows)
    assert len(bers) == len({rounded_ber(r["iso_ber"]) for r in rows} | {0.005})
    command = next(ln for ln in out.splitlines() if "transform_eval" in ln and ln.strip().startswith("python"))
    argv = shlex.split(command)[2:]
    args = build_parser().parse_args(argv)              # a command the user can paste
    cfgs = build_configs(args)
    assert cfgs.run.mode == "transform_eval" and cfgs.run.checkpoint == "my base.pt"
    assert cfgs.eval.testing_mode == "generator_base" and cfgs.fault.model == "flip" and cfgs.eval.bers == tuple(bers)


def test_energy_mode_iso_json_and_no_iso_point(capsys):
    import json
    from zs_main import main
    assert main(["vgg11", "energy", "cifar10", "-G", "ConvL", "-ber", "0.0001", "--iso-energy", "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert row["es_twma"] < 0 and row["iso_ber"] is None and row["iso_cost"] == "twma"
    assert main(["vgg11", "energy", "cifar10", "-G", "ConvL", "-ber", "0.0001", "--iso-energy"]) == 0
    out = capsys.readouterr().out
    assert "ConvL" in out and "no iso-energy point (net saving < 0" in out and "--eval-bers 0.0001" in out

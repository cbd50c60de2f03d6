"""`make baselines` (baselines.py): the comparison table of the README's "Baselines" section, at a tiny size."""
import pytest

import baselines
import demo
from eval.energy import energy_rows
from eval.iso_energy import iso_energy_ber


def test_without_the_demo_it_says_what_to_run_first(tmp_path, capsys):
    code = baselines.main(["--data-root", str(tmp_path / "d"), "--demo", str(tmp_path / "demo"),
                           "--out", str(tmp_path / "out"), "--preset", "tiny"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert "python demo.py" in err and "--preset tiny" in err and str(tmp_path / "demo") in err
    assert not (tmp_path / "out").exists()


def test_iso_energy_bers_invert_the_energy_model():
    bers = baselines.iso_energy_bers("vgg11", ["ConvL", "UIP"])
    assert bers[0] == baselines.BER                                   # the fault BER itself is measured too
    conv = next(r for r in energy_rows("vgg11", ["ConvL"], ber=baselines.BER))
    want = iso_energy_ber(conv["es_twma"])[1]
    assert any(abs(b - want) <= 0.005 * want for b in bers[1:])      # 3 significant digits
    assert all(b < baselines.BER for b in bers[1:])


@pytest.mark.slow
def test_tiny_baselines_end_to_end(cifar_root, tmp_path, capsys):
    data = ["--data-root", str(cifar_root), "--preset", "tiny", "--device", "cpu"]
    assert demo.main([*data, "--out", str(tmp_path / "demo"), "--no-download"]) == 0
    assert baselines.main([*data, "--demo", str(tmp_path / "demo"), "--out", str(tmp_path / "b")]) == 0
    out = capsys.readouterr().out
    table = (tmp_path / "b" / "tiny" / "compare.md").read_text()
    gen = demo.PRESETS["tiny"]["generator"]
    for label in ("unprotected", f"| {gen} ", "| UIP ", "fault-aware |", f"fault-aware + {gen}", "SECDED |",
                  f"{gen} + SECDED", f"iso-energy ({gen})"):
        assert label in table, label
    assert "needs --eval-bers" not in table                           # the iso BERs were measured
    assert "Comparison" in (tmp_path / "b" / "tiny" / "compare.html").read_text()
    assert "unprotected" in out
    stages = [line for line in out.splitlines() if line.startswith("[baselines] ")]
    assert any("fault-aware base model: python zs_main.py" in line for line in stages)
    assert baselines.main([*data, "--demo", str(tmp_path / "demo"), "--out", str(tmp_path / "b")]) == 0
    again = capsys.readouterr().out
    assert again.count("reusing") >= 4 and "[demo]" not in again      # a second run trains nothing again

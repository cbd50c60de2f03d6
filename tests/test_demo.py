import pytest
"""`make demo`'s pipeline (demo.py) at a tiny size on a real-format CIFAR-10 copy made by the test."""
import json

import demo


@pytest.mark.slow
def test_demo_tiny_end_to_end_then_reuses(cifar_root, tmp_path, capsys):
    argv = ["--data-root", str(cifar_root), "--preset", "tiny", "--out", str(tmp_path), "--no-download",
            "--device", "cpu"]
    assert demo.main(argv) == 0
    out = capsys.readouterr().out
    res = json.loads((tmp_path / "tiny" / "generator" / "results.json").read_text())
    assert len(res["per_seed"]) == 10 and {"CA", "PA_mean", "PA_NF_mean", "RP"} <= set(res)
    assert "PA(NF)" in out and f"{res['RP']:+7.2f}" in out        # the printed table is the saved one
    assert "[demo] plan (tiny)" in out and "about 0.5 min" in out and "1/3 base model QAT: done in" in out
    for f in ("base/best.pt", "base/curves.png", "generator/best.pt", "generator/per_seed.csv", "generator/summary.csv"):
        assert (tmp_path / "tiny" / f).is_file(), f
    mtime = (tmp_path / "tiny" / "base" / "best.pt").stat().st_mtime
    assert demo.main(argv) == 0                                    # second run: nothing retrained
    assert "reusing" in capsys.readouterr().out
    assert (tmp_path / "tiny" / "base" / "best.pt").stat().st_mtime == mtime


def test_demo_without_data_stops_at_once(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(demo, "__file__", str(tmp_path / "repo" / "demo.py"))
    (tmp_path / "shared" / "data").mkdir(parents=True)
    (tmp_path / "shared" / "data" / "materialize.py").write_text("")
    code = demo.main(["--data-root", str(tmp_path / "d"), "--no-download", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and "cifar-10-batches-py" in err and len(err.strip().splitlines()) == 1
    assert f"{tmp_path / 'shared' / 'data' / 'materialize.py'} cifar10 {tmp_path / 'd'}" in err
    assert not (tmp_path / "o").exists()

"""`report --compare` (eval/compare.py): rows per base model and BER on results.json folders written with
eval.results.write_results; the iso-energy row measured, interpolated (†) or asked for; the marker; the
HTML section; and the baseline grids measure every iso-energy BER they need."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from eval import compare, report
from eval.energy import ECC_OVERHEAD, access_saving, energy_rows, operating_point
from eval.iso_energy import iso_energy_ber, rounded_ber
from eval.results import write_results

SEEDS = [50000, 50001, 50002]
BER = 0.01
ROOT = Path(report.__file__).resolve().parent.parent


def entry(ber: float, pa: float, pa_nf: float = None, ca: float = 91.0, ca_nf: float = 89.0) -> dict:
    """A results entry whose per-seed PAs are pa - 1, pa, pa + 1 (mean pa, population std 0.816)."""
    per_seed = [{"seed": s, "PA": pa + d, **({"PA_NF": pa_nf + d} if pa_nf is not None else {})}
                for s, d in zip(SEEDS, (-1, 0, 1))]
    out = {"CA": ca, "PA_mean": pa, "PA_std": 0.8165, "per_seed": per_seed, "ber": ber, "split": "test",
           "n_images": 100}
    if pa_nf is not None:
        out.update(CA_NF=ca_nf, PA_NF_mean=pa_nf, PA_NF_std=0.8165, RP=pa_nf - pa)
    return out


def write_run(root: Path, name: str, entries: list, generator: str = "ConvL", train_ber: float = BER,
              checkpoint: str = "base/best.pt", ecc: str = "none", eopm: bool = True, **extra) -> Path:
    """A run folder as transform_eopm_gen (eopm=True: its own fault BER is the training BER) or
    transform_eval (the training BER in the args.json beside --G-path) writes it."""
    run = root / name
    run.mkdir(parents=True)
    g_path = str(run / "best.pt") if eopm else str(root / f"g_{name}" / "best.pt")
    settings = {"arch": "resnet18", "dataset": "cifar10", "fault_model": "official", "ber": entries[0]["ber"],
                "fault": {"model": "official", "ber": train_ber if eopm else 0.01, "position": -1, "bits": 8,
                          "maps": [], "ecc": ecc},
                "seeds": SEEDS, "n_images": 100, "testing_mode": "generator_base", "checkpoint": checkpoint,
                "generator": generator, "g_path": g_path, "generator_trained_on": "resnet18/cifar10", **extra}
    if eopm:
        settings.update(lam=5.0, n_models=4, epochs=3)
    else:
        Path(g_path).parent.mkdir(parents=True)
        (Path(g_path).parent / "args.json").write_text(json.dumps({"fault": {"ber": train_ber}}))
    write_results(run, entries, settings)
    return run


def groups_of(root: Path) -> list:
    return compare.build_comparison(report.find_runs([str(root)]))


def rows_by_label(group) -> dict:
    return {r["label"]: r for r in group.rows}


def conv_iso_ber(ber: float = BER) -> float:
    return iso_energy_ber(energy_rows("resnet18", ["ConvL"], ber=ber)[0]["es_twma"])[1]


def test_rows_of_a_group(tmp_path):
    write_run(tmp_path, "convl", [entry(BER, 40.0, 80.0)])
    write_run(tmp_path, "unetl", [entry(BER, 40.0, 75.0, ca_nf=88.0)], generator="UNetL")
    write_run(tmp_path, "uip", [entry(BER, 40.0, 41.0)], generator="UIP")
    write_run(tmp_path, "fa", [entry(BER, 60.0, 82.0, ca=90.0)], checkpoint="fa/best.pt",
              base_training="fault-aware")
    write_run(tmp_path, "ecc", [entry(BER, 70.0, 85.0)], ecc="secded")
    (group,) = groups_of(tmp_path)
    assert group.scope == ("resnet18", "cifar10", "official", -1, 8) and group.ber == BER
    labels = [r["label"] for r in group.rows]
    assert labels == ["unprotected", "ConvL", "UNetL", "UIP", "fault-aware", "fault-aware + ConvL", "SECDED",
                      "ConvL + SECDED", "iso-energy (ConvL)", "iso-energy (UNetL)"]
    rows = rows_by_label(group)
    assert (rows["unprotected"]["CA"], rows["unprotected"]["PA_mean"]) == (91.0, 40.0)
    assert (rows["UNetL"]["CA"], rows["UNetL"]["PA_mean"]) == (88.0, 75.0)            # CA(NF), PA(NF)
    assert rows["fault-aware"]["retrained"] and rows["fault-aware + ConvL"]["retrained"]
    assert not any(rows[k]["retrained"] for k in ("unprotected", "ConvL", "SECDED", "iso-energy (ConvL)"))
    s = operating_point(BER)["saving"]
    assert rows["unprotected"]["es"] == pytest.approx(s) and rows["fault-aware"]["es"] == pytest.approx(s)
    assert rows["ConvL"]["es"] == pytest.approx(energy_rows("resnet18", ["ConvL"])[0]["es_twma"])
    assert rows["SECDED"]["es"] == pytest.approx(access_saving(s, ECC_OVERHEAD))
    assert rows["ConvL + SECDED"]["es"] == pytest.approx(
        energy_rows("resnet18", ["ConvL"], ecc_overhead=ECC_OVERHEAD)[0]["es_twma"])
    assert rows["ConvL"]["er"] == pytest.approx(40.0 / 0.723273)                       # RP / M params
    assert rows["unprotected"]["er"] is None and rows["iso-energy (ConvL)"]["es"] == rows["ConvL"]["es"]
    # the best NeuralFuse PA(NF) is ConvL's 80: SECDED (70) and UIP (41) do not beat it
    assert not any(n.startswith("◀") for r in group.rows for n in r["notes"])


def test_fault_aware_read_from_the_args_json_beside_the_checkpoint(tmp_path):
    (tmp_path / "fa_base").mkdir()
    (tmp_path / "fa_base" / "args.json").write_text(json.dumps({"train": {"fault_aware": True,
                                                                          "clip_weights": None}}))
    write_run(tmp_path / "runs", "fa", [entry(BER, 60.0, 82.0)], checkpoint=str(tmp_path / "fa_base" / "best.pt"))
    labels = [r["label"] for r in groups_of(tmp_path / "runs")[0].rows]
    assert labels[:2] == ["fault-aware", "fault-aware + ConvL"]


@pytest.mark.parametrize("spec, label", [("fault-aware", "fault-aware"), ("plain", "unprotected"),
                                         ({"fault_aware": True}, "fault-aware"), (True, "fault-aware"),
                                         ({"fault_aware": False, "clip_weights": 0.1}, "clip ±0.1"),
                                         (3, "unprotected"), ({"kind": "qat"}, "unprotected")])
def test_base_training_is_read_defensively(spec, label):
    assert compare.row_label(compare.base_training({"base_training": spec}), "none", None) == label


def test_iso_point_measured_beats_nf(tmp_path):
    iso = conv_iso_ber()
    write_run(tmp_path, "convl", [entry(BER, 40.0, 80.0)])
    write_run(tmp_path, "sweep", [entry(BER, 40.0, 80.0), entry(rounded_ber(iso), 85.0, 88.0)], eopm=False)
    (group,) = groups_of(tmp_path)                   # the entry at the iso BER is not a group of its own
    iso_row = rows_by_label(group)["iso-energy (ConvL)"]
    assert iso_row["ber"] == pytest.approx(iso) and iso_row["PA_mean"] == 85.0 and iso_row["PA_std"] == 0.8165
    assert iso_row["notes"][0] == compare.BEATS_NF and f"measured at BER {rounded_ber(iso):.3g}" in iso_row["notes"]
    text = compare.markdown([group])
    line = next(ln for ln in text.splitlines() if ln.startswith("| iso-energy (ConvL)"))
    assert "85.0 ± 0.8" in line and "◀ beats NF" in line and "| no |" in line
    assert "ConvL" in next(ln for ln in text.splitlines() if ln.startswith("| ConvL |")) and "◀" not in \
        next(ln for ln in text.splitlines() if ln.startswith("| unprotected |"))


def test_iso_point_interpolated_and_beating_only_its_own_generator(tmp_path):
    iso = conv_iso_ber()
    lo, hi = 1e-4, 1e-3
    assert lo < iso * 0.95 and iso * 1.05 < hi
    write_run(tmp_path, "convl", [entry(BER, 40.0, 80.0)])
    write_run(tmp_path, "unetl", [entry(BER, 40.0, 95.0)], generator="UNetL")
    write_run(tmp_path, "sweep", [entry(BER, 40.0, 80.0), entry(hi, 70.0, 85.0), entry(lo, 90.0, 91.0)],
              eopm=False)
    rows = rows_by_label(groups_of(tmp_path)[0])
    want = 90.0 + (70.0 - 90.0) * (iso - lo) / (hi - lo)
    row = rows["iso-energy (ConvL)"]
    assert row["PA_mean"] == pytest.approx(want) and row["PA_std"] is None and row["interpolated"]
    assert 80.0 < want < 95.0                        # above ConvL's PA(NF), below UNetL's (the best)
    assert row["notes"][0] == "◀ beats ConvL at equal energy"
    assert compare._pa(row) == f"{want:.1f} †"


def test_iso_point_needs_an_evaluation(tmp_path):
    write_run(tmp_path, "convl", [entry(BER, 40.0, 80.0)])
    row = rows_by_label(groups_of(tmp_path)[0])["iso-energy (ConvL)"]
    assert row["PA_mean"] is None and f"needs --eval-bers {rounded_ber(conv_iso_ber()):g}" in row["notes"]
    assert f"needs --eval-bers {rounded_ber(conv_iso_ber()):g}" in compare.markdown(groups_of(tmp_path))


def test_baseline_above_the_best_nf_is_marked(tmp_path):
    write_run(tmp_path, "convl", [entry(BER, 40.0, 80.0)])
    write_run(tmp_path, "ecc", [entry(BER, 81.0, 85.0)], ecc="secded")
    rows = rows_by_label(groups_of(tmp_path)[0])
    assert rows["SECDED"]["notes"][:1] == [compare.BEATS_NF]
    assert compare.BEATS_NF not in rows["ConvL + SECDED"]["notes"]          # combinations are not baselines


def test_one_group_per_trained_ber_and_other_seeds_flagged(tmp_path):
    write_run(tmp_path, "a", [entry(BER, 40.0, 80.0), entry(0.005, 70.0, 88.0)])
    write_run(tmp_path, "b", [entry(0.005, 70.0, 89.0)], train_ber=0.005)
    other = tmp_path / "c"
    write_run(tmp_path, "c", [entry(0.005, 71.0, 90.0)], generator="UNetL", train_ber=0.005)
    res = json.loads((other / "results.json").read_text())
    for i, s in enumerate(res["sweep"][0]["per_seed"]):
        s["seed"] = 60000 + i
    (other / "results.json").write_text(json.dumps(res))
    groups = groups_of(tmp_path)
    assert [g.ber for g in groups] == [0.01, 0.005]
    half = rows_by_label(groups[1])
    assert half["ConvL"]["PA_mean"] == 89.0               # trained at 0.5%, not run a's 1% generator
    assert len([r for r in groups[1].rows if r["label"].startswith("unprotected")]) == 2   # two results differ
    assert any(n.startswith("other fault seeds") for n in half["UNetL"]["notes"])


def test_report_cli_compare_out_and_html(tmp_path, capsys):
    runs = tmp_path / "runs"
    write_run(runs, "convl", [entry(BER, 40.0, 80.0)])
    md, page = tmp_path / "r.md", tmp_path / "r.html"
    assert report.main([str(runs), "--compare", "--out", str(md), "--html", str(page), "--no-energy"]) == 0
    text = md.read_text()
    assert "## Comparison: NeuralFuse and the baselines" in text and "### resnet18 · cifar10 · official faults · " \
        "BER 1%" in text and "| iso-energy (ConvL) |" in text
    body = page.read_text()
    assert '<section id="comparison"><h2>Comparison</h2>' in body and "<td>iso-energy (ConvL)</td>" in body
    assert body.index("<h2>Comparison</h2>") < body.index('<section id="run-1">')
    assert report.main([str(runs), "--out", str(md)]) == 0 and "Comparison" not in md.read_text()


def test_no_generator_result_says_so(tmp_path):
    write_run(tmp_path, "clean", [entry(BER, 40.0)], generator=None)
    assert compare.build_comparison(report.find_runs([str(tmp_path)])) == []
    assert compare.EMPTY in compare.markdown([]) and compare.EMPTY in compare.html_section([])


def test_baseline_grids_measure_every_iso_energy_ber():
    """grids/baselines.json evaluates each generator run at the iso-energy BER (within ISO_MATCH) of every
    (base model, generator, training BER) of the grid, so `report --compare` finds each iso row measured;
    the fault-aware and SECDED grids compare at the same models, generators and BERs."""
    from grid_schema import check_grid
    grids = {n: check_grid(json.loads((ROOT / "grids" / n).read_text()), n)
             for n in ("baselines.json", "baselines_fault_aware.json", "baselines_secded.json")}
    same = {k: grids["baselines.json"][k] for k in ("dataset", "archs", "generators", "bers")}
    assert all({k: g[k] for k in same} == same for g in grids.values())
    assert "--fault-aware" in grids["baselines_fault_aware.json"]["train_flags"]
    assert "secded" in grids["baselines_secded.json"]["eopm_flags"]
    for name, grid in list(grids.items())[:1]:
        flags = list(grid["eopm_flags"])
        bers = [float(b) for b in flags[flags.index("--eval-bers") + 1].split(",")]
        for arch in grid["archs"]:
            for ber in grid["bers"]:
                assert any(b == ber for b in bers), (name, ber)
                for g in grid["generators"]:
                    iso = iso_energy_ber(energy_rows(arch, [g], ber=ber)[0]["es_twma"])[1]
                    assert any(abs(b - iso) <= compare.ISO_MATCH * iso for b in bers), (name, arch, g, ber, iso)

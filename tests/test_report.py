"""Plots and the markdown report, on fake run folders written with the schema of eval.neuralfuse / train.loop."""
from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import pytest
from PIL import Image

from eval import report
from eval.plots import chosen_epoch, curve_panels, curves_figure, metric_kind, plot_curves, plot_sweep, y_range

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SEEDS = [50000, 50001, 50002]


def _entry(ber: float, split: str = "test", pa: float = 40.0, pa_nf: float = 80.0) -> dict:
    per_seed = [{"seed": s, "PA": pa + i, "PA_NF": pa_nf + i} for i, s in enumerate(SEEDS)]
    return {"CA": 91.23, "CA_NF": 90.04, "PA_mean": pa + 1, "PA_std": 0.8165, "PA_NF_mean": pa_nf + 1,
            "PA_NF_std": 0.8165, "RP": pa_nf - pa, "per_seed": per_seed, "ber": ber, "split": split,
            "n_images": 1000}


def make_eval_run(root: Path, name: str = "run_a", arch: str = "resnet18", generator: str = "ConvL",
                  bers=(0.01,), fault_model: str = "official", position: int = -1, dataset: str = "cifar10",
                  lam=None, trained_on=None) -> Path:
    run = root / name
    run.mkdir(parents=True)
    sweep = [_entry(b, pa=40.0 - 1000 * b, pa_nf=80.0 - 1000 * b) for b in bers]
    settings = {"arch": arch, "dataset": dataset, "fault": {"model": fault_model, "ber": bers[0],
                "position": position, "bits": 8}, "fault_model": fault_model, "ber": bers[0], "seeds": SEEDS,
                "test_limit": 1000, "testing_mode": "generator_base", "checkpoint": "base.pt",
                "generator": generator, "g_path": "g.pt", "generator_trained_on": trained_on or f"{arch}/{dataset}"}
    if lam is not None:
        settings.update(lam=lam, n_models=4, epochs=3)
    top = {k: sweep[0][k] for k in ("CA", "PA_mean", "PA_std", "CA_NF", "PA_NF_mean", "PA_NF_std", "RP")}
    (run / "results.json").write_text(json.dumps({**top, "per_seed": sweep[0]["per_seed"],
                                                  "settings": settings, "sweep": sweep}))
    return run


def make_train_run(root: Path, eopm: bool) -> Path:
    run = root / ("eopm_run" if eopm else "qat_run")
    run.mkdir(parents=True)
    rows = []
    for epoch in range(1, 5):                                            # numbered from 1, as train.loop.fit
        if eopm:
            rows.append({"epoch": epoch, "train_loss": 5.0 - epoch, "train_clean_acc": 50.0 + epoch,
                         "train_pert_acc": 30.0 + 2 * epoch, "lr": 1e-3, "val_CA_NF": 51.0 + epoch,
                         "val_PA": 33.0, "val_PA_NF": 35.0 + epoch, "epoch_time_s": 1.5})
        else:
            rows.append({"epoch": epoch, "train_loss": 2.0 - 0.3 * epoch, "train_acc": 30.0 + 5 * epoch,
                         "test_acc": 28.0 + 5 * epoch, "test_loss": 2.1 - 0.3 * epoch, "epoch_time_s": 2.0})
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    args = {"run": {"arch": "vgg11", "mode": "transform_eopm_gen" if eopm else "train"},
            "data": {"dataset": "cifar10"}, "eopm": {"generator": "ConvL", "lam": 5.0, "n_models": 4},
            "fault": {"model": "official", "ber": 0.01}}
    (run / "args.json").write_text(json.dumps(args))
    return run


def assert_png(path: Path, min_bytes: int = 5000) -> None:
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    assert len(data) > min_bytes
    with Image.open(path) as im:
        assert im.format == "PNG" and im.size[0] > 300 and im.size[1] > 200


def table_lines(text: str) -> list:
    return [line for line in text.splitlines() if line.startswith("|")]


def cells(line: str) -> list:
    return [c.strip() for c in line.strip("|").split("|")]


@pytest.fixture
def no_energy_module(monkeypatch):
    """eval.energy has no answer for any setting: the report must still work and show '–'."""
    def no_answer(*args, **kwargs):
        raise ValueError("setting outside the energy model")
    monkeypatch.setattr("eval.energy.energy_rows", no_answer)


# --- plots ----------------------------------------------------------------------------------------

def test_plot_sweep_writes_png(tmp_path):
    run = make_eval_run(tmp_path, bers=(0.02, 0.01, 0.005))
    out = plot_sweep(run)
    assert out == run / "sweep.png"
    assert_png(out)
    assert not [p for p in run.iterdir() if p.name.endswith(".tmp")]      # atomic: no temp file left


@pytest.mark.parametrize("eopm", [False, True], ids=["qat", "eopm"])
def test_plot_curves_writes_png(tmp_path, eopm):
    run = make_train_run(tmp_path, eopm)
    out = plot_curves(run)
    assert out == run / "curves.png"
    assert_png(out)


@pytest.mark.parametrize("key,kind", [("train_loss", "loss"), ("val_loss", "loss"), ("test_acc", "accuracy"),
                                      ("train_clean_acc", "accuracy"), ("val_PA_NF", "accuracy"),
                                      ("val_CA_NF", "accuracy"), ("val_PA", "accuracy"), ("train_time_s", "time"),
                                      ("epoch_time_s", "time"), ("lr", "lr"), ("epoch", "epoch"),
                                      ("grad_norm", None)])
def test_metric_kind_by_name(key, kind):
    assert metric_kind(key) == kind


def test_curves_put_each_metric_on_the_axis_of_its_kind(tmp_path):
    run = make_train_run(tmp_path, eopm=True)
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    for r in rows:
        r["train_time_s"] = 600.0                                        # EOPM epochs: minutes, not %
    assert curve_panels(list(rows[0])) == {"loss": ["train_loss"], "accuracy": [
        "train_clean_acc", "train_pert_acc", "val_CA_NF", "val_PA", "val_PA_NF"]}
    fig = curves_figure(rows, "t", best_epoch=2)
    by_label = {ax.get_ylabel(): ax for ax in fig.axes}
    assert set(by_label) == {"loss", "accuracy (%)"}
    acc = by_label["accuracy (%)"]
    plotted = [line for line in acc.get_lines() if not line.get_label().startswith("best.pt")]
    assert max(max(line.get_ydata()) for line in plotted) <= 100 and acc.get_ylim()[1] < 100
    marks = [line for line in acc.get_lines() if line.get_label() == "best.pt (epoch 2)"]
    assert len(marks) == 1 and list(marks[0].get_xdata()) == [2, 2]
    one = curves_figure(rows[:1], "t")                                   # a 1-epoch run: one integer tick
    ticks = [t for t in one.axes[0].get_xticks() if one.axes[0].get_xlim()[0] <= t <= one.axes[0].get_xlim()[1]]
    assert ticks == [rows[0]["epoch"]]


def test_curves_mark_best_pt_epoch(tmp_path):
    import torch
    run = make_train_run(tmp_path, eopm=False)
    assert chosen_epoch(run) is None                                     # no best.pt: no mark
    torch.save({"state_dict": {}, "epoch": 3, "kind": "base"}, run / "best.pt")
    assert chosen_epoch(run) == 3
    assert_png(plot_curves(run))


def test_sweep_axis_fits_the_data_and_keeps_ca_lines():
    lo, hi = y_range([35.6 - 3.3, 38.4 + 4.9, 51.9, 52.5])               # PA band, PA(NF) band, CA lines
    assert 25 < lo < 32.3 and 52.5 < hi < 60
    assert y_range([1.0, 99.5]) == (0.0, 100.0)


def test_plots_missing_inputs(tmp_path):
    with pytest.raises(FileNotFoundError, match="results.json"):
        plot_sweep(tmp_path)
    with pytest.raises(FileNotFoundError, match="metrics.jsonl"):
        plot_curves(tmp_path)


# --- report ---------------------------------------------------------------------------------------

# Column indices of the table (eval.report.COLUMNS): with energy, ES at 17-18 and ER at 19; without, ER at 17.
RUN, BASE, GEN, ON, DATA, FAULT, BER, LAM, N, SPLIT, CA, PA, CA_NF, PA_NF, RP, N_SEEDS, IMAGES = range(17)


def test_report_table_with_paper_rows(tmp_path, capsys, no_energy_module):
    run = make_eval_run(tmp_path, bers=(0.01, 0.005, 0.02), lam=5.0)
    assert report.main([str(run)]) == 0
    out = capsys.readouterr().out
    lines = table_lines(out)
    header, sep, body = lines[0], lines[1], lines[2:]
    assert cells(header)[:4] == ["run", "base model", "generator", "G trained on"] and "PA(NF)" in cells(header)
    assert cells(header)[-1] == "ER"
    assert set(sep.replace("|", "")) == {"-"} and sep.count("|") == header.count("|")
    ours = [cells(line) for line in body if cells(line)[0] == "run_a"]
    paper = [cells(line) for line in body if cells(line)[0] == report.PAPER_LABEL]
    assert [c[BER] for c in ours] == ["1%", "0.5%", "2%"]                 # one row per BER
    assert len(paper) == 2                                               # 2% is not in the paper
    row_1 = ours[0]
    assert row_1[BASE:SPLIT] == ["resnet18", "ConvL", "resnet18", "cifar10", "official", "1%", "5", "4"]
    assert row_1[CA:IMAGES + 1] == ["91.2", "31.0 ± 0.8", "90.0", "71.0 ± 0.8", "+40.0", "3", "1000"]
    assert row_1[17:19] == ["–", "–"]                                    # eval.energy has no answer
    assert float(row_1[19]) == pytest.approx(40.0 / 0.723273, abs=0.05)  # RP per million ConvL parameters
    # the paper's rows carry the paper's settings (λ 5, N 10, 10 seeds), not ours (N 4, 3 seeds)
    assert paper[0][LAM:SPLIT] == ["5", "10"] and paper[0][N_SEEDS] == "10" and paper[0][IMAGES] == "full"
    assert paper[0][CA:RP + 1] == ["92.6", "38.9 ± 12.4", "89.8", "87.8 ± 1.7", "+48.8"]
    assert paper[0][17] == "19.0"                                        # Table 2 ES
    assert paper[0][19] == "67.5"                                        # Table 3's efficiency ratio
    assert paper[1][PA] == "70.1 ± 11.6" and paper[1][PA_NF] == "87.9 ± 2.2"   # 0.5%: Table 12 too
    assert all(len(cells(line)) == len(cells(header)) for line in body)


@pytest.mark.parametrize("arch,generator,dataset,ber,want", [
    ("vgg11", "UNetS", "cifar10", 0.005, ("63.6 ± 9.3", "88.1", "75.8 ± 4.3", "+12.2")),
    ("resnet50", "DeConvS", "gtsrb", 0.01, ("29.5 ± 16.9", "93.0", "56.4 ± 17.0", "+26.9")),
    ("vgg16Py", "UNetL", "imagenet224", 0.005, ("38.4 ± 17.0", "90.6", "81.1 ± 5.9", "+42.7")),
    ("vgg19", "ConvS", "cifar100", 0.0035, ("42.1 ± 9.4", "67.7", "45.3 ± 8.5", "+3.2")),
], ids=["cifar10", "gtsrb", "imagenet10", "cifar100"])
def test_report_paper_row_for_every_table(tmp_path, capsys, no_energy_module, arch, generator, dataset, ber, want):
    run = make_eval_run(tmp_path, arch=arch, generator=generator, dataset=dataset, bers=(ber,), lam=5.0)
    assert report.main([str(run), "--no-energy"]) == 0
    paper = [c for c in map(cells, table_lines(capsys.readouterr().out)[2:]) if c[0] == report.PAPER_LABEL]
    assert len(paper) == 1 and (paper[0][PA], paper[0][CA_NF], paper[0][PA_NF], paper[0][RP]) == want
    assert paper[0][ON] == arch and paper[0][LAM:SPLIT] == ["5", "10"]


def test_report_transfer_column_and_table_1(tmp_path, capsys, no_energy_module):
    run = make_eval_run(tmp_path, "transfer", arch="resnet18", generator="UNetL", bers=(0.01, 0.005),
                        trained_on="vgg19/cifar10")
    assert report.main([str(run), "--no-energy"]) == 0
    rows = list(map(cells, table_lines(capsys.readouterr().out)[2:]))
    assert [r[ON] for r in rows] == ["vgg19", "vgg19 @1.5%", "vgg19", "vgg19 @1.5%"]
    paper_1, paper_05 = rows[1], rows[3]
    assert (paper_1[CA_NF], paper_1[PA_NF], paper_1[RP]) == ("85.0", "72.3 ± 11.0", "+33.4")   # VGG19 → ResNet18
    assert (paper_05[CA_NF], paper_05[PA_NF], paper_05[RP]) == ("85.0", "82.1 ± 2.2", "+12.0")
    assert paper_1[PA] == "38.9 ± 12.4"                                  # the target's own PA


def test_report_transfer_outside_table_1_has_no_nf_numbers(tmp_path, capsys, no_energy_module):
    run = make_eval_run(tmp_path, "transfer", arch="vgg11", generator="ConvS", trained_on="vgg16/cifar10")
    assert report.main([str(run), "--no-energy"]) == 0
    rows = list(map(cells, table_lines(capsys.readouterr().out)[2:]))
    assert rows[0][ON] == "vgg16" and rows[1][0] == report.PAPER_LABEL
    assert rows[1][PA] == "42.2 ± 11.6" and rows[1][CA_NF] == rows[1][PA_NF] == rows[1][ON] == "–"


@pytest.mark.parametrize("kwargs", [dict(fault_model="flip"), dict(position=3), dict(arch="resnet18Py"),
                                    dict(arch="resnet50", generator="UNetS", bers=(0.02,))],
                         ids=["flip", "bit3", "arch", "ber2"])
def test_report_no_paper_row_when_setting_differs(tmp_path, capsys, no_energy_module, kwargs):
    run = make_eval_run(tmp_path, **kwargs)
    assert report.main([str(run), "--no-energy"]) == 0
    out = capsys.readouterr().out
    assert report.PAPER_LABEL not in out and "38.9" not in out
    assert len(table_lines(out)) == 3 and "ES (%)" not in out


def test_report_lambda_ablation(tmp_path, capsys, no_energy_module):
    run = make_eval_run(tmp_path, lam=0.1)
    assert report.main([str(run)]) == 0
    paper = [cells(line) for line in table_lines(capsys.readouterr().out) if report.PAPER_LABEL in line]
    assert paper[0][LAM] == "0.1" and paper[0][CA_NF:RP + 1] == ["91.6", "65.7 ± 9.3", "+26.8"]


def test_report_groups_reruns(tmp_path, capsys, no_energy_module):
    make_eval_run(tmp_path / "runs", "a", lam=5.0)
    make_eval_run(tmp_path / "runs", "b", lam=5.0)                        # same setting, same numbers
    c = make_eval_run(tmp_path / "runs", "c", lam=5.0)                    # same setting, other numbers
    res = json.loads((c / "results.json").read_text())
    res["sweep"][0]["PA_NF_mean"] = 75.0
    (c / "results.json").write_text(json.dumps(res))
    make_eval_run(tmp_path / "runs", "d", lam=5.0, bers=(0.005,))        # another BER: its own group
    assert report.main([str(tmp_path / "runs"), "--no-energy"]) == 0
    names = [cells(line)[0] for line in table_lines(capsys.readouterr().out)[2:]]
    assert names == ["runs/a, runs/b", "runs/c", report.PAPER_LABEL, "runs/d", report.PAPER_LABEL]


def test_report_folder_of_runs_and_out_file(tmp_path, capsys, no_energy_module):
    make_eval_run(tmp_path / "runs", "b_vgg19", arch="vgg19", generator="UNetL")
    make_eval_run(tmp_path / "runs", "a_resnet18")
    clean = tmp_path / "runs" / "c_clean"
    clean.mkdir()
    (clean / "results.json").write_text(json.dumps({"CA": 88.04, "settings": {
        "testing_mode": "clean", "arch": "vgg11", "dataset": "cifar10", "checkpoint": "b.pt",
        "test_limit": None, "n_images": 10000}}))
    out_file = tmp_path / "report.md"
    assert report.main([str(tmp_path / "runs"), "--out", str(out_file)]) == 0
    printed = capsys.readouterr().out
    assert out_file.read_text() == printed
    names = [cells(line)[0] for line in table_lines(printed)[2:]]
    assert names == ["runs/a_resnet18", report.PAPER_LABEL, "runs/b_vgg19", report.PAPER_LABEL, "runs/c_clean",
                     report.PAPER_LABEL]
    clean_row = [cells(line) for line in table_lines(printed) if cells(line)[0] == "runs/c_clean"][0]
    assert clean_row[CA] == "88.0" and clean_row[PA] == "–" and clean_row[IMAGES] == "10000"
    assert "3 runs (results.json) found" in printed
    assert "| 88.4 |" in printed                                          # paper CA of VGG11
    assert "82.1 ± 4.8" in printed                                        # VGG19 + UNetL at 1%


def test_report_energy_column(tmp_path, capsys, monkeypatch):
    fake = types.ModuleType("eval.energy")
    calls = []

    def energy_rows(arch, generators, dataset="cifar10", saving=None, ber=0.01, ecc_overhead=0.0):
        calls.append((arch, tuple(generators), dataset, ber))
        if dataset != "cifar10":
            raise ValueError("energy model covers 32 px data only")
        return [{"generator": g, "es_twma": 18.96, "es_mac": 16.04} for g in generators]

    fake.energy_rows, fake.ECC_OVERHEADS = energy_rows, {"none": 0.0, "secded": 0.125}
    monkeypatch.setitem(sys.modules, "eval.energy", fake)
    a = make_eval_run(tmp_path, "a", bers=(0.01, 0.005))
    b = make_eval_run(tmp_path, "b", arch="resnet18Py", dataset="imagenet224")
    assert report.main([str(a), str(b)]) == 0
    rows = {(c[0], c[BER]): c for c in map(cells, table_lines(capsys.readouterr().out)[2:])}
    assert rows[("a", "1%")][17:19] == ["19.0", "16.0"]
    assert rows[("b", "1%")][17:19] == ["–", "–"]                        # unsupported setting
    assert len(calls) == 3                                               # cached per setting


def test_report_missing_results(tmp_path, capsys):
    empty = tmp_path / "not_evaluated"
    empty.mkdir()
    (empty / "metrics.jsonl").write_text("")
    assert report.main([str(empty)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and str(empty) in err
    assert report.main([str(tmp_path / "nowhere")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_report_refuses_a_wrong_typed_value_in_one_line(tmp_path, capsys):
    run = make_eval_run(tmp_path)
    res = json.loads((run / "results.json").read_text())
    res["sweep"][0]["PA_NF_mean"] = "80.0"                                # a string where a number belongs
    (run / "results.json").write_text(json.dumps(res))
    assert report.main([str(run)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(run / "results.json") in err and "sweep[0].PA_NF_mean" in err


def test_report_finds_nested_runs_and_labels_them(tmp_path, capsys, no_energy_module):
    gen = make_eval_run(tmp_path / "checkpoints" / "demo" / "cpu", "generator", arch="vgg11", lam=5.0)
    make_eval_run(tmp_path / "checkpoints", "resnet18_cifar10_ConvL_ber0.01_official")
    (tmp_path / "checkpoints" / "demo" / "cpu" / "base").mkdir()            # a run without results
    assert report.main([str(tmp_path / "checkpoints"), str(gen)]) == 0        # gen given twice: once
    out = capsys.readouterr().out
    ours = [c for c in map(cells, table_lines(out)[2:]) if c[0] != report.PAPER_LABEL]
    assert [c[0] for c in ours] == ["checkpoints/demo/cpu/generator",
                                    "checkpoints/resnet18_cifar10_ConvL_ber0.01_official"]
    assert ours[0][BASE:SPLIT] == ["vgg11", "ConvL", "vgg11", "cifar10", "official", "1%", "5", "4"]
    assert "2 runs (results.json) found under" in out


def test_report_reads_lambda_and_n_beside_the_generator(tmp_path, capsys, no_energy_module):
    run = make_eval_run(tmp_path, "transfer")
    g = tmp_path / "gen"
    g.mkdir()
    (g / "args.json").write_text(json.dumps({"eopm": {"lam": 0.1, "n_models": 10}}))
    res = json.loads((run / "results.json").read_text())
    res["settings"]["g_path"] = str(g / "best.pt")
    (run / "results.json").write_text(json.dumps(res))
    assert report.main([str(run), "--no-energy"]) == 0
    assert cells(table_lines(capsys.readouterr().out)[2])[LAM:SPLIT] == ["0.1", "10"]


def test_zs_main_report_end_to_end(tmp_path, capsys, no_energy_module):
    import zs_main
    run = make_eval_run(tmp_path)
    assert zs_main.main(["report", str(run)]) == 0
    out = capsys.readouterr().out
    assert "| run_a | resnet18 | ConvL | resnet18 | cifar10 | official | 1% | – | – | test |" in out
    assert zs_main.main(["report"]) == 2


def test_report_same_run_name_under_two_folders_gets_two_labels(tmp_path, capsys, no_energy_module):
    a = make_eval_run(tmp_path / "a", "gen", lam=5.0)
    b = make_eval_run(tmp_path / "b", "gen", lam=5.0, bers=(0.005,))
    assert report.main([str(a), str(b), "--no-energy"]) == 0
    names = [c[0] for c in map(cells, table_lines(capsys.readouterr().out)[2:]) if c[0] != report.PAPER_LABEL]
    assert names == ["gen", str(b.resolve())]


def test_report_secded_run_is_its_own_row_with_the_check_cells_paid(tmp_path, capsys):
    make_eval_run(tmp_path / "runs", "a")
    ecc = make_eval_run(tmp_path / "runs", "b")                           # same numbers, but under SECDED
    res = json.loads((ecc / "results.json").read_text())
    res["settings"]["fault"]["ecc"] = "secded"
    (ecc / "results.json").write_text(json.dumps(res))
    assert report.main([str(tmp_path / "runs")]) == 0
    rows = {cells(line)[0]: cells(line) for line in table_lines(capsys.readouterr().out)[2:]}
    assert "runs/a" in rows and "runs/b" in rows                          # not grouped as re-runs
    assert rows["runs/b"][5] == "official + SECDED" and rows["runs/a"][5] == "official"
    from eval.energy import ECC_OVERHEAD, energy_rows
    plain = energy_rows("resnet18", ["ConvL"], ber=0.01)[0]["es_twma"]
    with_ecc = energy_rows("resnet18", ["ConvL"], ber=0.01, ecc_overhead=ECC_OVERHEAD)[0]["es_twma"]
    assert float(rows["runs/a"][-3]) == pytest.approx(plain, abs=0.05)
    assert float(rows["runs/b"][-3]) == pytest.approx(with_ecc, abs=0.05) and with_ecc < plain - 1
    assert sum(1 for r in rows if r == report.PAPER_LABEL) == 1         # the paper has no ECC row


def test_report_fault_aware_base_is_labelled_and_gets_no_paper_row(tmp_path, capsys, no_energy_module):
    make_eval_run(tmp_path / "runs", "plain", lam=5.0)
    robust = make_eval_run(tmp_path / "runs", "robust", lam=5.0)          # same numbers, fault-aware base
    res = json.loads((robust / "results.json").read_text())
    res["settings"]["base_training"] = {"fault_aware": True, "clip_weights": 0.1}
    (robust / "results.json").write_text(json.dumps(res))
    assert report.main([str(tmp_path / "runs"), "--no-energy"]) == 0
    rows = [cells(line) for line in table_lines(capsys.readouterr().out)[2:]]
    assert [r[RUN] for r in rows] == ["runs/plain", report.PAPER_LABEL, "runs/robust"]   # not grouped as re-runs
    assert rows[0][BASE] == "resnet18" and rows[2][BASE] == "resnet18 (fault-aware, clip ±0.1)"


def test_comparison_bars_keep_base_training_ecc_and_transfer_apart(tmp_path, no_energy_module):
    from eval.plots import _category
    runs = {name: make_eval_run(tmp_path / "runs", name) for name in ("plain", "robust", "ecc")}
    runs["transfer"] = make_eval_run(tmp_path / "runs", "transfer", trained_on="vgg19/cifar10")
    for name, key, value in (("robust", "base_training", {"fault_aware": True}), ("ecc", "fault", "secded")):
        res = json.loads((runs[name] / "results.json").read_text())
        if key == "fault":
            res["settings"]["fault"]["ecc"] = value
        else:
            res["settings"][key] = value
        (runs[name] / "results.json").write_text(json.dumps(res))
    rows = [r for r in report.build_report([str(tmp_path / "runs")], energy=False).rows if not r["paper"]]
    labels = {r["run"]: _category(r) for r in rows}
    assert labels["runs/plain"] == "resnet18\n+ ConvL"
    assert labels["runs/robust"] == "resnet18 (fault-aware)\n+ ConvL"
    assert labels["runs/ecc"] == "resnet18\n+ ConvL\n+ SECDED"
    assert labels["runs/transfer"] == "resnet18\n+ ConvL\n(G from vgg19)"


def test_comparison_figure_legend_names_the_paper_marker_once(monkeypatch, tmp_path, no_energy_module):
    # the paper's row exists only at the second BER drawn: its marker must still be in the legend, once
    import matplotlib.axes
    from eval.plots import plot_comparison
    labels = []
    monkeypatch.setattr(matplotlib.axes.Axes, "legend", lambda ax, *a, **k: labels.append(
        ax.get_legend_handles_labels()[1]))
    make_eval_run(tmp_path / "runs", "sweep", bers=(0.001, 0.01), lam=5.0)
    rows = report.build_report([str(tmp_path / "runs")], energy=False).rows
    assert plot_comparison(rows)[:8] == PNG_SIGNATURE
    assert labels[0].count("paper") == 1 and "ours, BER 0.1%" in labels[0]

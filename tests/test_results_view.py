"""Results you can look at: the TensorBoard mirror (and its error without tensorboard), samples.png,
the self-contained HTML report."""
from __future__ import annotations

import base64
import json
import sys

import pytest
import torch

from bitflip import FaultConfig
from common.runs import UsageError, append_jsonl


def test_tensorboard_log_writes_every_metric(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from common.tblog import SUBDIR, TensorBoardLog
    log = TensorBoardLog(tmp_path)
    for epoch in (1, 2):                                                  # numbered from 1 (train.loop.fit)
        log({"epoch": epoch, "train_loss": 2.0 - epoch, "val_PA_NF": 39.0 + epoch, "lr": 1e-3, "note": "x"})
    log.close()
    acc = EventAccumulator(str(tmp_path / SUBDIR))
    acc.Reload()
    assert set(acc.Tags()["scalars"]) == {"train_loss", "val_PA_NF", "lr"}
    assert [(e.step, e.value) for e in acc.Scalars("val_PA_NF")] == [(1, 40.0), (2, 41.0)]


def test_tensorboard_missing_is_a_one_line_usage_error(monkeypatch, tmp_path):
    from common.tblog import TensorBoardLog
    monkeypatch.setitem(sys.modules, "tensorboard", None)              # import tensorboard -> ImportError
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    with pytest.raises(UsageError, match="pip install tensorboard") as e:
        TensorBoardLog(tmp_path)
    assert "\n" not in str(e.value)


@pytest.mark.slow
def test_samples_png(tmp_path):
    from eval.samples import N_SAMPLES, save_samples
    from generators import get_generator
    from models import get_model
    torch.manual_seed(0)
    base = get_model("vgg11", 10).eval().requires_grad_(False)
    gen = get_generator("ConvS").eval()
    x, y = torch.rand(N_SAMPLES + 2, 3, 32, 32) * 2 - 1, torch.arange(N_SAMPLES + 2)
    path = save_samples(base, gen, x, y, FaultConfig("official", 0.01), 50000, tmp_path / "samples.png")
    from PIL import Image
    with Image.open(path) as im:
        assert im.format == "PNG" and im.width > im.height > 300
    assert not any(layer.is_faulty for layer in base.modules() if hasattr(layer, "is_faulty"))


@pytest.mark.slow
def test_samples_label_classes_by_name():
    from datasets import get_dataset_info
    from eval.samples import N_SAMPLES, samples_figure
    from generators import get_generator
    from models import get_model
    torch.manual_seed(0)
    base = get_model("vgg11", 10).eval().requires_grad_(False)
    x, y = torch.rand(N_SAMPLES, 3, 32, 32) * 2 - 1, torch.arange(N_SAMPLES)
    names = get_dataset_info("cifar10").class_names
    fig = samples_figure(base, get_generator("ConvS").eval(), x, y, FaultConfig("official", 0.01), 50000, names)
    titles = [ax.get_title() for ax in fig.axes[:N_SAMPLES]]
    assert titles == [f"true: {n}" for n in names[:N_SAMPLES]] and titles[3] == "true: cat"
    predicted = fig.axes[0].get_xlabel()                                  # "M0: <class name>"
    assert predicted.startswith("M0: ") and predicted[4:] in names
    assert len(get_dataset_info("gtsrb").class_names) == 43                # GTSRB names its signs too


def _fake_run(folder, with_png=True):
    folder.mkdir(parents=True)
    res = {"CA": 90.0, "PA_mean": 40.0, "PA_std": 5.0, "CA_NF": 89.0, "PA_NF_mean": 80.0, "PA_NF_std": 2.0,
           "RP": 40.0, "per_seed": [{"seed": 1, "PA": 40.0, "PA_NF": 80.0}],
           "settings": {"arch": "resnet18", "dataset": "cifar10", "generator": "ConvL", "fault_model": "official",
                        "ber": 0.01, "fault": {"model": "official", "ber": 0.01, "position": -1, "bits": 8},
                        "seeds": [1], "testing_mode": "generator_base", "lam": 5.0}}
    res["sweep"] = [{**{k: res[k] for k in ("CA", "PA_mean", "PA_std", "CA_NF", "PA_NF_mean", "PA_NF_std",
                                            "RP", "per_seed")}, "ber": 0.01, "split": "test", "n_images": 20}]
    (folder / "results.json").write_text(json.dumps(res))
    append_jsonl(folder / "metrics.jsonl", {"epoch": 1, "train_loss": 1.0, "val_PA_NF": 50.0})
    if with_png:
        from eval.plots import plot_curves
        plot_curves(folder)


def test_report_html_is_self_contained(tmp_path, capsys):
    from eval.report import main as report_main
    _fake_run(tmp_path / "runs" / "a")
    _fake_run(tmp_path / "runs" / "b", with_png=False)
    out = tmp_path / "r.html"
    assert report_main([str(tmp_path / "runs"), "--html", str(out), "--no-energy"]) == 0
    page = out.read_text()
    assert page.startswith("<!DOCTYPE html>") and page.count("<section id=") == 2
    assert "<th>CA</th>" in page and "40.0 ± 5.0" in page and 'class="paper"' in page   # paper row kept
    # the two runs are re-runs of one evaluation: one row, linking to both run sections
    assert page.count('<a href="#run-') == 2 and 'id="run-1"' in page and 'id="run-2"' in page
    assert 'alt="comparison across runs' in page                        # the figure across runs
    assert "no pictures in this folder" in page and "src=\"file:" not in page
    png = page.split("data:image/png;base64,")[1].split('"')[0]
    assert base64.b64decode(png)[:8] == b"\x89PNG\r\n\x1a\n"
    assert "HTML report written to" in capsys.readouterr().err

"""Beyond the paper's setup, from the command line: your own torchvision classifier (a float state_dict,
quantized post-training), measured chip fault maps (chipmap), TensorBoard and samples.png."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import zs_main
from bitflip.chipmap import export_official
from tests.conftest import learnable_images

ARCH = "torchvision:mobilenet_v3_small"
TINY = ["--train-limit", "40", "--test-limit", "20", "-BS", "20", "-TBS", "20", "--no-download",
        "--device", "cpu"]
SEEDS = (50000, 50001)


def run_cli(*args):
    return zs_main.main([str(a) for a in args])


@pytest.fixture(scope="module")
def own(cifar_root, tmp_path_factory):
    """A float mobilenet_v3_small trained for a few steps here, saved as a plain state_dict; the official
    maps of SEEDS exported as chip folders; an EOPM run on those maps."""
    import torchvision
    out = tmp_path_factory.mktemp("own")
    torch.manual_seed(0)
    model = torchvision.models.mobilenet_v3_small(num_classes=10)
    x, y = learnable_images(80, seed=1)
    x = torch.tensor(x).permute(0, 3, 1, 2).float() / 127.5 - 1             # (80, 3, 32, 32) in [-1, 1]
    y = torch.tensor(y)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for step in range(8):
        idx = torch.arange(step * 10, step * 10 + 20) % 80
        opt.zero_grad()
        F.cross_entropy(model(x[idx]), y[idx]).backward()
        opt.step()
    torch.save(model.state_dict(), out / "float.pt")
    for s in SEEDS:
        export_official(out / "chips" / f"s{s}", s, 0.01, voltage="0.6")
    data = ["--data-root", cifar_root, *TINY]
    assert run_cli(ARCH, "transform_eopm_gen", "cifar10", "-cp", out / "float.pt", "-E", 1, "-N", 2, "-G",
                   "ConvS", "--fault-model", "chipmap", "--fault-map", out / "chips", "--tensorboard",
                   "--run-dir", out / "gen", *data) == 0
    return out, data


@pytest.mark.slow
def test_float_state_dict_is_quantized_and_evaluated(own, capsys):
    out, data = own
    assert run_cli(ARCH, "transform_eval", "cifar10", "-cp", out / "float.pt", "--testing-mode", "clean",
                   "--run-dir", out / "clean", *data) == 0
    text = capsys.readouterr().out
    first = text.index("post-training quantized")
    assert first < text.index("CA ")                     # the PTQ accuracy comes before anything else
    ca = json.loads((out / "clean" / "results.json").read_text())["CA"]
    assert f"{ca:.2f}%" in text.splitlines()[[i for i, ln in enumerate(text.splitlines())
                                              if "post-training quantized" in ln][0]]


def test_eopm_on_a_folder_of_maps(own):
    out, _ = own
    run = out / "gen"
    res = json.loads((run / "results.json").read_text())
    assert [r["seed"] for r in res["per_seed"]] == [0, 1]                  # one evaluation per map
    assert res["settings"]["fault"]["maps"][0].endswith("fmap_sa0_v_0.6.txt")
    assert abs(res["settings"]["ber"] - 0.01) < 0.001                     # measured, not -ber
    assert (run / "samples.png").is_file() and list((run / "tensorboard").glob("events.out.tfevents.*"))


@pytest.mark.slow
def test_chipmap_equals_official_per_seed(own):
    out, data = own
    g = out / "gen" / "best.pt"
    common = [ARCH, "transform_eval", "cifar10", "-cp", out / "float.pt", "--testing-mode", "generator_base",
              "--G-path", g, *data]
    assert run_cli(*common, "--eval-seeds", SEEDS[1], "--run-dir", out / "official") == 0
    assert run_cli(*common, "--fault-model", "chipmap", "--fault-map", out / "chips" / f"s{SEEDS[1]}",
                   "--run-dir", out / "chip") == 0
    off, chip = (json.loads((out / r / "results.json").read_text()) for r in ("official", "chip"))
    for key in ("PA", "PA_NF"):
        assert np.allclose([r[key] for r in off["per_seed"]], [r[key] for r in chip["per_seed"]])


@pytest.mark.parametrize("extra, message", [
    (["--fault-model", "chipmap"], "chipmap needs --fault-map"),
    (["--fault-model", "chipmap", "--fault-map", "CHIPS", "--voltage", "0.7"], "--voltage 0.7"),
    (["--fault-model", "chipmap", "--fault-map", "CHIPS", "--eval-bers", "0.01,0.02"], "--eval-bers"),
    (["--fault-map", "CHIPS"], "only used with --fault-model chipmap"),
])
def test_chipmap_usage_errors(own, capsys, extra, message):
    out, data = own
    extra = [str(out / "chips") if e == "CHIPS" else e for e in extra]
    assert run_cli(ARCH, "transform_eval", "cifar10", "-cp", out / "float.pt", *extra, "--run-dir",
                   out / "bad", *data) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_own_model_usage_errors(own, capsys, tmp_path):
    out, data = own
    code = run_cli("torchvision:nope", "transform_eval", "cifar10", "-cp", out / "float.pt", *data)  # argparse's
    assert code == 2 and "unknown torchvision classifier 'nope'" in capsys.readouterr().err
    import torchvision
    torch.save(torchvision.models.mobilenet_v3_small(num_classes=7).state_dict(), tmp_path / "seven.pt")
    assert run_cli(ARCH, "transform_eval", "cifar10", "-cp", tmp_path / "seven.pt", "--run-dir",
                   tmp_path / "r", *data) == 2
    err = capsys.readouterr().err
    assert "does not fit the model the command builds (other shape classifier.3.weight" in err
    assert "torchvision:mobilenet_v3_small's builder" in err
    assert err.count("\n") == 1


@pytest.mark.slow
def test_own_model_trains_with_qat_and_reloads(own, tmp_path):
    _, data = own
    assert run_cli("torchvision:squeezenet1_1", "train", "cifar10", "-E", 1, "--run-dir", tmp_path / "qat",
                   *data) == 0
    assert run_cli("torchvision:squeezenet1_1", "transform_eval", "cifar10", "-cp", tmp_path / "qat" / "best.pt",
                   "--testing-mode", "clean", "--run-dir", tmp_path / "clean", *data) == 0

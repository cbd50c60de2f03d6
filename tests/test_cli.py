"""The command line end to end on a tiny learnable CIFAR-10 copy: train -> transform_eopm_gen ->
transform_eval, the files each promises, resume/overwrite rules and one-line user errors."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import zs_main
from common.ckpt import load_checkpoint
from common.runs import read_jsonl

ROOT = Path(__file__).resolve().parent.parent
TINY = ["--train-limit", "40", "--test-limit", "20", "-BS", "20", "-TBS", "20", "--no-download",
        "--device", "cpu"]


def run_cli(*args):
    return zs_main.main([str(a) for a in args])


@pytest.fixture(scope="module")
def chain(cifar_root, tmp_path_factory):
    """One tiny run of every mode, shared by the tests below."""
    out = tmp_path_factory.mktemp("runs")
    data = ["--data-root", cifar_root, *TINY]
    assert run_cli("vgg11", "train", "cifar10", "-E", 1, "-LR", 0.01, "--run-dir", out / "base", *data) == 0
    base = out / "base" / "best.pt"
    assert run_cli("vgg11", "transform_eopm_gen", "cifar10", "-cp", base, "-E", 1, "-N", 2, "-G", "UNetS",
                   "--eval-seeds", "50000:50003", "--run-dir", out / "gen", *data) == 0
    assert run_cli("vgg11", "transform_eval", "cifar10", "-cp", base, "--testing-mode", "generator_base",
                   "--G-path", out / "gen" / "best.pt", "--eval-seeds", "1,2", "--eval-bers", "0.01,0.002,0",
                   "--run-dir", out / "eval", *data) == 0
    assert run_cli("vgg11", "transform_eval", "cifar10", "-cp", base, "--testing-mode", "clean",
                   "--run-dir", out / "clean", *data) == 0
    return out


@pytest.mark.slow
def test_train_writes_run_folder(chain):
    run = chain / "base"
    for f in ("args.json", "metrics.jsonl", "last.pt", "best.pt"):
        assert (run / f).is_file(), f
    rows = read_jsonl(run / "metrics.jsonl")
    assert [r["epoch"] for r in rows] == [1]        # numbered from 1, as printed
    ckpt = load_checkpoint(run / "best.pt", kind="base")
    assert ckpt["arch"] == "vgg11" and ckpt["dataset"] == "cifar10" and ckpt["num_classes"] == 10
    assert ckpt["config"]["data"]["train_limit"] == 40
    assert "val_acc" in rows[0] and not any(k.startswith("test") for k in rows[0])
    assert not list(run.glob("*.tmp")), "no temporary files left behind"


def test_eopm_and_eval_results(chain):
    keys = {"CA", "PA_mean", "PA_std", "CA_NF", "PA_NF_mean", "PA_NF_std", "RP"}
    for run, n_seeds in ((chain / "gen", 3), (chain / "eval", 2)):
        res = json.loads((run / "results.json").read_text())
        assert keys <= set(res)
        assert len(res["per_seed"]) == n_seeds
        pa = [r["PA"] for r in res["per_seed"]]
        pnf = [r["PA_NF"] for r in res["per_seed"]]
        assert res["PA_mean"] == pytest.approx(sum(pa) / n_seeds)
        assert res["RP"] == pytest.approx(sum(pnf) / n_seeds - res["PA_mean"])
        assert res["settings"]["fault_model"] == "official" and res["settings"]["arch"] == "vgg11"
        assert (run / "per_seed.csv").is_file() and (run / "summary.csv").is_file()
    sweep = json.loads((chain / "eval" / "results.json").read_text())["sweep"]
    assert [r["ber"] for r in sweep] == [0.01, 0.002, 0.0]
    no_faults = sweep[2]                  # BER 0: every perturbed model is the base model itself
    assert no_faults["PA_mean"] == no_faults["CA"] and no_faults["PA_NF_mean"] == no_faults["CA_NF"]
    gck = load_checkpoint(chain / "gen" / "best.pt", kind="generator")
    assert gck["generator"] == "UNetS" and gck["arch"] == "vgg11" and gck["fault"]["ber"] == 0.01
    clean = json.loads((chain / "clean" / "results.json").read_text())
    assert clean["settings"]["testing_mode"] == "clean" and "PA_mean" not in clean
    # one schema for both testing modes: the same top-level and settings keys
    gen_eval = json.loads((chain / "eval" / "results.json").read_text())
    assert set(clean) == {"CA", "per_seed", "settings", "sweep"}
    assert set(clean["settings"]) == set(gen_eval["settings"])
    assert clean["sweep"][0]["CA"] == clean["CA"] and clean["sweep"][0]["split"] == "test"


def test_every_mode_writes_args_json_with_code_version(chain):
    for run, mode in (("base", "train"), ("gen", "transform_eopm_gen"), ("eval", "transform_eval"),
                      ("clean", "transform_eval")):
        args = json.loads((chain / run / "args.json").read_text())
        assert args["run"]["mode"] == mode and args["code_version"]
        assert args["run"]["run_dir"] == str(chain / run)


def test_eval_refuses_existing_folder_without_F(chain, cifar_root, capsys):
    base = chain / "base" / "best.pt"
    args = ["vgg11", "transform_eval", "cifar10", "-cp", base, "--testing-mode", "clean",
            "--run-dir", chain / "clean", "--data-root", cifar_root, *TINY]
    assert run_cli(*args) == 2
    assert "-F" in capsys.readouterr().err
    assert run_cli(*args, "-F") == 0


def test_eval_default_folders_differ_by_setting():
    def folder(*argv):
        return zs_main.build_configs(zs_main.build_parser().parse_args(list(argv)))

    gen = ["vgg11", "transform_eval", "cifar10", "--testing-mode", "generator_base"]
    names = {folder(*gen).with_run_dir("ConvL").run.run_dir,
             folder(*gen).with_run_dir("UNetS").run.run_dir,
             folder(*gen, "-ber", "0.005").with_run_dir("ConvL").run.run_dir,
             folder(*gen, "--fault-model", "flip").with_run_dir("ConvL").run.run_dir,
             folder("vgg11", "transform_eval", "cifar10", "--testing-mode", "clean").with_run_dir().run.run_dir,
             folder("vgg11", "transform_eval", "gtsrb", "--testing-mode", "clean").with_run_dir().run.run_dir,
             folder("vgg16", "transform_eval", "cifar10", "--testing-mode", "clean").with_run_dir().run.run_dir}
    assert len(names) == 7


@pytest.mark.slow
def test_refuses_overwrite_then_resumes(chain, cifar_root, capsys):
    data = ["--data-root", cifar_root, *TINY]
    args = ["vgg11", "train", "cifar10", "--run-dir", chain / "base", *data]
    assert run_cli(*args, "-E", 1) == 2
    assert "-F" in capsys.readouterr().err
    assert run_cli(*args, "-E", 2, "-rt") == 2                       # -LR differs from the run's
    assert "-LR (run: 0.01, command: 0.001)" in capsys.readouterr().err
    assert run_cli(*args, "-E", 2, "-LR", 0.01, "-rt") == 0          # continues with epoch 2
    assert [r["epoch"] for r in read_jsonl(chain / "base" / "metrics.jsonl")] == [1, 2]
    assert load_checkpoint(chain / "base" / "last.pt")["epoch"] == 2


def test_checkpoint_mismatch_is_a_user_error(chain, cifar_root, capsys):
    code = run_cli("resnet18", "transform_eval", "cifar10", "-cp", chain / "base" / "best.pt",
                   "--data-root", cifar_root, *TINY, "--run-dir", chain / "x")
    err = capsys.readouterr().err.strip()
    assert code == 2 and "vgg11" in err and "resnet18" in err and "\n" not in err


def test_precision_mismatch_is_a_user_error(chain, cifar_root, capsys):
    code = run_cli("vgg11", "transform_eval", "cifar10", "-cp", chain / "base" / "best.pt", "--bits", "4",
                   "--data-root", cifar_root, *TINY, "--run-dir", chain / "x")
    assert code == 2 and "8-bit" in capsys.readouterr().err


@pytest.mark.parametrize("argv, needle", [
    (["resnet34", "train", "cifar10"], "resnet34"),
    (["resnet18", "fly", "cifar10"], "fly"),
    (["resnet18", "train", "mnist"], "mnist"),
    (["resnet18", "train", "cifar10", "-ber", "1.5"], "1.5"),
    (["resnet18", "train", "cifar10", "-G", "Big"], "Big"),
    (["resnet18", "train", "cifar10", "-pos", "9"], "-pos 9"),
    (["resnet18", "transform_eval", "cifar10"], "-cp"),
    (["resnet18", "train", "cifar10", "-G", "all"], "-G all"),
    (["resnet18", "transform_eopm_gen", "cifar10", "-G", "all"], "energy"),
])
@pytest.mark.slow
def test_bad_input_one_line_exit_2(argv, needle, tmp_path):
    p = subprocess.run([sys.executable, str(ROOT / "zs_main.py"), *argv, "--run-dir", str(tmp_path / "r"),
                        "--data-root", str(tmp_path)], capture_output=True, text=True, cwd=tmp_path)
    err = p.stderr.strip()
    assert p.returncode == 2, (p.returncode, err)
    assert needle in err and len(err.splitlines()) == 1 and "Traceback" not in err


def test_missing_data_is_clear(tmp_path, capsys):
    code = run_cli("vgg11", "train", "cifar10", "--data-root", tmp_path, "--no-download",
                   "--run-dir", tmp_path / "r", "-E", 1)
    err = capsys.readouterr().err
    assert code == 2 and "cifar-10-batches-py" in err

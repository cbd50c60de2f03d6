"""What a researcher sees: start-up lines, -rt on a finished run, checkpoint refusals."""
from __future__ import annotations

import json
import os
import warnings
from fractions import Fraction

import pytest
import torch

import zs_main
from common.ckpt import CheckpointError, load_checkpoint, save_checkpoint
from common.errors import UsageError
from common.runs import read_jsonl
from common.tblog import TensorBoardLog
from models.checkpoint import load_base
from models.external import read_float_state_dict


def summary(*argv: str) -> str:
    return zs_main.summary_line(zs_main.build_configs(zs_main.build_parser().parse_args(list(argv))))


def test_clean_evaluation_names_no_faults():
    line = summary("resnet18", "transform_eval", "cifar10", "--testing-mode", "clean", "-cp", "x.pt")
    assert "testing_mode clean" in line and "BER" not in line and "faults" not in line
    faulty = summary("resnet18", "transform_eval", "cifar10", "--testing-mode", "generator_base",
                     "-cp", "x.pt", "--G-path", "g.pt")
    assert "faults at BER 0.01" in faulty


def test_summary_says_where_settings_go_and_never_cp_none(tmp_path):
    line = summary("resnet18", "transform_eopm_gen", "cifar10", "--run-dir", str(tmp_path / "r"))
    assert "-cp None" not in line and "-cp missing" in line
    assert f"settings go to {os.path.join(str(tmp_path / 'r'), 'args.json')}" in line
    assert "full settings" not in line
    assert "args.json" not in summary("resnet18", "energy", "cifar10")


def test_a_file_that_is_no_checkpoint_gets_one_line_without_torch_advice(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("# NeuralFuse\nnot a checkpoint\n")
    for load in (lambda: load_checkpoint(readme, kind="base"), lambda: read_float_state_dict(str(readme))):
        with pytest.raises(CheckpointError) as e:
            load()
        msg = str(e.value)
        assert msg == f"{readme} is not a checkpoint of this tool (not a torch zip/pickle file)"
        assert "weights_only" not in msg


def test_a_pickle_of_foreign_objects_is_refused_without_torch_advice(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"state_dict": {}, "obj": Fraction(1, 3)}, path)    # a class weights_only refuses
    with pytest.raises(CheckpointError) as e, warnings.catch_warnings():
        warnings.simplefilter("ignore")                              # no checksum: torch.save directly
        load_checkpoint(path)
    assert "not a checkpoint of this tool" in str(e.value) and "weights_only" not in str(e.value)
    assert "\n" not in str(e.value)


def test_a_generator_given_as_base_points_at_g_path(tmp_path):
    path = tmp_path / "best.pt"
    save_checkpoint({"kind": "generator", "generator": "ConvL", "arch": "resnet18", "dataset": "cifar10",
                     "state_dict": {}}, path)
    with pytest.raises(UsageError) as e:
        load_base(str(path), "resnet18", "cifar10", 8, torch.device("cpu"), num_classes=10, input_size=32)
    assert str(e.value) == (f"{path} holds a generator; pass it as --G-path (with --testing-mode generator_base) "
                            f"and give the base model as -cp")
    save_checkpoint({"kind": "other", "state_dict": {}}, path)       # other kinds: refused as before
    with pytest.raises(CheckpointError, match="expected a 'base' one"):
        load_base(str(path), "resnet18", "cifar10", 8, torch.device("cpu"), num_classes=10, input_size=32)


TINY = ["--train-limit", "20", "--test-limit", "10", "-BS", "10", "-TBS", "10", "--no-download", "--device", "cpu"]


def run_cli(*args) -> int:
    return zs_main.main([str(a) for a in args])


@pytest.mark.slow
def test_rt_on_a_finished_run_does_only_what_is_missing(cifar_root, tmp_path, capsys):
    base = tmp_path / "base"
    train = ["vgg11", "train", "cifar10", "-E", 1, "-LR", 0.01, "--run-dir", base, "--data-root", cifar_root, *TINY]
    assert run_cli(*train) == 0
    stamp = (base / "last.pt").stat().st_mtime_ns, (base / "args.json").read_text()
    capsys.readouterr()
    assert run_cli(*train, "-rt") == 0
    out = capsys.readouterr().out
    assert f"-rt: the run in {base} is already complete (1 epochs trained, -E 1); nothing to do" in out
    assert "resuming" not in out and "done: best.pt" not in out
    assert ((base / "last.pt").stat().st_mtime_ns, (base / "args.json").read_text()) == stamp

    gen = tmp_path / "gen"
    eopm = ["vgg11", "transform_eopm_gen", "cifar10", "-cp", base / "best.pt", "-G", "ConvS", "-N", 2, "-E", 1,
            "--eval-seeds", "1", "--run-dir", gen, "--data-root", cifar_root, *TINY]
    assert run_cli(*eopm) == 0
    (gen / "results.json").unlink()
    last = (gen / "last.pt").stat().st_mtime_ns
    capsys.readouterr()
    assert run_cli(*eopm, "-rt") == 0                    # training done, results missing: the evaluation only
    out = capsys.readouterr().out
    assert "is already complete (1 epochs trained, -E 1); results.json is missing: running only the final " \
           "evaluation" in out
    assert "resuming" not in out and "epoch 2" not in out
    assert (gen / "last.pt").stat().st_mtime_ns == last
    assert (gen / "results.json").is_file()
    assert [r["epoch"] for r in read_jsonl(gen / "metrics.jsonl")] == [1]
    written = (gen / "results.json").stat().st_mtime_ns
    capsys.readouterr()
    assert run_cli(*eopm, "-rt") == 0                    # now complete: nothing is redone
    assert "nothing to do" in capsys.readouterr().out
    assert (gen / "results.json").stat().st_mtime_ns == written


def tensorboard_events(folder):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    acc = EventAccumulator(str(folder), size_guidance={"images": 0, "scalars": 0})
    acc.Reload()
    return acc


@pytest.mark.slow
def test_tensorboard_gets_the_final_test_numbers_and_samples(cifar_root, tmp_path):
    base = tmp_path / "base"
    assert run_cli("vgg11", "train", "cifar10", "-E", 1, "-LR", 0.01, "--run-dir", base, "--data-root", cifar_root,
                   *TINY) == 0
    gen = tmp_path / "gen"
    assert run_cli("vgg11", "transform_eopm_gen", "cifar10", "-cp", base / "best.pt", "-G", "ConvS", "-N", 2, "-E", 1,
                   "--eval-seeds", "1,2", "--tensorboard", "--run-dir", gen, "--data-root", cifar_root, *TINY) == 0
    results = json.loads((gen / "results.json").read_text())
    acc = tensorboard_events(gen / "tensorboard")
    for tag, key in {"test/CA": "CA", "test/PA": "PA_mean", "test/CA_NF": "CA_NF", "test/PA_NF": "PA_NF_mean",
                     "test/RP": "RP"}.items():
        (event,) = acc.Scalars(tag)
        assert event.step == 1 and event.value == pytest.approx(results[key], abs=1e-4), tag
    (image,) = acc.Images("test/samples")
    assert image.step == 1 and image.width > 0 and image.height > 0
    assert acc.Scalars("train_loss")                   # the per-epoch rows are still there


def test_tensorboard_final_skips_missing_numbers(tmp_path):
    log = TensorBoardLog(tmp_path)
    log.final({"CA": 91.5, "PA_mean": float("nan")}, step=3)      # clean evaluation: CA only; NaN: nothing
    log.close()
    acc = tensorboard_events(tmp_path / "tensorboard")
    assert acc.Tags()["scalars"] == ["test/CA"] and acc.Scalars("test/CA")[0].value == pytest.approx(91.5)


def test_rt_on_a_finished_run_without_best_pt_is_one_line(tmp_path):
    from train.resume import resume
    model = torch.nn.Linear(2, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    config = {"run": {"arch": "vgg11"}, "train": {"epochs": 2}}
    save_checkpoint({"kind": "base", "arch": "vgg11", "dataset": "cifar10", "state_dict": model.state_dict(),
                     "optimizer": opt.state_dict(), "epoch": 2, "best": 50.0, "config": config}, tmp_path / "last.pt")
    with pytest.raises(UsageError, match="finished its 2 epochs but best.pt is missing"):
        resume(tmp_path, "base", model, opt, epochs=2)
    assert resume(tmp_path, "base", model, opt, epochs=3, is_main=False) == (2, 50.0)   # more epochs: resumes

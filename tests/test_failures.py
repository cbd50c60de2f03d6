"""Hostile-user battery (issue 11): every bad input is one line on stderr and exit code 2 (never a
traceback); planted pickles do not run; a non-finite loss stops the run and keeps the last good
checkpoint; -rt refuses another run's settings; -F and transform_eval never destroy a finished run
by mistake; interrupted writes leave nothing behind. Tiny data; each case takes a second or two."""
from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import zs_main
from common.ckpt import load_checkpoint, save_checkpoint
from common.lock import LOCK_NAME
from common.runs import read_jsonl
from common.session import interrupted_message
from test_datasets import write_gtsrb
from train.loop import NonFiniteLoss, TrainingTask, fit, train_one_epoch

ROOT = Path(__file__).resolve().parent.parent
TINY = ["--train-limit", "10", "--test-limit", "10", "-BS", "10", "-TBS", "10", "--no-download",
        "--device", "cpu"]


def cli(*args) -> int:
    try:
        return zs_main.main([str(a) for a in args])
    except SystemExit as e:          # argparse's own one-line errors exit from inside main
        return e.code


@pytest.fixture(scope="module")
def runs(cifar_root, tmp_path_factory):
    """A finished one-epoch base run and generator run (ConvS), shared by the cases below."""
    out = tmp_path_factory.mktemp("runs")
    data = ["--data-root", cifar_root, *TINY]
    assert cli("vgg11", "train", "cifar10", "-E", 1, "-LR", 0.01, "--run-dir", out / "base", *data) == 0
    assert cli("vgg11", "transform_eopm_gen", "cifar10", "-cp", out / "base" / "best.pt", "-E", 1, "-N", 1,
               "-G", "ConvS", "--eval-seeds", "1", "--run-dir", out / "gen", *data) == 0
    return out


def planted_cifar(cifar_root: Path, dest: Path) -> Path:
    """A copy of the CIFAR tree whose first batch file runs a command when unpickled by `pickle`."""
    shutil.copytree(cifar_root, dest)

    class Payload:
        def __reduce__(self):
            return os.system, (f"touch {dest / 'PWNED'}",)
    (dest / "cifar-10-batches-py" / "data_batch_1").write_bytes(pickle.dumps({b"data": Payload()}))
    return dest


def bad_image_gtsrb(dest: Path) -> Path:
    write_gtsrb(dest)
    # a training image: the test split is read only by the final evaluation (model selection uses val)
    (dest / "gtsrb" / "GTSRB" / "Training" / "00001" / "00000_00001.ppm").write_bytes(b"P6\n40 33\n255\n\x00")
    return dest


def retyped_run(runs: Path, dest: Path, **fields) -> Path:
    """A copy of the finished base run whose last.pt has `fields` replaced (types another code wrote)."""
    shutil.copytree(runs / "base", dest)
    ckpt = load_checkpoint(dest / "last.pt")
    save_checkpoint({**ckpt, **fields}, dest / "last.pt")
    return dest


def empty_npz(dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "chip.npz").write_bytes(b"")
    return dest / "chip.npz"


def headless_checkpoint(dest: Path, **fields) -> Path:
    save_checkpoint({"kind": "base", "state_dict": {}, **fields}, dest / "odd.pt")
    return dest / "odd.pt"


# (case id, argv builder (runs, cifar_root, tmp_path) -> argv, text the one-line error must contain)
CASES = [
    ("planted pickle", lambda r, c, t: ["vgg11", "train", "cifar10", "--data-root", planted_cifar(c, t / "d"),
                                        "--run-dir", t / "x", *TINY], "refused to load"),
    ("corrupt image", lambda r, c, t: ["vgg11", "train", "gtsrb", "--data-root", bad_image_gtsrb(t / "g"),
                                       "--workers", 1, "-E", 1, "--run-dir", t / "x", *TINY], "00000_00001.ppm"),
    ("checkpoint without metadata", lambda r, c, t: ["vgg11", "transform_eval", "cifar10", "-cp",
                                                     headless_checkpoint(t), "--run-dir", t / "x"], "arch, dataset"),
    ("checkpoint of another shape", lambda r, c, t: ["vgg11", "transform_eval", "cifar10", "-cp",
                                                     headless_checkpoint(t, arch="vgg11", dataset="cifar10", num_classes=10),
                                                     "--run-dir", t / "x"], "does not fit"),
    ("-rt other arch", lambda r, c, t: ["resnet18", "train", "cifar10", "-rt", "--run-dir", r / "base",
                                        "-LR", 0.01, "--data-root", c, *TINY], "ARCH (run: vgg11, command: resnet18)"),
    ("-rt other LR", lambda r, c, t: ["vgg11", "train", "cifar10", "-rt", "-E", 2, "--run-dir", r / "base",
                                      "-LR", 0.5, "--data-root", c, *TINY], "-LR (run: 0.01, command: 0.5)"),
    ("-rt other generator", lambda r, c, t: ["vgg11", "transform_eopm_gen", "cifar10", "-rt", "-E", 2, "-N", 1,
                                             "-cp", r / "base" / "best.pt", "-G", "ConvL", "--run-dir", r / "gen",
                                             "--data-root", c, *TINY], "-G (run: ConvS, command: ConvL)"),
    ("-rt config of another type", lambda r, c, t: ["vgg11", "train", "cifar10", "-rt", "-E", 2, "-LR", 0.01,
                                                    "--run-dir", retyped_run(r, t / "rt", config=["x"]),
                                                    "--data-root", c, *TINY], "'config' is list"),
    ("-rt config section of another type", lambda r, c, t: [
        "vgg11", "train", "cifar10", "-rt", "-E", 2, "-LR", 0.01, "--data-root", c, *TINY,
        "--run-dir", retyped_run(r, t / "rt", config={"run": "vgg11"})], "'config.run' is str"),
    ("-rt epoch of another type", lambda r, c, t: ["vgg11", "train", "cifar10", "-rt", "-E", 2, "-LR", 0.01,
                                                   "--run-dir", retyped_run(r, t / "rt", epoch="1"),
                                                   "--data-root", c, *TINY], "'epoch' is str"),
    ("0-byte .npz fault map", lambda r, c, t: ["vgg11", "transform_eval", "cifar10", "-cp", r / "base" / "best.pt",
                                               "--fault-model", "chipmap", "--fault-map", empty_npz(t),
                                               "--run-dir", t / "x", "--data-root", c, *TINY], "chip.npz"),
    ("-LR nan", lambda r, c, t: ["vgg11", "train", "cifar10", "-LR", "nan"], "nan"),
    ("-LR inf", lambda r, c, t: ["vgg11", "train", "cifar10", "-LR", "inf"], "inf"),
    ("-LR negative", lambda r, c, t: ["vgg11", "train", "cifar10", "-LR", "-0.1"], "-0.1"),
    ("-LM nan", lambda r, c, t: ["vgg11", "train", "cifar10", "-LM", "nan"], "nan"),
    ("-LM negative", lambda r, c, t: ["vgg11", "train", "cifar10", "-LM", "-1"], "-1"),
    ("--seed negative", lambda r, c, t: ["vgg11", "train", "cifar10", "--seed", "-3"], "-3"),
    ("-G all outside energy", lambda r, c, t: ["vgg11", "train", "cifar10", "-G", "all"], "-G all"),
    ("--run-dir is a file", lambda r, c, t: ["vgg11", "train", "cifar10", "--data-root", c, *TINY,
                                             "--run-dir", r / "base" / "best.pt"], "best.pt"),
    ("--run-dir under a file", lambda r, c, t: ["vgg11", "train", "cifar10", "--data-root", c, *TINY,
                                                "--run-dir", r / "base" / "best.pt" / "sub"], "best.pt"),
    ("transform_eval into a finished folder", lambda r, c, t: [
        "vgg11", "transform_eval", "cifar10", "-cp", r / "base" / "best.pt", "--testing-mode", "clean",
        "--run-dir", r / "gen", "--data-root", c, *TINY], "-F"),
]


@pytest.mark.slow
@pytest.mark.parametrize("build, needle", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_and_exit_2(build, needle, runs, cifar_root, tmp_path, capsys):
    before = {p: p.stat().st_mtime_ns for p in runs.rglob("*") if p.is_file() and p.name != LOCK_NAME}
    code = cli(*build(runs, cifar_root, tmp_path))
    err = capsys.readouterr().err.strip()
    lines = [ln for ln in err.replace("\r", "\n").splitlines()          # not warnings, not an epoch's bar
             if "warning" not in ln and ln.strip() and "it/s]" not in ln]
    assert code == 2, err
    assert len(lines) == 1 and "Traceback" not in err, err
    assert needle in lines[0], lines[0]
    after = {p: p.stat().st_mtime_ns for p in runs.rglob("*") if p.is_file() and p.name != LOCK_NAME}
    assert after == before, "a finished run changed"      # (the lock file records who asked last)
    assert not (tmp_path / "d" / "PWNED").exists(), "the planted pickle ran a command"


def test_unknown_testing_mode_in_config_names_the_choices(runs, cifar_root, tmp_path, capsys, monkeypatch):
    real = zs_main.field_default
    monkeypatch.setattr(zs_main, "field_default", lambda cls, name: "generator_bsae"
                        if name == "testing_mode" else real(cls, name))      # as if config.py said so
    code = cli("vgg11", "transform_eval", "cifar10", "-cp", runs / "base" / "best.pt", "--data-root", cifar_root,
               *TINY, "--run-dir", tmp_path / "x")
    err = capsys.readouterr().err.strip()
    assert code == 2 and "generator_bsae" in err and "clean" in err and len(err.splitlines()) == 1


@pytest.mark.slow
def test_transform_eval_with_force_replaces_its_own_results(runs, cifar_root, tmp_path):
    args = ["vgg11", "transform_eval", "cifar10", "-cp", runs / "base" / "best.pt", "--testing-mode", "clean",
            "--data-root", cifar_root, *TINY, "--run-dir", tmp_path / "ev"]
    assert cli(*args) == 0
    assert cli(*args) == 2
    assert cli(*args, "-F") == 0


@pytest.mark.parametrize("content, needle", [
    (b"\xff\xfe\x00binary", "unreadable"), (b"{not json", "unreadable"), (b"[1, 2]", "expected an object"),
    (b'{"settings": 3}', "settings is 3"), (b'{"sweep": [1]}', "sweep[0]"),
])
def test_report_on_a_bad_results_file(content, needle, tmp_path, capsys):
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "results.json").write_bytes(content)
    assert cli("report", tmp_path / "r") == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and len(err.splitlines()) == 1


def test_report_out_naming_a_folder(runs, tmp_path, capsys):
    assert cli("report", runs / "gen", "--out", tmp_path) == 2
    err = capsys.readouterr().err.strip()
    assert "is a folder" in err and len(err.splitlines()) == 1


@pytest.mark.slow
def test_cli_error_has_no_traceback_in_a_real_process(runs, cifar_root, tmp_path):
    """The same guarantee through the real entry point (warnings and all): -rt with another -LR."""
    p = subprocess.run([sys.executable, str(ROOT / "zs_main.py"), "vgg11", "train", "cifar10", "-rt", "-E", "1",
                        "--run-dir", str(runs / "base"), "-LR", "0.3", "--data-root", str(cifar_root), *TINY],
                       capture_output=True, text=True, cwd=tmp_path)
    errors = [ln for ln in p.stderr.splitlines() if "error:" in ln]   # (the test data also warn: not official)
    assert p.returncode == 2 and "Traceback" not in p.stderr and len(errors) == 1
    assert "-LR (run: 0.01, command: 0.3)" in errors[0]               # the refusal names the changed flag


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    """Epoch 1 trains normally; epoch 2's second step goes NaN: stop there, last.pt stays epoch 1's."""
    model = torch.nn.Linear(2, 1)
    batches = [(torch.ones(4, 2), torch.zeros(4))] * 3

    def one_epoch(epoch):
        steps = iter([1.0, float("nan") if epoch == 1 else 1.0, 1.0])
        return train_one_epoch(lambda x, y: {"loss": next(steps)}, batches, torch.device("cpu"), "t")

    with pytest.raises(NonFiniteLoss, match=r"epoch 2, step 2.*last good checkpoint .*epoch 1"):
        fit(TrainingTask(one_epoch, lambda e: {"acc": 1.0}, lambda e, m, b: {"state_dict": model.state_dict(),
                                                                           "epoch": e}, "acc"),
            tmp_path, 3, 0, -1.0, log=lambda s: None)
    assert load_checkpoint(tmp_path / "last.pt")["epoch"] == 1                 # epochs numbered from 1
    assert [r["epoch"] for r in read_jsonl(tmp_path / "metrics.jsonl")] == [1]


@pytest.mark.slow
def test_huge_learning_rate_stops_with_one_line(cifar_root, tmp_path, capsys):
    code = cli("vgg11", "train", "cifar10", "-E", 2, "-LR", "1e30", "--data-root", cifar_root, *TINY,
               "-BS", 5, "--run-dir", tmp_path / "r")
    errors = [ln for ln in capsys.readouterr().err.replace("\r", "\n").splitlines() if "error" in ln]
    assert code == zs_main.EXIT_DIVERGED and len(errors) == 1
    assert "non-finite" in errors[0] and "epoch 1, step" in errors[0]
    assert not (tmp_path / "r" / "best.pt").exists()


@pytest.mark.parametrize("torn", [b'{"epoch": 1, "tor', b'{"epoch": 2, "val\xff\xfe\x81\xc3('],
                         ids=["ascii", "non-utf8"])
@pytest.mark.slow
def test_resume_repairs_log_and_removes_stale_temps(runs, cifar_root, tmp_path, torn):
    run = tmp_path / "run"
    shutil.copytree(runs / "base", run)
    (run / ".last.pt.abc123.tmp").write_bytes(b"half a checkpoint")
    rows = read_jsonl(run / "metrics.jsonl")
    (run / "metrics.jsonl").write_bytes("".join(json.dumps(r) + "\n" for r in rows * 2).encode() + torn)
    assert cli("vgg11", "train", "cifar10", "-rt", "-E", 2, "-LR", 0.01, "--data-root", cifar_root, *TINY,
               "--run-dir", run) == 0
    assert [r["epoch"] for r in read_jsonl(run / "metrics.jsonl")] == [1, 2]
    assert not list(run.glob("*.tmp"))


def test_output_files_respect_the_umask(tmp_path):
    from common import ckpt
    old = os.umask(0o027)
    ckpt._file_mode.cache_clear()
    try:
        save_checkpoint({"state_dict": {}}, tmp_path / "a.pt")
    finally:
        os.umask(old)
        ckpt._file_mode.cache_clear()
    assert (tmp_path / "a.pt").stat().st_mode & 0o777 == 0o640


def test_restricted_unpickler_reads_plain_data_and_arrays(tmp_path):
    import numpy as np
    from datasets.cifar import _unpickle
    for protocol in (2, 4, 5):
        f = tmp_path / f"p{protocol}"
        f.write_bytes(pickle.dumps({b"data": np.arange(6, dtype=np.uint8).reshape(2, 3), b"labels": [1, 2],
                                    b"n": np.int64(3), "s": "x"}, protocol=protocol))
        d = _unpickle(f)
        assert d["data"].tolist() == [[0, 1, 2], [3, 4, 5]] and d["labels"] == [1, 2] and d["n"] == 3
        assert d["s"] == "x"


@pytest.mark.parametrize("mode", ["train", "transform_eopm_gen", "transform_eval"])
def test_force_with_bad_input_leaves_the_old_run_intact(mode, runs, cifar_root, tmp_path, capsys):
    """-F replaces a run only once the new one has its inputs: a typo in --data-root destroys nothing."""
    import shutil
    folder = tmp_path / "old"
    shutil.copytree(runs / ("base" if mode == "train" else "gen"), folder)
    before = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}
    extra = [] if mode == "train" else ["-cp", runs / "base" / "best.pt"]
    if mode == "transform_eval":
        extra += ["--testing-mode", "generator_base", "--G-path", runs / "gen" / "best.pt"]
    code = cli("vgg11", mode, "cifar10", *extra, "-F", "--run-dir", folder, *TINY,
               "--data-root", tmp_path / "no-such-data")
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "no-such-data" in err
    assert {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()} == before


def test_ctrl_c_message_survives_a_torn_log_line(tmp_path):
    """Ctrl-C during a metrics.jsonl append leaves half a line: the message still counts the saved epochs."""
    save_checkpoint({"state_dict": {}, "epoch": 2}, tmp_path / "last.pt")     # epoch 3's row was being appended
    (tmp_path / "metrics.jsonl").write_text('{"epoch": 1}\n{"epoch": 2}\n{"epoch": 3, "tor')
    msg = interrupted_message(tmp_path, trains=True)
    assert "epochs 1-2 are saved" in msg and "-rt" in msg


def test_read_jsonl_repairs_a_torn_last_line_and_refuses_a_bad_middle_one(tmp_path):
    from common.runs import UsageError
    path = tmp_path / "metrics.jsonl"
    path.write_bytes(b'{"epoch": 1}\n{"epoch": 2}\n\xff\xfe{"ep\x81')         # non-UTF-8 torn tail
    assert read_jsonl(path) == [{"epoch": 1}, {"epoch": 2}]
    path.write_bytes(b'{"epoch": 1}\n\xff\xfe\n{"epoch": 3}\n')
    assert read_jsonl(path, skip_bad=True) == [{"epoch": 1}, {"epoch": 3}]
    with pytest.raises(UsageError, match="metrics.jsonl: line 2 is not a JSON object"):
        read_jsonl(path)
    path.write_text('{"epoch": 1}\n[1, 2]\n{"epoch": 3}\n')
    with pytest.raises(UsageError, match="line 2"):
        read_jsonl(path)


def test_metrics_log_that_is_a_folder_is_one_line(tmp_path):
    from common.ckpt import WriteError
    from common.runs import UsageError, append_jsonl
    (tmp_path / "metrics.jsonl").mkdir()
    with pytest.raises(UsageError, match="cannot read .*metrics.jsonl: Is a directory"):
        read_jsonl(tmp_path / "metrics.jsonl")
    with pytest.raises(WriteError, match="cannot write .*metrics.jsonl: Is a directory"):
        append_jsonl(tmp_path / "metrics.jsonl", {"epoch": 1})


def test_disk_full_during_an_append_is_one_line(tmp_path, monkeypatch):
    from common.ckpt import WriteError
    from common.runs import append_jsonl
    real = open
    monkeypatch.setattr("builtins.open", lambda f, *a, **k: real("/dev/full", "a") if str(f).endswith(".jsonl")
                        else real(f, *a, **k))
    with pytest.raises(WriteError, match="metrics.jsonl: No space left on device"):
        append_jsonl(tmp_path / "metrics.jsonl", {"epoch": 1})


@pytest.mark.slow
def test_training_into_a_folder_with_metrics_log_as_a_folder(cifar_root, tmp_path, capsys):
    (tmp_path / "r" / "metrics.jsonl").mkdir(parents=True)
    code = cli("vgg11", "train", "cifar10", "-E", 1, "-LR", 0.01, "--data-root", cifar_root, *TINY,
               "--run-dir", tmp_path / "r")
    err = [ln for ln in capsys.readouterr().err.replace("\r", "\n").splitlines() if "error" in ln]
    assert code == 2 and len(err) == 1 and "metrics.jsonl: Is a directory" in err[0]


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["train", "transform_eval", "resume"])
def test_read_only_run_folder_is_one_line(mode, runs, cifar_root, tmp_path, capsys, monkeypatch):
    """EROFS simulated where every file of ours is created (tests run as root, which chmod does not
    stop): train, transform_eval and -rt each end in one line, the finished run untouched."""
    import errno
    from common import ckpt
    folder = tmp_path / "ro"
    if mode == "resume":
        shutil.copytree(runs / "base", folder)
    before = {p.name: p.read_bytes() for p in folder.glob("*") if p.is_file() and p.name != LOCK_NAME}

    def read_only(*a, **k):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))
    monkeypatch.setattr(ckpt.tempfile, "mkstemp", read_only)
    args = {"train": ["train", "-E", 1], "resume": ["train", "-E", 2, "-rt"],
            "transform_eval": ["transform_eval", "-cp", runs / "base" / "best.pt", "--testing-mode", "clean"]}[mode]
    code = cli("vgg11", args[0], "cifar10", *args[1:], "-LR", 0.01, "--data-root", cifar_root, *TINY,
               "--run-dir", folder)
    err = [ln for ln in capsys.readouterr().err.replace("\r", "\n").splitlines() if "error" in ln]
    assert code == 2 and len(err) == 1 and "Read-only file system" in err[0] and str(folder) in err[0], err
    assert {p.name: p.read_bytes() for p in folder.glob("*") if p.is_file() and p.name != LOCK_NAME} == before

"""One run lifecycle (common/session.py): Session tears down on success and on error, one speed check for
every mode, and one rule for a run folder's state shared by the guard, the Ctrl-C message, `sweep`
(grid.status) and the demo's stages; and the layering: no module of models/ imports datasets/."""
from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path


import pytest
import torch

import demo
import grid
from common import session
from common.ckpt import save_checkpoint
from common.dist import DistInfo
from common.errors import UsageError
from common.runs import UsageError as ReexportedUsageError
from common.session import (Session, check_speed, folder_state, interrupted_message, prepare_run_dir,
                            run_artefacts, saved_epoch)
from config import PerfConfig, RunConfig

ROOT = Path(__file__).resolve().parent.parent


# --- folders as runs leave them -----------------------------------------------------------------------

def _ckpt(folder: Path, name: str, epoch: int) -> None:
    save_checkpoint({"kind": "base", "state_dict": {"w": torch.zeros(3)}, "epoch": epoch}, folder / name)


def _log(folder: Path, epochs: int, torn: bool = False) -> None:
    rows = "".join(f'{{"epoch": {e}, "val_acc": 50.0}}\n' for e in range(1, epochs + 1))
    (folder / "metrics.jsonl").write_text(rows + ('{"epoch": %d, "val_a' % (epochs + 1) if torn else ""))


def make_folder(root: Path, kind: str) -> Path:
    """A run folder as each situation leaves it (a 3-epoch training run)."""
    f = root / kind
    f.mkdir(parents=True)
    (f / "args.json").write_text("{}")
    if kind == "torn":                     # SIGKILL during epoch 3's log append: last.pt holds epoch 3
        _ckpt(f, "last.pt", 3), _ckpt(f, "best.pt", 2), _log(f, 2, torn=True)
    elif kind == "killed":                 # killed during epoch 2: last.pt of epoch 1, no results
        _ckpt(f, "last.pt", 1), _ckpt(f, "best.pt", 1), _log(f, 1)
    elif kind == "finished":               # all 3 epochs, evaluated
        _ckpt(f, "last.pt", 3), _ckpt(f, "best.pt", 2), _log(f, 3)
        (f / "results.json").write_text("{}")
    elif kind == "artefacts":              # files of a run, nothing resumable (last.pt lost or torn)
        _ckpt(f, "best.pt", 1), _log(f, 1)
        (f / "last.pt").write_bytes(b"\x80half a checkpoint")
    elif kind == "args_only":              # stopped before its first epoch finished
        pass
    return f


@pytest.mark.parametrize("kind, with_epochs, without_epochs", [
    ("torn", "partial", "partial"), ("killed", "partial", "partial"), ("finished", "done", "done"),
    ("artefacts", "new", "new"), ("args_only", "new", "new")])
def test_folder_state(tmp_path, kind, with_epochs, without_epochs):
    f = make_folder(tmp_path, kind)
    assert folder_state(f, epochs=3) == with_epochs
    assert folder_state(f) == without_epochs
    assert folder_state(tmp_path / "absent") == folder_state(tmp_path / "absent", 3) == "new"


def test_folder_state_needs_the_log_and_best_pt_for_done(tmp_path):
    f = make_folder(tmp_path, "torn")                    # last.pt reached 3, the log only 2
    assert folder_state(f, epochs=2) == "done" and folder_state(f, epochs=3) == "partial"
    (f / "best.pt").unlink()
    assert folder_state(f, epochs=2) == "partial"
    (f / "metrics.jsonl").write_bytes(b'{"epoch": 1}\n\xff\xfe\x00 not text')   # undecodable bytes
    _ckpt(f, "best.pt", 1)
    assert folder_state(f, epochs=1) == "done"


@pytest.mark.parametrize("kind", ["torn", "killed", "finished", "artefacts", "args_only"])
def test_guard_refuses_any_run_artefact_without_F_or_rt(tmp_path, kind):
    f = make_folder(tmp_path, kind)
    before = sorted(run_artefacts(f))
    with pytest.raises(UsageError, match="-F") as e:
        prepare_run_dir(f, force=False, resume=False)
    assert str(e.value).count("\n") == 0 and before[0] in str(e.value)
    assert ("-rt to resume" in str(e.value)) == (saved_epoch(f) is not None)   # -rt: a readable last.pt
    assert sorted(run_artefacts(f)) == before                       # refused: nothing touched
    if not (f / "last.pt").is_file():           # a torn last.pt passes: train.resume names what is wrong
        with pytest.raises(UsageError, match="nothing to resume"):
            prepare_run_dir(f, force=False, resume=True)
    else:
        assert prepare_run_dir(f, force=False, resume=True) == f
    prepare_run_dir(f, force=True, resume=False)
    assert run_artefacts(f) == ["args.json"]                       # -F: the old run's files are gone


def test_guard_takes_an_empty_or_missing_folder(tmp_path):
    assert prepare_run_dir(tmp_path / "new" / "run", force=False, resume=False).is_dir()
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "notes.txt").write_text("mine")           # not a run file
    assert prepare_run_dir(tmp_path / "plain", force=False, resume=False) == tmp_path / "plain"


@pytest.mark.parametrize("kind, needles", [
    ("torn", ["epochs 1-3 are saved", "plus -rt"]), ("killed", ["epochs 1-1 are saved", "plus -rt"]),
    ("finished", ["results were written", "nothing is lost"]),
    ("artefacts", ["nothing to resume", "again with -F"]), ("args_only", ["nothing to resume", "again with -F"])])
def test_ctrl_c_message(tmp_path, kind, needles):
    msg = interrupted_message(make_folder(tmp_path, kind), trains=True)
    assert all(n in msg for n in needles), msg
    assert "\n" not in msg
    empty = interrupted_message(tmp_path / "absent", trains=True)
    assert "nothing to resume" in empty and "-F" not in empty
    assert interrupted_message(tmp_path, trains=False) == "interrupted; no results were written"


# --- the callers that own their folders: sweep (grid.status) and the demo's stages ----------------------

@pytest.mark.parametrize("kind, base_status, gen_status, flag", [
    ("torn", "partial", "partial", "-rt"), ("killed", "partial", "partial", "-rt"),
    ("finished", "done", "done", None), ("artefacts", "new", "new", "-F"), ("args_only", "new", "new", "-F")])
def test_sweep_status_and_command(tmp_path, kind, base_status, gen_status, flag):
    f = make_folder(tmp_path, kind)
    base = grid.Run("b", "base", f, ("vgg11", "train", "cifar10"), epochs=3)
    gen = grid.Run("g", "gen", f, ("vgg11", "transform_eopm_gen", "cifar10"), epochs=3)
    assert grid.status(base) == base_status and grid.status(gen) == gen_status
    if flag is not None:
        cmd = grid.command(base, gpus=1)
        assert cmd[-1] == flag and not {"-rt", "-F"} - {flag} & set(cmd)
    fresh = grid.Run("n", "base", tmp_path / "never", ("vgg11", "train", "cifar10"), epochs=3)
    assert grid.status(fresh) == "new" and grid.command(fresh, 1)[-1] == "cifar10"   # nothing to add


@pytest.mark.parametrize("kind, call", [("torn", ["-rt"]), ("killed", ["-rt"]), ("finished", None),
                                        ("artefacts", ["-F"]), ("args_only", ["-F"])])
def test_demo_stage_decision(tmp_path, monkeypatch, capsys, kind, call):
    f = make_folder(tmp_path, kind)
    calls = []
    monkeypatch.setattr(demo, "_call", lambda name, argv, tag="demo": calls.append(argv))
    demo._stage("1/3", ["vgg11", "train"], f, 3)
    assert calls == ([] if call is None else [["vgg11", "train", *call]])
    assert ("reusing" in capsys.readouterr().out) == (call is None)
    assert demo._done(f, 3) == (call is None)
    calls.clear()
    demo._stage("1/3", ["vgg11", "train"], tmp_path / "never", 3)
    assert calls == [["vgg11", "train"]]


# --- Session -----------------------------------------------------------------------------------------

@dataclass
class Closeable:
    closed: int = 0

    def close(self) -> None:
        self.closed += 1


def _run(tmp_path: Path, **kw) -> RunConfig:
    return RunConfig(arch="vgg11", mode="train", run_dir=str(tmp_path / "run"), device="cpu", **kw)


def test_session_closes_and_shuts_down_on_error(tmp_path, monkeypatch):
    left = []
    monkeypatch.setattr(session, "shutdown", lambda info: left.append(info))
    tb_closed, real_close = [], session.TensorBoardLog.close
    monkeypatch.setattr(session.TensorBoardLog, "close", lambda self: (tb_closed.append(self), real_close(self)))
    thing = Closeable()
    with pytest.raises(RuntimeError, match="boom"):
        with Session(_run(tmp_path, tensorboard=True), PerfConfig()) as s:
            assert s.device == torch.device("cpu") and s.dist == DistInfo()
            assert s.closing(thing) is thing
            run_dir = s.claim({"run": {"seed": 0}})
            tb = s.tensorboard(start_epoch=0)
            assert tb is not None and (run_dir / "args.json").is_file()
            raise RuntimeError("boom")
    assert thing.closed == 1 and tb_closed == [tb] and left == [DistInfo()]


def test_session_closes_on_success_and_tensorboard_only_when_asked(tmp_path, monkeypatch):
    left = []
    monkeypatch.setattr(session, "shutdown", lambda info: left.append(info))
    thing = Closeable()
    with Session(_run(tmp_path), PerfConfig()) as s:
        s.closing(thing)
        s.claim({})
        assert s.tensorboard(0) is None                       # --tensorboard not given
        assert thing.closed == 0
    assert thing.closed == 1 and len(left) == 1


def test_session_claims_only_after_the_guard(tmp_path, monkeypatch):
    (tmp_path / "run").mkdir()
    _ckpt(tmp_path / "run", "best.pt", 1)
    monkeypatch.setattr(session, "shutdown", lambda info: None)
    with Session(_run(tmp_path), PerfConfig()) as s:
        with pytest.raises(UsageError, match="best.pt"):
            s.claim({"x": 1})
    assert not (tmp_path / "run" / "args.json").exists()


def test_claim_seeds_like_the_run_seed(tmp_path):
    with Session(_run(tmp_path, seed=7), PerfConfig()) as s:
        torch.manual_seed(123)
        s.claim({})
        drawn = torch.rand(3)
    torch.manual_seed(7)
    assert torch.equal(drawn, torch.rand(3))


@pytest.mark.parametrize("perf, training, needle", [
    (PerfConfig(amp=True), True, "--amp needs a CUDA GPU"),
    (PerfConfig(amp=True), False, "--amp needs a CUDA GPU"),
    (PerfConfig(compile=True, batch_models=2), True, "--batch-models 2"),
    (PerfConfig(compile=True, batch_models=2), False, "--batch-models 2")])
def test_one_speed_check_for_every_mode(tmp_path, perf, training, needle):
    with pytest.raises(UsageError, match=needle) as e:
        Session(_run(tmp_path), perf, training=training)
    assert "\n" not in str(e.value)


def test_amp_is_refused_where_it_would_be_ignored():
    """Evaluation is float32 always: --amp there is refused (checked as if on a GPU)."""
    with pytest.raises(UsageError, match="evaluation always runs in float32"):
        check_speed(PerfConfig(amp=True), torch.device("cuda"), training=False)
    check_speed(PerfConfig(amp=True), torch.device("cuda"), training=True)


def test_usage_error_is_one_class():
    assert ReexportedUsageError is UsageError


# --- layering ----------------------------------------------------------------------------------------

def _imported_modules(path: Path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            yield ("." * node.level) + (node.module or "")


def test_models_know_no_data():
    offenders = {f"{p.name}: {m}" for p in (ROOT / "models").glob("*.py") for m in _imported_modules(p)
                 if m.split(".")[0] == "datasets" or m.lstrip(".").startswith("datasets")}
    assert not offenders


def test_common_imports_only_common():
    project = {p.name for p in ROOT.iterdir() if p.is_dir() and (p / "__init__.py").is_file()} - {"common"}
    project |= {p.stem for p in ROOT.glob("*.py")}
    offenders = {f"{p.name}: {m}" for p in (ROOT / "common").glob("*.py") for m in _imported_modules(p)
                 if m.split(".")[0] in project}
    assert not offenders


def test_force_over_a_folder_named_like_a_run_file_is_one_line(tmp_path):
    f = tmp_path / "run"
    (f / "metrics.jsonl").mkdir(parents=True)
    (f / "args.json").write_text("{}")
    with pytest.raises(UsageError, match="metrics.jsonl is a folder"):
        prepare_run_dir(f, force=True, resume=False)
    assert (f / "args.json").is_file()                  # refused before anything was removed


# --- resolve_device ---------------------------------------------------------------------------------

@pytest.fixture
def two_gpus(monkeypatch):
    """A machine that says it has two CUDA devices; records which one is made current."""
    made_current = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "set_device", lambda d: made_current.append(str(d)))
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    return made_current


def test_cuda_n_becomes_the_current_device(two_gpus):
    from common.session import resolve_device
    assert resolve_device("cuda:1") == torch.device("cuda:1") and two_gpus == ["cuda:1"]
    assert resolve_device("cuda") == torch.device("cuda") and two_gpus == ["cuda:1"]   # plain cuda: left as is


@pytest.mark.parametrize("name", ["cuda:2", "cuda:x"])
def test_a_cuda_device_that_is_not_there_is_one_line(two_gpus, name):
    from common.runs import UsageError
    from common.session import resolve_device
    with pytest.raises(UsageError, match=f"--device '?{name}"):
        resolve_device(name)
    assert two_gpus == []

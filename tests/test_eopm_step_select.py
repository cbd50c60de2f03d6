"""--eopm-step (docs/DESIGN.md §13): the step registry (train/eopm.py `EOPM_STEPS`), the auto rule and the
one-line refusals (train/eopm_fast.py `resolve_eopm_step`), the batched step training G to the plain
step's weights, and the CUDA-graph step (train/eopm_graph.py) giving the plain step's gradient: on CPU
through an eager stand-in for the capture, on CUDA with -m cuda."""
from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from bitflip import FaultConfig, list_fault_models
from bitflip.batched import BatchedFaults, batched_fault_models, batched_refusal
from bitflip.faults import FAULT_MODELS
from bitflip.prefetch import FaultPrefetcher, SeedPlan
from common.ckpt import load_checkpoint
from common.dist import DistInfo
from common.runs import UsageError
from generators import get_generator
from models.quant import quantize_
from train.eopm import EOPM_STEPS, build_generator, eopm_step, training_step
from train.eopm_fast import STEP_CHOICES, BatchedEOPMStep, resolve_eopm_step
from train.eopm_graph import GraphEOPMStep
from tests.conftest import learnable_images
import zs_main

CPU, CUDA = torch.device("cpu"), torch.device("cuda")   # a device name needs no GPU to resolve the rule
HAS_CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny tensors: one intra-op thread (on a busy 2-core machine two threads wait on each other for
    seconds per step; measured 6 s vs 0.1 s for three steps)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def configs(*argv):
    return zs_main.build_configs(zs_main.build_parser().parse_args(
        ["resnet18", "transform_eopm_gen", "cifar10", *[str(a) for a in argv]]))


def tiny_base(dtype=torch.float64, device="cpu") -> nn.Module:
    torch.manual_seed(0)
    return quantize_(nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear(16, 10))).to(device, dtype).eval().requires_grad_(False)


def batch(n, seed, dtype=torch.float64, device="cpu"):
    x, y = learnable_images(n, size=8, signal=0.4, seed=seed)
    x = torch.from_numpy(x).permute(0, 3, 1, 2).to(dtype) / 127.5 - 1
    return x.to(device), torch.tensor(y).to(device)


# --- the registry, the auto rule and the refusals ------------------------------------------------------

def test_every_choice_is_a_registered_step():
    action = next(a for a in zs_main.build_parser()._actions if a.dest == "eopm_step")
    assert tuple(action.choices) == STEP_CHOICES
    assert set(EOPM_STEPS.names()) == set(STEP_CHOICES) - {"auto"}
    assert configs().perf.eopm_step == "auto"


def test_auto_is_batched_on_cuda_plain_on_cpu_and_where_batched_cannot_run():
    assert resolve_eopm_step("auto", CPU, configs()) == "plain"       # the golden test's and demo's numbers
    assert resolve_eopm_step("auto", CUDA, configs()) == "batched"
    assert resolve_eopm_step("auto", CUDA, configs("--compile")) == "batched"
    assert resolve_eopm_step("auto", CUDA, configs("--ecc", "secded")) == "plain"
    assert resolve_eopm_step("auto", CUDA, configs("--surrogate", "other.pt")) == "plain"
    for device in (CPU, CUDA):
        assert resolve_eopm_step("plain", device, configs("--ecc", "secded", "--surrogate", "o.pt")) == "plain"
    assert resolve_eopm_step("batched", CPU, configs()) == "batched"
    assert resolve_eopm_step("graph", CUDA, configs("--amp")) == "graph"


def test_paper_row_asks_for_the_batched_step_on_cuda():
    from bench import paper_row
    assert resolve_eopm_step(configs(*paper_row.CUDA_EOPM).perf.eopm_step, CUDA, configs()) == "batched"
    assert "--eopm-step" not in paper_row.DRY["eopm"]                 # the CPU dry run keeps auto (plain)


@pytest.mark.parametrize("choice, device, argv, names", [
    ("graph", CPU, [], "CUDA device"),
    ("graph", CUDA, ["--compile"], "--compile"),
    ("batched", CPU, ["--ecc", "secded"], "--ecc secded"),
    ("graph", CUDA, ["--ecc", "secded"], "--ecc secded"),
    ("batched", CUDA, ["--surrogate", "other.pt"], "--surrogate"),
    ("graph", CUDA, ["--surrogate", "a.pt", "--surrogate", "b.pt"], "--surrogate (2 given)"),
])
def test_what_a_step_cannot_run_is_refused_in_one_line(choice, device, argv, names):
    with pytest.raises(UsageError) as e:
        resolve_eopm_step(choice, device, configs(*argv))
    msg = str(e.value)
    assert msg.startswith(f"--eopm-step {choice}: ") and names in msg and "\n" not in msg
    assert "use --eopm-step" in msg                                   # and says what to use instead


@pytest.mark.parametrize("argv, says", [(["--eopm-step", "graph"], "--eopm-step graph: needs a CUDA device"),
                                        (["--eopm-step", "batched", "--ecc", "secded"], "--ecc secded")])
def test_cli_refuses_before_reading_anything(tmp_path, capsys, argv, says):
    run_dir = tmp_path / "run"
    assert zs_main.main(["resnet18", "transform_eopm_gen", "cifar10", "-cp", str(tmp_path / "missing.pt"),
                         "--device", "cpu", "--run-dir", str(run_dir), *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert says in err and len(err.splitlines()) == 1 and "Traceback" not in err
    assert not run_dir.exists()                                       # refused before the run folder


def test_batched_faults_refuse_what_they_do_not_implement(monkeypatch):
    assert batched_fault_models() == list_fault_models()             # every registered model, today
    with pytest.raises(ValueError, match="--ecc secded is not implemented by the batched fault op"):
        BatchedFaults(tiny_base(), FaultConfig("official", 0.01, ecc="secded"))
    monkeypatch.setitem(FAULT_MODELS._items, "nobatch", lambda q, cfg, seed, layer: q)
    monkeypatch.setitem(FAULT_MODELS._meta, "nobatch", {})          # registered without a batched hook
    cfg = FaultConfig("nobatch", 0.01)
    assert "nobatch" not in batched_fault_models()
    assert batched_refusal(cfg).startswith("fault model 'nobatch' has no batched form")
    with pytest.raises(ValueError, match="implements official, stuckat, flip, chipmap"):
        BatchedFaults(tiny_base(), cfg)
    with pytest.raises(UsageError, match="--eopm-step batched: fault model 'nobatch'"):
        resolve_eopm_step("batched", CPU, configs("--fault-model", "nobatch"))
    assert resolve_eopm_step("auto", CUDA, configs("--fault-model", "nobatch")) == "plain"


def test_weight_stacks_refill_in_place():
    faults = BatchedFaults(tiny_base(), FaultConfig("flip", 0.05))
    stacks = faults.weights([1, 2])
    ptrs = {k: w.data_ptr() for k, w in stacks.items()}
    assert faults.weights([3, 4], out=stacks) is stacks
    fresh = faults.weights([3, 4])
    assert all(stacks[k].data_ptr() == ptrs[k] and torch.equal(stacks[k], fresh[k]) for k in stacks)
    assert not all(torch.equal(fresh[k], faults.weights([1, 2])[k]) for k in stacks)   # the seeds matter


# --- the graph step's capture logic, on CPU --------------------------------------------------------------

class EagerCapture:
    """Stand-in for `cuda_graph_capture`: runs the body twice as the warm-up would (leaving its sums in
    the buffers), and "replays" by running it again on the same buffers; counts both."""

    def __init__(self):
        self.captures, self.replays = 0, 0

    def __call__(self, body):
        self.captures += 1
        body()
        body()

        def replay():
            self.replays += 1
            body()
        return replay


def grads_and_metrics(step, base, x, y, fault, seeds, **kw):
    torch.manual_seed(1)
    gen = get_generator("ConvS").to(x.device, x.dtype)
    metrics = step(gen, base, x, y, fault, seeds, 5.0, **kw)
    return [p.grad.clone() for p in gen.parameters()], {k: float(v) for k, v in metrics.items()}


def assert_same_as_plain(step, base, x, y, fault, seeds, rtol, atol, rel=1e-5, **kw):
    got, got_m = grads_and_metrics(step, base, x, y, fault, seeds, **kw)
    want, want_m = grads_and_metrics(eopm_step, base, x, y, fault, seeds, **kw)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=rtol, atol=atol)
    assert got_m == pytest.approx(want_m, rel=rel)               # float32 sums
    return got


@pytest.mark.parametrize("k", [1, 2])                  # K = 1: one model a pass; K = 2 of N = 3: chunks 2, 1
def test_graph_step_replays_on_refilled_buffers(k):
    base, fault = tiny_base(), FaultConfig("official", 0.05)
    capture = EagerCapture()
    step = GraphEOPMStep(base, fault, capture=capture)
    steps = [(batch(6, 0), [3, 4, 5]), (batch(6, 1), [6, 7, 8]), (batch(4, 2), [9, 10, 11])]   # last: smaller
    grads = [assert_same_as_plain(step, base, x, y, fault, seeds, 1e-10, 1e-12, batch_models=k)
             for (x, y), seeds in steps]
    assert (capture.captures, capture.replays) == (1, 2)             # the smaller batch ran eagerly
    assert not all(torch.allclose(a, b) for a, b in zip(grads[0], grads[1]))   # new inputs were read
    x, y = batch(6, 1)
    assert_same_as_plain(step, base, x, y, fault, [6, 7, 8], 1e-10, 1e-12, batch_models=k + 1)   # another K: eager
    assert capture.replays == 2


def test_graph_step_with_a_runner_runs_eagerly():
    from bitflip.ensemble import WeightedForward
    base, fault = tiny_base(), FaultConfig("flip", 0.05)
    capture = EagerCapture()
    step = GraphEOPMStep(base, fault, capture=capture)
    x, y = batch(4, 0)
    assert_same_as_plain(step, base, x, y, fault, [1, 2], 1e-10, 1e-12, runner=WeightedForward(base))
    assert capture.captures == 0


# --- training: batched = plain ---------------------------------------------------------------------------

def train_steps(name: str, steps: int = 3) -> dict:
    """`steps` optimizer steps of `training_step` with the --eopm-step `name` on a tiny float64 task."""
    cfgs = configs("-N", 3, "-G", "ConvS", "-ber", 0.05, "--eopm-step", name)
    base = tiny_base()
    torch.manual_seed(0)
    gen, opt, sched = build_generator(cfgs, CPU, DistInfo())
    gen.double()
    plan = SeedPlan(FaultPrefetcher(cfgs.fault, 0), cfgs.eopm.train_seeds, 3)
    plan.start_epoch(0, 0, 0, steps=steps)
    step = training_step(cfgs, gen, base, opt, sched, plan, None, EOPM_STEPS.get(name)(cfgs, base))
    for i in range(steps):
        step(*batch(8, 10 + i))
    plan.close()
    return {k: v.clone() for k, v in gen.state_dict().items()}


def test_batched_step_trains_the_same_generator_as_plain():
    plain, batched = train_steps("plain"), train_steps("batched")
    start = {k: v for k, v in train_steps("plain", steps=0).items()}
    for key in plain:
        torch.testing.assert_close(batched[key], plain[key], rtol=1e-9, atol=1e-12, msg=key)
    assert any(not torch.equal(plain[k], start[k]) for k in plain if plain[k].is_floating_point())   # it trained


@pytest.mark.slow
def test_cli_batched_run_gives_the_plain_runs_generator(cifar_root, tmp_path, capsys):
    tiny = ["--data-root", str(cifar_root), "--train-limit", "20", "--test-limit", "10", "-BS", "10",
            "-TBS", "10", "--no-download", "--device", "cpu", "-E", "1"]
    assert zs_main.main(["vgg11", "train", "cifar10", "--run-dir", str(tmp_path / "b"), *tiny]) == 0
    states = {}
    for name in ("plain", "batched"):
        assert zs_main.main(["vgg11", "transform_eopm_gen", "cifar10", "-cp", str(tmp_path / "b" / "best.pt"),
                             "-N", "2", "-G", "ConvS", "--eval-seeds", "50000", "--eopm-step", name,
                             "--run-dir", str(tmp_path / name), *tiny]) == 0
        assert f"x 2 perturbed models per step ({name} EOPM step)" in capsys.readouterr().out
        states[name] = load_checkpoint(tmp_path / name / "last.pt")["state_dict"]
    for key, want in states["plain"].items():                        # float32: summation order only
        torch.testing.assert_close(states["batched"][key], want, rtol=1e-4, atol=1e-5, msg=key)


# --- CUDA ---------------------------------------------------------------------------------------------------

@pytest.mark.cuda
@HAS_CUDA
@pytest.mark.parametrize("k", [1, 3])
def test_cuda_graph_step_gives_the_plain_gradient(k):
    """Three full batches (capture, then two replays on new inputs and seeds) and a smaller last one
    (eager), each against the plain step; fp32 without TF32, so only summation order differs."""
    base, fault = tiny_base(torch.float32, "cuda"), FaultConfig("official", 0.05)
    step = GraphEOPMStep(base, fault)
    with torch.backends.cudnn.flags(enabled=True, benchmark=True, deterministic=False, allow_tf32=False):
        for i, (n, seeds) in enumerate([(16, [3, 4, 5]), (16, [6, 7, 8]), (16, [9, 10, 11]), (8, [1, 2, 3])]):
            x, y = batch(n, i, torch.float32, "cuda")
            assert_same_as_plain(step, base, x, y, fault, seeds, 1e-4, 1e-6, rel=1e-4, batch_models=k)
        assert step.captures == 1
        batched = BatchedEOPMStep(base, fault)
        x, y = batch(16, 5, torch.float32, "cuda")
        assert_same_as_plain(batched, base, x, y, fault, [12, 13, 14], 1e-4, 1e-6, rel=1e-4, batch_models=k)

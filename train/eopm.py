"""`transform_eopm_gen` mode: train a NeuralFuse generator with EOPM (paper Eq. 3-5; docs/DESIGN.md §7).

Loss per batch, with M0 the clean quantized base model and M_k (k = 1..N) copies carrying the bit
errors of fresh training fault seeds:

    L = CE(M0(F(x)), y) + λ · (1/N) Σ_k CE(M_k(F(x)), y),      F(x) = clamp(x + G(x), -1, 1)

Only G is trained; the base model is frozen (eval mode, no parameter gradients). The released code
recomputed G(x) and the clean term N times per batch and averaged N losses of the form
CE_0 + λ·CE_k; the gradient is identical when G(x) and M0 run once per batch, which is what we do:
F(x) is computed once, detached into a leaf z, every M_k back-propagates into z.grad one at a time
(memory of one model), and z.grad is finally pushed through G. One consequence differs from the
original: the generator's BatchNorm running statistics update once per batch instead of N times.
With --surrogate (paper Table 21) the step runs over several base models at once: train/surrogates.py.

Which implementation computes a step is a speed choice (--eopm-step; `EOPM_STEPS` below): `eopm_step`
is the reference; `batched` (train/eopm_fast.py) and `graph` (train/eopm_graph.py) give the same
gradient with less host work per perturbed model (docs/DESIGN.md §13).

Example:
    python zs_main.py resnet18 transform_eopm_gen cifar10 -ber 0.01 -cp BASE.pt -G ConvL -N 10 -LM 5
"""
from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Callable, Dict, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F

from bitflip import FaultConfig
from bitflip.ensemble import WeightedForward, perturbed_logits
from bitflip.faults import ECC_LABELS
from bitflip.prefetch import FaultPrefetcher, SeedPlan
from common.dist import DistInfo, global_batchnorm
from common.registry import Registry
from common.runs import UsageError
from common.session import Session
from config import TEST_LOADER_SEED, Configs
from datasets import cache_batches, class_names, get_dataset_info, make_batches, make_loader, use_device_data
from eval.accuracy import print_ptq_accuracy
from eval.neuralfuse import evaluate_run, evaluate_seeds
from eval.plots import plot_curves
from eval.results import trained_on
from eval.samples import save_samples
from generators import get_generator
from models import load_base
from train.eopm_fast import BatchedEOPMStep, resolve_eopm_step
from train.eopm_graph import GraphEOPMStep
from train.loop import FRESH_START, TrainingTask, fit, load_best, reseed_epoch, train_one_epoch, wrap_ddp
from train.resume import nothing_missing, resume
from train.surrogates import Surrogate, SurrogateStep, check_enough_models, load_surrogates

def eopm_step(gen: torch.nn.Module, base: torch.nn.Module, x: torch.Tensor, y: torch.Tensor,
              fault: FaultConfig, seeds: Sequence[int], lam: float, batch_models: int = 1,
              amp: bool = False, runner: Optional[WeightedForward] = None) -> Dict[str, torch.Tensor]:
    """Accumulate ∇L (above) into the generator's .grad for one batch; returns the batch metrics as
    0-dim tensors (no host sync inside the step). `batch_models` > 1 runs that many perturbed
    models at once (`bitflip.ensemble`); `amp` runs the float compute in bfloat16 autocast; `runner`
    (a `WeightedForward` of `base`, e.g. compiled) runs the clean and every perturbed pass."""
    autocast = torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=amp)
    with autocast:
        fx = gen(x)                                       # (B, 3, H, W), graph through G
    low = fx.dtype in (torch.bfloat16, torch.float16)     # under amp: the base model gets fp32 input
    z = (fx.float() if low else fx).detach().requires_grad_(True)   # leaf: each model adds its ∂L/∂F(x)
    with autocast:
        logits = base(z) if runner is None else runner(runner.clean(), z)
    loss_clean = F.cross_entropy(logits.float(), y)
    clean_correct = (logits.argmax(1) == y).sum()     # now: a CUDA-graph runner reuses `logits`' memory
    loss_clean.backward()
    pert_loss = torch.zeros((), device=x.device)
    pert_correct = torch.zeros((), device=x.device)
    with autocast:
        for chunk, logits_k in perturbed_logits(base, z, fault, seeds, batch_models, runner):
            k = len(chunk)                                # logits_k: (k, B, classes)
            loss_k = F.cross_entropy(logits_k.flatten(0, 1).float(), y.repeat(k), reduction="sum") / len(y)
            (loss_k * (lam / len(seeds))).backward()      # Σ over the chunk of the per-model mean CE
            pert_loss += loss_k.detach()
            pert_correct += (logits_k.argmax(-1) == y).sum()
    fx.backward(z.grad.to(fx.dtype))
    n = len(seeds)
    return {"loss": loss_clean.detach() + lam * pert_loss / n,
            "clean_acc": 100 * clean_correct.float() / len(y),
            "pert_acc": 100 * pert_correct.float() / (n * len(y))}


EOPM_STEPS = Registry("EOPM step")       # --eopm-step NAME -> (cfgs, base) -> a callable like `eopm_step`
StepFn = Callable[..., Dict[str, torch.Tensor]]


@EOPM_STEPS.register("plain")
def _plain_step(cfgs: Configs, base: torch.nn.Module) -> StepFn:
    return eopm_step


@EOPM_STEPS.register("batched")
def _batched_step(cfgs: Configs, base: torch.nn.Module) -> StepFn:
    return BatchedEOPMStep(base, cfgs.fault, compile=cfgs.perf.compile)


@EOPM_STEPS.register("graph")
def _graph_step(cfgs: Configs, base: torch.nn.Module) -> StepFn:
    return GraphEOPMStep(base, cfgs.fault)


def make_step(cfgs: Configs, step_name: str, base: torch.nn.Module, surrogates: Sequence[Surrogate] = ()
              ) -> StepFn:
    """The run's EOPM step: over the --surrogate models too when given (the plain loop over models,
    train/surrogates.py; resolve_eopm_step refuses the others with them), else EOPM_STEPS[step_name]."""
    if surrogates:
        return SurrogateStep([s.model for s in surrogates], cfgs.perf.compile)
    return EOPM_STEPS.get(step_name)(cfgs, base)


def generator_meta(cfgs: Configs, surrogates: Sequence[Surrogate] = ()) -> dict:
    """The fields that make a generator checkpoint self-describing (and the --surrogate models it saw)."""
    return {"kind": "generator", "generator": cfgs.eopm.generator, "arch": cfgs.run.arch,
            "dataset": cfgs.data.dataset, "bits": cfgs.bits, "fault": asdict(cfgs.fault),
            "base_checkpoint": cfgs.run.checkpoint, "surrogates": [s.path for s in surrogates],
            "surrogate_archs": [s.arch for s in surrogates]}


def models_per_rank(n_models: int, n_global: bool, info: DistInfo) -> int:
    """Perturbed models each rank draws per step: -N on every rank (N x world size per global batch),
    or, with --n-global, -N shared out so that the global batch sees N in all."""
    if not n_global:
        return n_models
    if n_models % info.world_size:
        raise UsageError(f"--n-global: -N {n_models} does not split evenly over {info.world_size} processes; "
                         f"give a multiple of {info.world_size}")
    return n_models // info.world_size


def training_step(cfgs: Configs, net: torch.nn.Module, base: torch.nn.Module, opt: torch.optim.Optimizer,
                  sched, plan: SeedPlan, runner: Optional[WeightedForward], eopm: StepFn = eopm_step):
    """One optimizer step of G on a batch: the plan's fresh fault seeds, the EOPM step `eopm` (made by
    `make_step` for the run's --eopm-step and --surrogate; the plain `eopm_step` by default), then the
    schedule."""
    ecfg, perf = cfgs.eopm, cfgs.perf

    def step(x: torch.Tensor, y: torch.Tensor) -> Dict[str, torch.Tensor]:
        if perf.use_channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        opt.zero_grad(set_to_none=True)
        metrics = eopm(net, base, x, y, cfgs.fault, plan.next(), ecfg.lam, perf.batch_models, perf.amp, runner)
        opt.step()
        sched.step()
        return metrics
    return step


def build_generator(cfgs: Configs, device: torch.device, dist_info: DistInfo
                    ) -> Tuple[torch.nn.Module, torch.optim.Optimizer, torch.optim.lr_scheduler.StepLR]:
    """The fresh generator -G (on `device`, NHWC under --channels-last), its Adam optimizer and step schedule."""
    ecfg = cfgs.eopm
    size = get_dataset_info(cfgs.data.dataset).image_size          # UIP is one tensor of the input's shape
    gen = get_generator(ecfg.generator, bits=cfgs.bits, input_size=size).to(device)
    if cfgs.perf.use_channels_last:
        gen = gen.to(memory_format=torch.channels_last)
    if ecfg.sync_bn and dist_info.enabled:
        global_batchnorm(gen)                     # the generator's BatchNorm sees the global batch
    opt = torch.optim.Adam(gen.parameters(), lr=ecfg.lr, betas=ecfg.betas)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=ecfg.lr_step_every, gamma=ecfg.lr_gamma)
    return gen, opt, sched


def describe_run(cfgs: Configs, n_train: int, n_val: int, dist_info: DistInfo, n_local: int,
                 step_name: str = "plain", surrogates: Sequence[Surrogate] = ()) -> str:
    """The run's one-line summary: what is trained on what, by which EOPM step, and how best.pt is chosen."""
    ecfg, fault = cfgs.eopm, cfgs.fault
    also = "".join(f" + {s.arch} ({s.path})" for s in surrogates)
    select = (f"best.pt = best PA(NF) on {n_val} validation images, monitor fault seeds "
              f"{list(ecfg.monitor_seeds)}" if n_val else "no validation: best.pt = last epoch")
    return (f"EOPM: {ecfg.generator} on frozen {cfgs.run.arch} ({cfgs.run.checkpoint}){also}; {fault.model} faults "
            f"at ber={fault.ber:g}{ECC_LABELS[fault.ecc]}; N={ecfg.n_models} λ={ecfg.lam}; {n_train} train images; "
            f"{dist_info.world_size} process(es) x {n_local} perturbed models per step ({step_name} EOPM step); "
            f"{select}")


def result_settings(cfgs: Configs, run_dir: Path, dist_info: DistInfo, surrogates: Sequence[Surrogate] = ()
                    ) -> dict:
    """What results.json records of the run that produced the evaluated generator."""
    ecfg, archs = cfgs.eopm, [s.arch for s in surrogates]
    return {"testing_mode": "generator_base", "checkpoint": cfgs.run.checkpoint, "generator": ecfg.generator,
            "g_path": str(run_dir / "best.pt"),
            "generator_trained_on": trained_on(cfgs.run.arch, cfgs.data.dataset, archs),
            "lam": ecfg.lam, "n_models": ecfg.n_models, "epochs": ecfg.epochs,
            "world_size": dist_info.world_size, "n_global": ecfg.n_global,
            "surrogates": [s.path for s in surrogates], "surrogate_archs": archs}


def run(cfgs: Configs) -> int:
    cfgs = cfgs.with_run_dir()
    run_cfg, data_cfg, ecfg, fault, perf = cfgs.run, cfgs.data, cfgs.eopm, cfgs.fault, cfgs.perf
    with Session(run_cfg, perf) as s:
        device, dist_info = s.device, s.dist
        step_name = resolve_eopm_step(perf.eopm_step, device, cfgs)      # refuses before any work
        n_local = models_per_rank(ecfg.n_models, ecfg.n_global, dist_info)
        check_enough_models(n_local, len(ecfg.surrogates))
        info = get_dataset_info(data_cfg.dataset)
        base = load_base(run_cfg.checkpoint, run_cfg.arch, data_cfg.dataset, cfgs.bits, device,
                         num_classes=info.num_classes, input_size=info.image_size)
        surrogates = load_surrogates(ecfg.surrogates, run_cfg.checkpoint, data_cfg.dataset, cfgs.bits, device,
                                     perf.use_channels_last)
        train_loader = make_batches(data_cfg, "train", seed=run_cfg.seed, device=device, dist_info=dist_info,
                                    on_device=use_device_data(perf.device_data, data_cfg.dataset, device))
        val_batches = cache_batches(make_loader(data_cfg, "val", seed=TEST_LOADER_SEED, device=device),
                                    device) if dist_info.is_main else []
        run_dir = s.claim(cfgs.to_dict())

        gen, opt, sched = build_generator(cfgs, device, dist_info)
        if perf.use_channels_last:
            base = base.to(memory_format=torch.channels_last)
        start_epoch, best = resume(run_dir, "generator", gen, opt, sched, current=cfgs.to_dict(),
                                   is_main=dist_info.is_main, epochs=ecfg.epochs,
                                   evaluates=True) if run_cfg.resume else FRESH_START
        trains = start_epoch < ecfg.epochs        # else -rt on a finished run: at most the final evaluation
        if not trains and nothing_missing(run_dir, evaluates=True):
            return 0                              # resume said so
        net, runner = wrap_ddp(gen, device, dist_info), None
        if perf.compile:                          # G (trained) and the base model's passes, compiled
            net, runner = torch.compile(net), WeightedForward(base, compile=True)
        plan = s.closing(SeedPlan(FaultPrefetcher(fault, perf.prefetch_workers), ecfg.train_seeds, n_local))

        def monitor(g, **kw):                     # base (g None) or G on the validation images, monitor seeds
            return evaluate_seeds(base, g, val_batches, device, fault, ecfg.monitor_seeds, perf.batch_models,
                                  prefetch_workers=perf.prefetch_workers, runner=runner, **kw)
        frozen = None                             # the base model's CA and PA: they never change
        if dist_info.is_main and trains:
            print_ptq_accuracy(run_cfg.arch, cfgs.bits, base, val_batches, device, "validation")
            print(describe_run(cfgs, len(train_loader.dataset), sum(len(y) for _, y in val_batches), dist_info,
                               n_local, step_name, surrogates))
            frozen = monitor(None) if val_batches else None

        step = training_step(cfgs, net, base, opt, sched, plan, runner, make_step(cfgs, step_name, base, surrogates))

        def one_epoch(epoch):
            plan.start_epoch(run_cfg.seed, dist_info.rank, epoch, steps=len(train_loader))
            reseed_epoch(train_loader, run_cfg.seed, epoch, dist_info.rank)
            net.train()
            m = train_one_epoch(step, train_loader, device, f"epoch {epoch + 1}/{ecfg.epochs}", dist_info)
            return {**m, "lr": sched.get_last_lr()[0]}

        def validate(epoch):
            if frozen is None:
                return {}
            res = monitor(gen.eval(), base_only=frozen)      # only the passes through G
            return {"val_CA_NF": res["CA_NF"], "val_PA": res["PA_mean"], "val_PA_NF": res["PA_NF_mean"]}

        def make_checkpoint(epoch, metrics, best_value):
            return {**generator_meta(cfgs, surrogates), "state_dict": gen.state_dict(),
                    "optimizer": opt.state_dict(), "scheduler": sched.state_dict(), "epoch": epoch,
                    "best": best_value, "metrics": metrics, "config": cfgs.to_dict()}

        task = TrainingTask(one_epoch, validate, make_checkpoint, best_key="val_PA_NF")
        tb = s.tensorboard(start_epoch)
        best = fit(task, run_dir, ecfg.epochs, start_epoch, best, dist_info, on_epoch=tb,
                   max_minutes=run_cfg.max_minutes)
        chosen = load_best(run_dir, "generator", gen, dist_info)     # every rank evaluates it
        if dist_info.is_main:
            why = f"validation PA(NF) {best:.2f}% on monitor seeds {list(ecfg.monitor_seeds)}" \
                if val_batches else "last epoch"
            print(f"best.pt = epoch {chosen['epoch']} ({why}); final evaluation on the test split over "
                  f"{len(cfgs.eval.seeds)} seeds:")
        results = evaluate_run(cfgs, base, gen.eval(), run_dir, device,
                               result_settings(cfgs, run_dir, dist_info, surrogates), dist_info=dist_info,
                               runner=runner)
        if dist_info.is_main:
            print(f"training curves: {plot_curves(run_dir)}")
            samples = samples_figure(cfgs, base, gen, device, run_dir)
            print(f"samples: {samples}")
            if tb is not None:
                tb.final(results, chosen["epoch"], samples)
    return 0


def samples_figure(cfgs: Configs, base: torch.nn.Module, gen: torch.nn.Module, device: torch.device,
                 run_dir: Path) -> Path:
    """samples.png: the first test batch, plain and through G, under the first evaluation seed's faults
    (read after the evaluation, so it changes nothing the evaluation draws)."""
    x, y = next(iter(make_loader(cfgs.data, "test", seed=TEST_LOADER_SEED, device=device)))
    return save_samples(base, gen, x.to(device), y.to(device), cfgs.fault, cfgs.eval.seeds[0], run_dir / "samples.png",
                        class_names(cfgs.data.dataset, cfgs.data.root))

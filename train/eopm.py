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

Example:
    python zs_main.py resnet18 transform_eopm_gen cifar10 -ber 0.01 -cp BASE.pt -G ConvL -N 10 -LM 5
"""
from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Dict, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from bitflip import FaultConfig
from bitflip.ensemble import WeightedForward, perturbed_logits
from bitflip.prefetch import MAX_AHEAD, FaultPrefetcher
from common.ckpt import load_checkpoint
from common.dist import DistInfo, barrier, global_batchnorm, init_distributed, shutdown
from common.runs import UsageError, configure_perf, resolve_device, start_run
from common.tblog import TensorBoardLog
from config import TEST_LOADER_SEED, Configs
from datasets import cache_batches, get_dataset_info, make_batches, make_loader, use_device_data
from eval.accuracy import print_ptq_accuracy
from eval.neuralfuse import evaluate_run, evaluate_seeds
from eval.plots import plot_curves
from eval.samples import save_samples
from generators import get_generator
from models import load_base
from train.loop import fit, reseed_epoch, train_one_epoch, wrap_ddp
from train.resume import resume


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


def generator_meta(cfgs: Configs) -> dict:
    """The fields that make a generator checkpoint self-describing."""
    return {"kind": "generator", "generator": cfgs.eopm.generator, "arch": cfgs.run.arch,
            "dataset": cfgs.data.dataset, "bits": cfgs.bits, "fault": asdict(cfgs.fault),
            "base_checkpoint": cfgs.run.checkpoint}


def models_per_rank(n_models: int, n_global: bool, info: DistInfo) -> int:
    """Perturbed models each rank draws per step: -N on every rank (N x world size per global batch),
    or, with --n-global, -N shared out so that the global batch sees N in all."""
    if not n_global:
        return n_models
    if n_models % info.world_size:
        raise UsageError(f"--n-global: -N {n_models} does not split evenly over {info.world_size} processes; "
                         f"give a multiple of {info.world_size}")
    return n_models // info.world_size


def run(cfgs: Configs) -> int:
    cfgs = cfgs.with_run_dir()
    run_cfg, data_cfg, ecfg, fault = cfgs.run, cfgs.data, cfgs.eopm, cfgs.fault
    device = resolve_device(run_cfg.device)
    dist_info = init_distributed(device)
    perf = cfgs.perf
    configure_perf(perf, device)
    channels_last = perf.use_channels_last
    n_local = models_per_rank(ecfg.n_models, ecfg.n_global, dist_info)
    base = load_base(run_cfg.checkpoint, run_cfg.arch, data_cfg.dataset, cfgs.bits, device)
    # inputs first: a bad checkpoint or data root must fail before -F replaces an old run
    train_loader = make_batches(data_cfg, "train", seed=run_cfg.seed, device=device, dist_info=dist_info,
                                on_device=use_device_data(perf.device_data, data_cfg.dataset, device))
    val_batches = cache_batches(make_loader(data_cfg, "val", seed=TEST_LOADER_SEED, device=device),
                                device) if dist_info.is_main else []
    run_dir = start_run(run_cfg, cfgs.to_dict(), dist_info.is_main)

    gen = get_generator(ecfg.generator, bits=cfgs.bits).to(device)
    if channels_last:
        base, gen = (m.to(memory_format=torch.channels_last) for m in (base, gen))
    if ecfg.sync_bn and dist_info.enabled:
        global_batchnorm(gen)                     # the generator's BatchNorm sees the global batch
    opt = torch.optim.Adam(gen.parameters(), lr=ecfg.lr, betas=ecfg.betas)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=ecfg.lr_step_every, gamma=ecfg.lr_gamma)
    start_epoch, best = resume(run_cfg.run_dir, "generator", gen, opt, sched,
                          current=cfgs.to_dict(), is_main=dist_info.is_main) if run_cfg.resume else (0, -1.0)
    net = wrap_ddp(gen, device, dist_info)
    runner = None
    if perf.compile:                              # G (trained) and the base model's passes, compiled
        net, runner = torch.compile(net), WeightedForward(base, compile=True)
    if dist_info.is_main:
        print_ptq_accuracy(run_cfg.arch, cfgs.bits, base, val_batches, device, "validation")
        n_val = sum(len(y) for _, y in val_batches)
        select = (f"best.pt = best PA(NF) on {n_val} validation images, monitor fault seeds "
                  f"{list(ecfg.monitor_seeds)}" if n_val else "no validation: best.pt = last epoch")
        print(f"EOPM: {ecfg.generator} on frozen {run_cfg.arch} ({run_cfg.checkpoint}); {fault.model} faults "
              f"at ber={fault.ber:g}; N={ecfg.n_models} λ={ecfg.lam}; {len(train_loader.dataset)} train images; "
              f"{dist_info.world_size} process(es) x {n_local} perturbed models per step; {select}")
    lo, hi = ecfg.train_seeds
    prefetch = FaultPrefetcher(fault, perf.prefetch_workers)
    ahead = max(1, MAX_AHEAD // n_local)            # batches whose fault maps are built early
    plan = {"seeds": [], "i": 0}

    def step(x, y):
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        opt.zero_grad(set_to_none=True)
        i = plan["i"]
        seeds = plan["seeds"][i]                          # fresh fault seeds every batch
        prefetch.schedule(s for later in plan["seeds"][i + 1:i + 1 + ahead] for s in later)
        prefetch.wait(seeds)
        plan["i"] = i + 1
        metrics = eopm_step(net, base, x, y, fault, seeds, ecfg.lam, perf.batch_models, perf.amp, runner)
        opt.step()
        sched.step()
        return metrics

    def one_epoch(epoch):
        seed_rng = np.random.default_rng([run_cfg.seed, dist_info.rank, epoch])  # resumable stream
        # the epoch's seeds, drawn up front in the order the batches use them (same stream as drawing
        # per batch), so that their fault maps can be built ahead
        plan["seeds"] = [seed_rng.integers(lo, hi + 1, size=n_local) for _ in range(len(train_loader))]
        plan["i"] = 0
        reseed_epoch(train_loader, run_cfg.seed, epoch, dist_info.rank)
        net.train()
        m = train_one_epoch(step, train_loader, device, f"epoch {epoch + 1}/{ecfg.epochs}", dist_info)
        return {**m, "lr": sched.get_last_lr()[0]}

    def validate(epoch):
        if not val_batches:
            return {}
        gen.eval()
        res = evaluate_seeds(base, gen, val_batches, device, fault, ecfg.monitor_seeds, perf.batch_models,
                             prefetch_workers=perf.prefetch_workers, runner=runner)
        return {"val_CA_NF": res["CA_NF"], "val_PA": res["PA_mean"], "val_PA_NF": res["PA_NF_mean"]}

    def make_checkpoint(epoch, metrics, best_value):
        return {**generator_meta(cfgs), "state_dict": gen.state_dict(), "optimizer": opt.state_dict(),
                "scheduler": sched.state_dict(), "epoch": epoch, "best": best_value, "metrics": metrics,
                "config": cfgs.to_dict()}

    tb = TensorBoardLog(run_dir, start_epoch) if run_cfg.tensorboard and dist_info.is_main else None
    try:
        best, _ = fit(run_dir, ecfg.epochs, start_epoch, best, one_epoch, validate, "val_PA_NF",
                      make_checkpoint, dist_info, on_epoch=tb)
        barrier(dist_info)                       # best.pt is written by rank 0; every rank evaluates it
        best_pt = Path(run_cfg.run_dir) / "best.pt"
        chosen = load_checkpoint(best_pt, kind="generator")
        if dist_info.is_main:
            why = (f"validation PA(NF) {best:.2f}% on monitor seeds {list(ecfg.monitor_seeds)}" if val_batches
                   else "last epoch")
            print(f"best.pt = epoch {chosen['epoch']} ({why}); final evaluation on the test split over "
                  f"{len(cfgs.eval.seeds)} seeds:")
        gen.load_state_dict(chosen["state_dict"])
        gen.eval()
        evaluate_run(cfgs, base, gen, run_dir, device, {
            "testing_mode": "generator_base", "checkpoint": run_cfg.checkpoint, "generator": ecfg.generator,
            "g_path": str(best_pt), "generator_trained_on": f"{run_cfg.arch}/{data_cfg.dataset}",
            "lam": ecfg.lam, "n_models": ecfg.n_models, "epochs": ecfg.epochs,
            "world_size": dist_info.world_size, "n_global": ecfg.n_global}, dist_info=dist_info, runner=runner)
    finally:
        if tb is not None:
            tb.close()
        prefetch.close()
        shutdown(dist_info)
    if dist_info.is_main:
        print(f"training curves: {plot_curves(run_dir)}")
        x, y = next(iter(make_loader(data_cfg, "test", seed=TEST_LOADER_SEED, device=device)))  # after the evaluation
        samples = save_samples(base, gen, x.to(device), y.to(device), fault, cfgs.eval.seeds[0],
                               run_dir / "samples.png", get_dataset_info(data_cfg.dataset).class_names)
        print(f"samples: {samples}")
    return 0

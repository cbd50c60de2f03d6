"""`train` mode: quantization-aware training of the 8-bit base classifier (docs/DESIGN.md §4).

SGD with cross-entropy on fake-quantized weights; accuracy on the validation images (--val-size, held
out of the training split) after every epoch picks best.pt; the test split is read once, at the end, to
report best.pt's test accuracy. best/last checkpoints; resume with -rt.

Baselines (docs/DESIGN.md §15): --fault-aware trains under random bit errors (train/fault_aware.py:
each step one fresh fault seed of --fault-model at -ber, drawn by a SeedPlan from (run seed, rank,
epoch), so -rt repeats it; the validation also logs val_PA over the monitor seeds); --clip-weights W
clamps the quantized layers' float weights to [-W, W] after every step. The fault flags shape only
fault-aware training, so a plain run refuses them. The checkpoint's `base_training` records which.

Two recipes (--recipe, config.RECIPES):
- paper (the default): the released code's SGD, momentum 0.9, lr -LR, no weight decay, no schedule,
  -BS 256, -E 300.
- fast: Nesterov SGD, momentum 0.9, weight decay 5e-4, label smoothing 0.1, a one-cycle LR schedule
  (OneCycleLR up to -LR = 0.2 for -BS 512, stepped after every batch), -E 40; on CUDA also --amp,
  --compile and --device-data on (channels-last stays off). Every flag given explicitly wins over the
  recipe (an explicit -BS scales the recipe's 0.2 linearly). The schedule's state is saved in last.pt
  and restored by -rt, so a resumed run repeats the uninterrupted one; -E cannot change on resume then,
  since the one cycle spans the whole run.

Example:
    python zs_main.py resnet18 train cifar10 -E 300 -BS 256 -LR 0.001
    python zs_main.py resnet18 train cifar10 --recipe fast
    python zs_main.py resnet18 train cifar10 --fault-aware --fault-model flip -ber 0.01 --clip-weights 0.1
"""
from __future__ import annotations

from dataclasses import fields
from typing import Any, Callable, Dict, Optional

import torch
import torch.nn.functional as F

from bitflip import FaultConfig
from bitflip.prefetch import FaultPrefetcher, SeedPlan
from common.cli import flag_of, show_value
from common.dist import DistInfo, global_batchnorm
from common.runs import UsageError
from common.session import Session
from config import TEST_LOADER_SEED, Configs
from datasets import cache_batches, get_dataset_info, make_batches, make_loader, use_device_data
from eval.accuracy import accuracy
from eval.neuralfuse import evaluate_seeds
from eval.plots import plot_curves
from models import base_checkpoint_meta, get_model
from train.fault_aware import StepFaults, clip_weights_, fault_aware_loss, training_record
from train.loop import FRESH_START, TrainingTask, fit, load_best, reseed_epoch, train_one_epoch, wrap_ddp
from train.resume import nothing_missing, resume


def run(cfgs: Configs) -> int:
    refuse_unused_faults(cfgs)
    cfgs = cfgs.with_run_dir()
    run_cfg, data_cfg, tcfg, perf = cfgs.run, cfgs.data, cfgs.train, cfgs.perf
    with Session(run_cfg, perf) as s:
        device, dist_info = s.device, s.dist
        train_loader = make_batches(data_cfg, "train", seed=run_cfg.seed, device=device, dist_info=dist_info,
                                    on_device=use_device_data(perf.device_data, data_cfg.dataset, device))
        val_batches = cache_batches(make_loader(data_cfg, "val", seed=TEST_LOADER_SEED, device=device),
                                    device) if dist_info.is_main else []
        run_dir = s.claim(cfgs.to_dict())

        info = get_dataset_info(data_cfg.dataset)
        model = build_model(run_cfg.arch, info, cfgs.bits, device, perf.use_channels_last, dist_info)
        opt = torch.optim.SGD(model.parameters(), lr=tcfg.lr, momentum=tcfg.momentum,
                              weight_decay=tcfg.weight_decay, nesterov=tcfg.nesterov)
        sched = SCHEDULES[tcfg.schedule](opt, tcfg.lr, tcfg.epochs * len(train_loader))
        start_epoch, best = resume(run_dir, "base", model, opt, sched, current=cfgs.to_dict(),
                                   is_main=dist_info.is_main, epochs=tcfg.epochs) if run_cfg.resume else FRESH_START
        if start_epoch >= tcfg.epochs and nothing_missing(run_dir, evaluates=False):
            return 0                              # -rt on a finished run: resume said so
        if sched is not None and sched.total_steps != tcfg.epochs * len(train_loader):
            raise UsageError(f"-E {tcfg.epochs}: this run's one-cycle schedule spans {sched.total_steps} steps "
                             f"({sched.total_steps // len(train_loader)} epochs); -rt cannot change -E with it")
        net = wrap_ddp(model, device, dist_info)
        if perf.compile:
            net = torch.compile(net)  # the training forward/backward; validation runs `model` eagerly
        n_val = sum(len(y) for _, y in val_batches)
        if dist_info.is_main:
            print(f"data: {len(train_loader.dataset)} train / {n_val} validation images of {data_cfg.dataset} "
                  f"({'best.pt = best validation accuracy' if n_val else 'no validation: best.pt = last epoch'}); "
                  f"device {device}; {dist_info.world_size} process(es)")

        if dist_info.is_main and (tcfg.fault_aware or tcfg.clip_weights is not None):
            print(describe_baseline(cfgs, n_val))
        plan = s.closing(fault_seed_plan(cfgs)) if tcfg.fault_aware else None
        faults = StepFaults(cfgs.fault, lambda: int(plan.next()[0])) if plan is not None else None
        step = qat_step(net, opt, perf.use_channels_last, perf.amp, tcfg.label_smoothing, sched, model=model,
                        faults=faults, clip=tcfg.clip_weights)

        def one_epoch(epoch):
            if plan is not None:                  # the epoch's fault seeds: from (seed, rank, epoch) alone
                plan.start_epoch(run_cfg.seed, dist_info.rank, epoch, steps=len(train_loader))
            net.train()
            reseed_epoch(train_loader, run_cfg.seed, epoch, dist_info.rank)
            m = train_one_epoch(step, train_loader, device, f"epoch {epoch + 1}/{tcfg.epochs}", dist_info)
            return {**m, "lr": opt.param_groups[0]["lr"]}

        def validate(epoch):
            m = accuracy(model, val_batches, device, desc="val") if val_batches else None
            if m is None:
                return {}
            return {"val_acc": m["acc"], "val_loss": m["loss"],
                    **(validation_pa(cfgs, model, val_batches, device, m["acc"]) if tcfg.fault_aware else {})}

        training = training_record(tcfg.fault_aware, cfgs.fault, tcfg.clip_weights)

        def make_checkpoint(epoch, metrics, best_acc):
            return {**base_checkpoint_meta(run_cfg.arch, data_cfg.dataset, info.num_classes, cfgs.bits, training),
                    "state_dict": model.state_dict(), "optimizer": opt.state_dict(), "epoch": epoch,
                    **({"scheduler": sched.state_dict()} if sched is not None else {}),
                    "best": best_acc, "metrics": metrics, "config": cfgs.to_dict()}

        task = TrainingTask(one_epoch, validate, make_checkpoint, best_key="val_acc")
        best = fit(task, run_dir, tcfg.epochs, start_epoch, best, dist_info, on_epoch=s.tensorboard(start_epoch),
                   max_minutes=run_cfg.max_minutes)
        if dist_info.is_main:
            print(f"training curves: {plot_curves(run_dir)}")
            chosen = load_best(run_dir, "base", model)
            why = f"validation accuracy {best:.2f}%" if n_val else "last epoch"
            test = accuracy_on_test_split(model, data_cfg, run_cfg.seed, device)
            print(f"done: best.pt = epoch {chosen['epoch']} ({why}); {test} -> {run_dir / 'best.pt'}")
    return 0


def refuse_unused_faults(cfgs: Configs) -> None:
    """The fault flags (--fault-model, -ber, -pos, --fault-map, --ecc) shape only --fault-aware training;
    a plain train run would record them and inject nothing, so it refuses them in one line."""
    if cfgs.train.fault_aware:
        return
    plain = FaultConfig(bits=cfgs.fault.bits)       # --bits is the model's precision: always used
    given = [f"{flag_of(f)} {show_value(getattr(cfgs.fault, f.name))}" for f in fields(FaultConfig)
             if f.name != "bits" and getattr(cfgs.fault, f.name) != getattr(plain, f.name)]
    if given:
        raise UsageError(f"{', '.join(given)}: fault settings apply to train only with --fault-aware "
                         f"(a plain QAT run injects no bit errors); add --fault-aware or drop them")


def fault_seed_plan(cfgs: Configs) -> SeedPlan:
    """--fault-aware's fault seeds: one a step from the EOPM training range, drawn per epoch from (run
    seed, rank, epoch) as EOPM draws its N (train/eopm.py), their maps built ahead in threads."""
    return SeedPlan(FaultPrefetcher(cfgs.fault, cfgs.perf.prefetch_workers), cfgs.eopm.train_seeds, per_step=1)


def describe_baseline(cfgs: Configs, n_val: int) -> str:
    """The one line that says how this run departs from plain QAT (fault-aware training, clipping)."""
    f, tcfg, lo_hi = cfgs.fault, cfgs.train, cfgs.eopm.train_seeds
    parts = [f"fault-aware QAT: (CE clean + CE under {f.model} faults at ber={f.ber:g}, {f.bits}-bit"
             f"{'' if f.ecc == 'none' else ', ecc ' + f.ecc}) / 2, one fresh fault seed a step from "
             f"[{lo_hi[0]}, {lo_hi[1]}]" + (f"; val_PA on monitor seeds {list(cfgs.eopm.monitor_seeds)}"
                                             if n_val else "")] if tcfg.fault_aware else []
    if tcfg.clip_weights is not None:
        parts.append(f"weights clipped to [-{tcfg.clip_weights:g}, {tcfg.clip_weights:g}] after every step")
    return "; ".join(parts)


def validation_pa(cfgs: Configs, model: torch.nn.Module, val_batches, device: torch.device,
                  val_acc: float) -> Dict[str, float]:
    """{"val_PA": mean accuracy of `model` on the validation images under the faults of each monitor
    seed}: the robustness curve of fault-aware training (the model is clean again afterwards)."""
    was_training = model.training
    model.eval()
    res = evaluate_seeds(model, None, val_batches, device, cfgs.fault, cfgs.eopm.monitor_seeds,
                         cfgs.perf.batch_models, prefetch_workers=cfgs.perf.prefetch_workers,
                         clean=({"CA": val_acc}, None))
    model.train(was_training)
    return {"val_PA": res["PA_mean"]}


def build_model(arch: str, info, bits: int, device: torch.device, channels_last: bool,
                dist_info: DistInfo) -> torch.nn.Module:
    """The fresh `bits`-bit classifier for the dataset `info` describes, on `device`."""
    model = get_model(arch, info.num_classes, bits, input_size=info.image_size).to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    if dist_info.enabled:
        global_batchnorm(model)       # BatchNorm over the global batch: w processes at b = 1 process at w·b
    return model


def accuracy_on_test_split(model: torch.nn.Module, data_cfg, seed: int, device: torch.device) -> str:
    """The chosen model's accuracy on the test split, read only now (never during training), as said."""
    test = cache_batches(make_loader(data_cfg, "test", seed=seed, device=device))
    acc = accuracy(model, test, device, desc="test")["acc"]
    return f"its test accuracy {acc:.2f}% on {sum(len(y) for _, y in test)} images"


def _one_cycle(opt: torch.optim.Optimizer, max_lr: float, total_steps: int):
    return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=max_lr, total_steps=max(total_steps, 1))


# TrainConfig.schedule -> (optimizer, max lr, total batches) -> the per-batch scheduler, or None
SCHEDULES: Dict[str, Callable[[torch.optim.Optimizer, float, int], Optional[Any]]] = {
    "none": lambda opt, lr, steps: None,
    "onecycle": _one_cycle,
}


def qat_step(net: torch.nn.Module, opt: torch.optim.Optimizer, channels_last: bool, amp: bool,
             label_smoothing: float = 0.0, sched: Optional[Any] = None, model: Optional[torch.nn.Module] = None,
             faults: Optional[StepFaults] = None, clip: Optional[float] = None):
    """One SGD step on a batch: cross-entropy (with `label_smoothing`) of the fake-quantized model's
    logits (bfloat16 autocast under --amp), then one step of `sched` if given; returns the batch's loss
    and accuracy as 0-dim tensors (no host sync).

    `model` is the module `net` runs (net itself by default). With `faults` the loss is fault-aware
    (train/fault_aware.py) under the faults of `faults.next_seed()` and the metrics add `pert_acc`;
    with `clip` every quantized weight is clamped to [-clip, clip] after the optimizer step."""
    model = net if model is None else model

    def plain(x: torch.Tensor, y: torch.Tensor) -> Dict[str, torch.Tensor]:
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=amp):
            logits = net(x)                                   # (B, classes)
        loss = F.cross_entropy(logits.float(), y, label_smoothing=label_smoothing)
        return {"loss": loss, "acc": 100.0 * (logits.argmax(1) == y).float().mean()}

    def fault_aware(x: torch.Tensor, y: torch.Tensor) -> Dict[str, torch.Tensor]:
        return fault_aware_loss(net, model, x, y, faults.fault, faults.next_seed(), amp, label_smoothing)

    def step(x: torch.Tensor, y: torch.Tensor):
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        metrics = (plain if faults is None else fault_aware)(x, y)
        opt.zero_grad(set_to_none=True)
        metrics["loss"].backward()
        opt.step()
        if clip is not None:
            clip_weights_(model, clip)
        if sched is not None:
            sched.step()
        return {**metrics, "loss": metrics["loss"].detach()}
    return step

"""`train` mode: quantization-aware training of the 8-bit base classifier (docs/DESIGN.md §4).

SGD with cross-entropy on fake-quantized weights; accuracy on the validation images (--val-size, held
out of the training split) after every epoch picks best.pt; the test split is read once, at the end, to
report best.pt's test accuracy. best/last checkpoints; resume with -rt.

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
"""
from __future__ import annotations

from typing import Any, Callable, Dict, Optional

import torch
import torch.nn.functional as F

from common.dist import DistInfo, global_batchnorm
from common.runs import UsageError
from common.session import Session
from config import TEST_LOADER_SEED, Configs
from datasets import cache_batches, get_dataset_info, make_batches, make_loader, use_device_data
from eval.accuracy import accuracy
from eval.plots import plot_curves
from models import base_checkpoint_meta, get_model
from train.loop import FRESH_START, TrainingTask, fit, load_best, reseed_epoch, train_one_epoch, wrap_ddp
from train.resume import nothing_missing, resume


def run(cfgs: Configs) -> int:
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

        step = qat_step(net, opt, perf.use_channels_last, perf.amp, tcfg.label_smoothing, sched)

        def one_epoch(epoch):
            net.train()
            reseed_epoch(train_loader, run_cfg.seed, epoch, dist_info.rank)
            m = train_one_epoch(step, train_loader, device, f"epoch {epoch + 1}/{tcfg.epochs}", dist_info)
            return {**m, "lr": opt.param_groups[0]["lr"]}

        def validate(epoch):
            m = accuracy(model, val_batches, device, desc="val") if val_batches else None
            return {"val_acc": m["acc"], "val_loss": m["loss"]} if m else {}

        def make_checkpoint(epoch, metrics, best_acc):
            return {**base_checkpoint_meta(run_cfg.arch, data_cfg.dataset, info.num_classes, cfgs.bits),
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
             label_smoothing: float = 0.0, sched: Optional[Any] = None):
    """One SGD step on a batch: cross-entropy (with `label_smoothing`) of the fake-quantized model's
    logits (bfloat16 autocast under --amp), then one step of `sched` if given; returns the batch's loss
    and accuracy as 0-dim tensors (no host sync)."""
    def step(x: torch.Tensor, y: torch.Tensor):
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=amp):
            logits = net(x)                                   # (B, classes)
        loss = F.cross_entropy(logits.float(), y, label_smoothing=label_smoothing)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if sched is not None:
            sched.step()
        return {"loss": loss.detach(), "acc": 100.0 * (logits.argmax(1) == y).float().mean()}
    return step

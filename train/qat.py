"""`train` mode: quantization-aware training of the 8-bit base classifier (docs/DESIGN.md §4).

SGD (momentum 0.9, lr -LR, no weight decay, no schedule) with cross-entropy on fake-quantized
weights; accuracy on the validation images (--val-size, held out of the training split) after every
epoch picks best.pt; the test split is read once, at the end, to report best.pt's test accuracy.
best/last checkpoints; resume with -rt.

Example:
    python zs_main.py resnet18 train cifar10 -E 300 -BS 256 -LR 0.001
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from common.ckpt import load_checkpoint
from common.dist import global_batchnorm, init_distributed, shutdown
from common.runs import configure_perf, resolve_device, start_run
from common.tblog import TensorBoardLog
from config import TEST_LOADER_SEED, Configs
from datasets import cache_batches, get_dataset_info, make_batches, make_loader, use_device_data
from eval.accuracy import accuracy
from eval.plots import plot_curves
from models import base_checkpoint_meta, get_model
from train.loop import fit, reseed_epoch, train_one_epoch, wrap_ddp
from train.resume import resume


def run(cfgs: Configs) -> int:
    cfgs = cfgs.with_run_dir()
    run_cfg, data_cfg, tcfg = cfgs.run, cfgs.data, cfgs.train
    device = resolve_device(run_cfg.device)
    dist_info = init_distributed(device)
    perf = cfgs.perf
    configure_perf(perf, device)
    channels_last = perf.use_channels_last
    # inputs first: a bad data root must fail before -F replaces an old run
    train_loader = make_batches(data_cfg, "train", seed=run_cfg.seed, device=device, dist_info=dist_info,
                                on_device=use_device_data(perf.device_data, data_cfg.dataset, device))
    val_batches = cache_batches(make_loader(data_cfg, "val", seed=TEST_LOADER_SEED, device=device),
                                device) if dist_info.is_main else []
    run_dir = start_run(run_cfg, cfgs.to_dict(), dist_info.is_main)

    num_classes = get_dataset_info(data_cfg.dataset).num_classes
    model = get_model(run_cfg.arch, num_classes, cfgs.bits,
                      input_size=get_dataset_info(data_cfg.dataset).image_size).to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    if dist_info.enabled:
        global_batchnorm(model)       # BatchNorm over the global batch: w processes at b = 1 process at w·b
    opt = torch.optim.SGD(model.parameters(), lr=tcfg.lr, momentum=tcfg.momentum,
                          weight_decay=tcfg.weight_decay)
    start_epoch, best = resume(run_cfg.run_dir, "base", model, opt,
                          current=cfgs.to_dict(), is_main=dist_info.is_main) if run_cfg.resume else (0, -1.0)
    net = wrap_ddp(model, device, dist_info)
    if perf.compile:
        net = torch.compile(net)      # the training forward/backward; validation runs `model` eagerly
    if dist_info.is_main:
        n_val = sum(len(y) for _, y in val_batches)
        print(f"data: {len(train_loader.dataset)} train / {n_val} validation images of {data_cfg.dataset} "
              f"({'best.pt = best validation accuracy' if n_val else 'no validation: best.pt = last epoch'}); "
              f"device {device}; {dist_info.world_size} process(es)")

    def step(x, y):
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=perf.amp):
            logits = net(x)
        loss = F.cross_entropy(logits.float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return {"loss": loss.detach(), "acc": 100.0 * (logits.argmax(1) == y).float().mean()}

    def one_epoch(epoch):
        net.train()
        reseed_epoch(train_loader, run_cfg.seed, epoch, dist_info.rank)
        m = train_one_epoch(step, train_loader, device, f"epoch {epoch + 1}/{tcfg.epochs}", dist_info)
        return {**m, "lr": opt.param_groups[0]["lr"]}

    def validate(epoch):
        if not val_batches:
            return {}
        m = accuracy(model, val_batches, device, desc="val")
        return {"val_acc": m["acc"], "val_loss": m["loss"]}

    def make_checkpoint(epoch, metrics, best_acc):
        return {**base_checkpoint_meta(run_cfg.arch, data_cfg.dataset, num_classes, cfgs.bits),
                "state_dict": model.state_dict(), "optimizer": opt.state_dict(), "epoch": epoch,
                "best": best_acc, "metrics": metrics, "config": cfgs.to_dict()}

    tb = TensorBoardLog(run_dir, start_epoch) if run_cfg.tensorboard and dist_info.is_main else None
    try:
        best, _ = fit(run_dir, tcfg.epochs, start_epoch, best, one_epoch, validate, "val_acc",
                      make_checkpoint, dist_info, on_epoch=tb)
    finally:
        if tb is not None:
            tb.close()
        shutdown(dist_info)
    if dist_info.is_main:
        print(f"training curves: {plot_curves(run_dir)}")
        chosen = load_checkpoint(run_dir / "best.pt", kind="base")
        model.load_state_dict(chosen["state_dict"])
        test = cache_batches(make_loader(data_cfg, "test", seed=run_cfg.seed, device=device))  # read only now
        test_acc = accuracy(model, test, device, desc="test")["acc"]
        why = f"validation accuracy {best:.2f}%" if val_batches else "last epoch"
        print(f"done: best.pt = epoch {chosen['epoch']} ({why}); its test accuracy {test_acc:.2f}% on "
              f"{sum(len(y) for _, y in test)} images -> {run_dir / 'best.pt'}")
    return 0

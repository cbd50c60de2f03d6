"""The `export` mode: write a base checkpoint's int8 export (models/export.py) — the weights as the
SRAM holds them, int8 codes plus one step Δ per layer, about a quarter of the float file. The export
loads as -cp in every mode and evaluates exactly like the checkpoint it came from.

Example:
    python zs_main.py resnet18 export cifar10 -cp checkpoints/resnet18_cifar10_qat/best.pt --out m.int8.pt
"""
from __future__ import annotations

from pathlib import Path

import torch

from common.ckpt import save_checkpoint
from common.runs import UsageError
from config import Configs
from datasets import get_dataset_info
from models import base_checkpoint_meta, load_base
from models.export import export_int8


def run(cfgs: Configs) -> int:
    if not cfgs.run.out:
        raise UsageError("export needs --out FILE: where to write the int8 export (e.g. m.int8.pt)")
    out = Path(cfgs.run.out)
    if out.exists() and not cfgs.run.force:
        raise UsageError(f"--out {out} exists; pass -F to overwrite it")
    if not out.parent.is_dir():
        raise UsageError(f"--out {out}: folder {out.parent} does not exist")
    info = get_dataset_info(cfgs.data.dataset)
    model = load_base(cfgs.run.checkpoint, cfgs.run.arch, cfgs.data.dataset, cfgs.bits, torch.device("cpu"),
                      num_classes=info.num_classes, input_size=info.image_size)
    meta = base_checkpoint_meta(cfgs.run.arch, cfgs.data.dataset, info.num_classes, cfgs.bits,
                                training=getattr(model, "base_training", None))   # how it was trained, kept
    save_checkpoint(export_int8(model, meta), out)          # atomic, checksummed
    print(f"int8 export: {out} ({out.stat().st_size / 2 ** 20:.2f} MiB)", flush=True)
    return 0

"""datasets/loader.py: the DataLoader path and the on-device path serve the same images in the same order,
the on-device augmentation comes from each dataset's registry entry, and a --train-limit / --test-limit
above what a part has is cut to it with one note, which `part_sizes` reports."""
from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

import datasets.loader as L
from common.dist import DistInfo
from common.runs import UsageError
from config import DataConfig
from datasets import list_datasets, make_batches, make_loader, part_sizes, use_device_data
from datasets.base import DATASETS
from train.loop import reseed_epoch

ROOT = Path(__file__).resolve().parent.parent
CPU = torch.device("cpu")


# ----------------------------------------------------------------------------- the entry's device augmentation
@pytest.mark.parametrize("name", list_datasets())
def test_every_32px_dataset_has_a_device_augmentation(name):
    entry = DATASETS.get(name)
    has = entry.device_augment is not None
    assert has == (entry.info.image_size == 32), (
        f"{name}: a 32-px dataset needs DatasetEntry(device_augment=...) (its training ops as batched tensor "
        f"ops, datasets/device.py), else --device-data auto silently keeps the DataLoader; a larger one has none")
    assert use_device_data("auto", name, torch.device("cuda")) == has
    assert not use_device_data("auto", name, CPU) and not use_device_data("off", name, torch.device("cuda"))
    if not has:
        with pytest.raises(UsageError, match="cifar10, cifar100, gtsrb"):
            use_device_data("on", name, CPU)


@pytest.mark.parametrize("name", [n for n in DATASETS.names() if DATASETS.get(n).device_augment is not None])
def test_device_augmentation_flips_only_with_hflip(name):
    """Same draws up to the flip: with hflip each image is the hflip=False image or its mirror, both occur."""
    build = DATASETS.get(name).device_augment
    x = torch.randint(0, 256, (64, 3, 32, 32), dtype=torch.uint8)
    plain = build(False)(x, torch.Generator().manual_seed(3))
    flipped = build(True)(x, torch.Generator().manual_seed(3))
    assert plain.dtype == torch.uint8 and plain.shape == x.shape
    same = [torch.equal(f, p) for f, p in zip(flipped, plain)]
    mirror = [torch.equal(f, p.flip(-1)) for f, p in zip(flipped, plain)]
    assert all(s or m for s, m in zip(same, mirror)) and any(same) and any(mirror)


def test_cifar_device_augmentation_is_a_padded_crop():
    x = torch.randint(0, 256, (16, 3, 32, 32), dtype=torch.uint8)
    out = DATASETS.get("cifar10").device_augment(False)(x, torch.Generator().manual_seed(0))
    padded = torch.nn.functional.pad(x, (4, 4, 4, 4))                          # (16, 3, 40, 40)
    for i in range(len(x)):
        crops = [padded[i, :, r:r + 32, c:c + 32] for r in range(9) for c in range(9)]
        assert any(torch.equal(out[i], c) for c in crops)


# ----------------------------------------------------------------------------- one order, two paths
def _both_paths(cfg, part, info=DistInfo(), epoch=1):
    out = []
    for on_device in (False, True):
        loader = make_batches(cfg, part, seed=7, device=CPU, on_device=on_device, dist_info=info)
        reseed_epoch(loader, 7, epoch)
        out.append(list(loader))
    return out


@pytest.mark.parametrize("info", [DistInfo(), DistInfo(rank=1, world_size=3)])
@pytest.mark.parametrize("part", ["train", "val", "test"])
def test_device_path_serves_the_dataloaders_images_in_its_order(cifar_root, part, info):
    """Unaugmented, the two paths agree bit for bit: same images, same order, same batches, same DDP share."""
    cfg = DataConfig("cifar10", root=str(cifar_root), download=False, train_limit=50, test_limit=30,
                     val_size=20, batch_size=8, test_batch_size=8, augment=False, workers=0)
    loader, device = _both_paths(cfg, part, info)
    assert len(loader) == len(device) > 1
    for (xa, ya), (xb, yb) in zip(loader, device):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    if part == "train":                                                   # and it is a shuffled order
        first = torch.cat([y for _, y in loader])
        assert not torch.equal(first, torch.cat([y for _, y in _both_paths(cfg, part, info, epoch=2)[0]]))


def test_part_plans_share_one_rule():
    cfg = DataConfig("cifar10", batch_size=32, test_batch_size=64, augment=True)
    ddp = DistInfo(rank=0, world_size=2)
    train, val = L.plan_part(cfg, "train", ddp), L.plan_part(cfg, "val", ddp)
    assert (train.augment, train.shuffle, train.batch_size, train.dist_info) == (True, True, 32, ddp)
    assert (val.augment, val.shuffle, val.batch_size, val.dist_info) == (False, False, 64, DistInfo())
    assert not L.plan_part(DataConfig("cifar10", augment=False), "train").augment
    assert not L.plan_part(cfg, "train", augment=False, shuffle=False).shuffle
    with pytest.raises(ValueError, match="unknown part"):
        L.plan_part(cfg, "dev")


# ----------------------------------------------------------------------------- limits above a part's size
def _notes(fn):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        value = fn()
    return value, [str(w.message) for w in caught if "-limit" in str(w.message)]


def test_a_test_limit_above_the_split_is_cut_with_one_note(cifar_root, monkeypatch):
    monkeypatch.setattr(L, "_LIMIT_NOTED", set())
    cfg = DataConfig("cifar10", root=str(cifar_root), download=False, test_limit=150, test_batch_size=40)
    sizes, notes = _notes(lambda: part_sizes(cfg))
    assert sizes["test"] == 100                                           # the fixture's test split
    assert notes == ["--test-limit 150 is more than there are: cifar10's test split has 100 images; using all 100"]
    loader, again = _notes(lambda: make_loader(cfg, "test", seed=0, device=CPU))
    assert len(loader.dataset) == 100 and again == []                     # said once per process


def test_a_train_limit_counts_the_validation_images_out(cifar_root, monkeypatch):
    monkeypatch.setattr(L, "_LIMIT_NOTED", set())
    cfg = DataConfig("cifar10", root=str(cifar_root), download=False, train_limit=200, val_size=30)
    sizes, notes = _notes(lambda: part_sizes(cfg))
    assert sizes == {"train": 170, "val": 30, "test": 100}
    assert len(notes) == 1 and "170 training images (200 less 30 held out for validation)" in notes[0]
    fits = DataConfig("cifar10", root=str(cifar_root), download=False, train_limit=170, val_size=30, test_limit=99)
    sizes, notes = _notes(lambda: part_sizes(fits))
    assert sizes == {"train": 170, "val": 30, "test": 99} and notes == []


@pytest.mark.slow
def test_a_command_prints_one_md5_note_and_one_limit_note(cifar_root, tmp_path):
    """A whole train command reads both CIFAR splits (md5s differ from the release: our fixture) and a
    --test-limit above the test split: one line each on stderr, no more."""
    proc = subprocess.run([sys.executable, "zs_main.py", "vgg11", "train", "cifar10", "--data-root", str(cifar_root),
                           "--train-limit", "20", "--test-limit", "150", "-BS", "10", "-TBS", "50", "-E", "1",
                           "--no-download", "--device", "cpu", "--run-dir", str(tmp_path / "r")],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stderr.splitlines()
    md5 = [ln for ln in lines if "md5" in ln]
    assert len(md5) == 1 and "test_batch" in md5[0] and "data_batch_1" in md5[0], proc.stderr
    assert len([ln for ln in lines if "--test-limit 150" in ln]) == 1, proc.stderr
    assert "Traceback" not in proc.stderr

"""Class names for pictures (datasets.class_names): fixed lists for CIFAR and GTSRB, ImageNet-10's read
from its folders and meta.bin, indices where nothing names the classes. Tiny self-made layouts only."""
from __future__ import annotations

import pytest
import torch

from common.registry import UnknownName
from datasets import class_names, get_dataset_info, list_datasets
from eval.samples import _name

WNIDS = ["n03888257", "n01440764", "n02102040", "n02979186", "n03000684", "n03028079", "n03394916",
         "n03417042", "n03425413", "n03445777"]          # not sorted: labels follow the sorted folders
NAMES = {"n01440764": ("tench", "Tinca tinca"), "n02102040": ("English springer",), "n02979186": ("cassette player",),
         "n03000684": ("chain saw", "chainsaw"), "n03028079": ("church",), "n03394916": ("French horn",),
         "n03417042": ("garbage truck",), "n03425413": ("gas pump",), "n03445777": ("golf ball",),
         "n03888257": ("parachute",)}


def imagenet_tree(root, split="val", wnids=WNIDS, meta=None):
    for w in wnids:
        (root / "imagenet-10" / split / w).mkdir(parents=True)
    if meta is not None:
        torch.save(meta, root / "imagenet-10" / "meta.bin")
    return root


@pytest.mark.parametrize("name", list_datasets())
def test_every_dataset_names_each_class_once_or_not_at_all(name):
    names = class_names(name)
    assert names == () or (len(names) == get_dataset_info(name).num_classes and len(set(names)) == len(names))


def test_gtsrb_signs_in_class_id_order():
    names = class_names("gtsrb")
    assert len(names) == 43
    assert (names[0], names[1], names[13], names[14], names[17], names[42]) == \
        ("20 km/h", "30 km/h", "yield", "stop", "no entry", "end no passing >3.5t")
    assert max(len(n) for n in names) <= 22                  # fits a thumbnail's title in samples.png


def test_cifar10_names_unchanged():
    assert class_names("cifar10")[:4] == ("airplane", "automobile", "bird", "cat")


def test_imagenet10_names_from_meta_bin_in_sorted_folder_order(tmp_path):
    root = imagenet_tree(tmp_path, meta=(NAMES, []))
    names = class_names("imagenet224", root)
    assert names == tuple(NAMES[w][0] for w in sorted(WNIDS))
    assert names[0] == "tench" and names[-1] == "parachute"


def test_imagenet10_without_meta_bin_shows_wnids_and_reads_train_when_val_is_absent(tmp_path):
    root = imagenet_tree(tmp_path, split="train")
    assert class_names("imagenet224", root) == tuple(sorted(WNIDS))


def test_imagenet10_meta_bin_missing_a_wnid_or_unreadable(tmp_path):
    partial = {w: n for w, n in NAMES.items() if w != "n03028079"}
    root = imagenet_tree(tmp_path / "a", meta=(partial, []))
    names = class_names("imagenet224", root)
    assert names[4] == "n03028079" and names[0] == "tench" and names[5] == "French horn"
    root = imagenet_tree(tmp_path / "b")
    (root / "imagenet-10" / "meta.bin").write_bytes(b"not a torch file")
    assert class_names("imagenet224", root) == tuple(sorted(WNIDS))


def test_imagenet10_without_its_folders_falls_back_to_indices(tmp_path):
    assert class_names("imagenet224") == ()                                 # no root given
    assert class_names("imagenet224", tmp_path / "absent") == ()
    root = imagenet_tree(tmp_path, wnids=WNIDS[:9], meta=(NAMES, []))       # 9 folders: labels unknown
    assert class_names("imagenet224", root) == ()
    assert [_name(i, ()) for i in range(3)] == ["0", "1", "2"]              # what samples.png then shows


def test_unknown_dataset_is_refused_with_the_choices():
    with pytest.raises(UnknownName, match="cifar10"):
        class_names("mnist")

"""Data zoo tests (docs/DESIGN.md §3): each test writes a tiny copy of the real on-disk format under tmp_path."""
from __future__ import annotations

import csv
import pickle
import warnings
from pathlib import Path
from typing import Callable, Dict, List, Tuple

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import transforms as T

import datasets as D
from common.registry import UnknownName
from datasets import DataMissingError, balanced_subset, get_dataset_info, list_datasets, load_split

N_SPLIT = 20  # images per split in the CIFAR fixtures


def _rgb(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    return rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)


def write_cifar(root: Path, name: str, bytes_keys: bool = True) -> Dict[bool, List[int]]:
    """CIFAR python pickles (official keys; the 2009 files unpickle with bytes keys)."""
    rng = np.random.default_rng(0)
    tv = D.cifar.FAMILIES[name]
    C = get_dataset_info(name).num_classes
    folder = root / tv["folder"]
    folder.mkdir(parents=True)
    k = (lambda s: s.encode()) if bytes_keys else (lambda s: s)
    labels: Dict[bool, List[int]] = {}
    for train, files in ((True, tv["train"]), (False, tv["test"])):
        labels[train] = []
        per_file = -(-N_SPLIT // len(files))
        for j, f in enumerate(files):
            n = min(per_file, N_SPLIT - j * per_file)
            y = rng.integers(0, C, size=n).tolist()
            data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
            with open(folder / f, "wb") as fh:
                pickle.dump({k("data"): data, k(tv["labels_key"]): y}, fh)
            labels[train] += y
    with open(folder / tv["meta"], "wb") as fh:
        pickle.dump({k(tv["meta_key"]): [k(f"class{i}") for i in range(C)]}, fh)
    return labels


def write_gtsrb(root: Path) -> Dict[bool, List[int]]:
    """torchvision's GTSRB layout, with odd image sizes (Resize((32, 32)) must fix them)."""
    rng = np.random.default_rng(1)
    base = root / "gtsrb"
    train: List[int] = []
    for label, count in ((0, 3), (1, 2), (42, 4)):
        d = base / "GTSRB" / "Training" / f"{label:05d}"
        d.mkdir(parents=True)
        for i in range(count):
            Image.fromarray(_rgb(rng, 29 + i, 35)).save(d / f"00000_{i:05d}.ppm")
            train.append(label)
        (d / f"GT-{label:05d}.csv").write_text("not an image\n")   # the official zip has these
    img_dir = base / "GTSRB" / "Final_Test" / "Images"
    img_dir.mkdir(parents=True)
    test = [5, 0, 42, 7]
    with open(base / "GT-final_test.csv", "w", newline="") as fh:
        w = csv.writer(fh, delimiter=";")
        w.writerow(["Filename", "Width", "Height", "Roi.X1", "Roi.Y1", "Roi.X2", "Roi.Y2", "ClassId"])
        for i, y in enumerate(test):
            Image.fromarray(_rgb(rng, 40, 33)).save(img_dir / f"{i:05d}.ppm")
            w.writerow([f"{i:05d}.ppm", 33, 40, 5, 5, 28, 35, y])
    return {True: train, False: test}


def write_imagenet10(root: Path) -> Dict[bool, List[int]]:
    """ImageFolder tree of tiny JPEGs (one greyscale per class: the loader must convert to RGB)."""
    rng = np.random.default_rng(2)
    wnids = sorted(f"n{7000000 + 11 * i:08d}" for i in range(10))
    labels: Dict[bool, List[int]] = {True: [], False: []}
    for train, split, per_class in ((True, "train", 2), (False, "val", 1)):
        for c, wnid in enumerate(wnids):
            d = root / "imagenet-10" / split / wnid
            d.mkdir(parents=True)
            for i in range(per_class):
                img = Image.fromarray(_rgb(rng, 12, 17))
                (img.convert("L") if i == 0 else img).save(d / f"{wnid}_{i}.JPEG")
                labels[train].append(c)
    return labels


WRITERS: Dict[str, Callable[[Path], Dict[bool, List[int]]]] = {
    "cifar10": lambda r: write_cifar(r, "cifar10", bytes_keys=False),   # as a Python-3 re-pickle
    "cifar100": lambda r: write_cifar(r, "cifar100", bytes_keys=True),  # as the official files
    "gtsrb": write_gtsrb,
    "imagenet224": write_imagenet10,
}


def _load_quiet(name: str, root: Path, train: bool, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # our fixtures never match the official md5s
        return load_split(name, root, train=train, **kw)


def test_registry_lists_the_four_datasets_and_every_one_has_a_fixture():
    assert list_datasets() == ["cifar10", "cifar100", "gtsrb", "imagenet224"]
    assert set(WRITERS) == set(list_datasets())
    sizes = {n: (get_dataset_info(n).num_classes, get_dataset_info(n).image_size) for n in list_datasets()}
    assert sizes == {"cifar10": (10, 32), "cifar100": (100, 32), "gtsrb": (43, 32), "imagenet224": (10, 224)}
    with pytest.raises(UnknownName, match="cifar10"):
        get_dataset_info("mnist")


@pytest.mark.parametrize("name", list_datasets())
@pytest.mark.parametrize("train", [True, False])
def test_split_loads_with_range_shape_labels(tmp_path, name, train):
    expected = WRITERS[name](tmp_path)[train]
    info = get_dataset_info(name)
    ds = _load_quiet(name, tmp_path, train)
    assert len(ds) == len(expected)
    assert [int(t) for t in ds.targets] == expected
    for i in range(len(ds)):
        x, y = ds[i]
        assert x.dtype == torch.float32 and x.shape == (3, info.image_size, info.image_size)
        assert x.min() >= -1 and x.max() <= 1
        assert isinstance(y, int) and 0 <= y < info.num_classes and y == expected[i]


@pytest.mark.parametrize("name", list_datasets())
def test_test_transform_is_deterministic_and_train_augmentation_varies(tmp_path, name):
    WRITERS[name](tmp_path)
    torch.manual_seed(0)
    test = _load_quiet(name, tmp_path, train=False)
    assert torch.equal(test[0][0], test[0][0])
    plain = _load_quiet(name, tmp_path, train=True, augment=False)
    assert torch.equal(plain[1][0], plain[1][0])
    aug = _load_quiet(name, tmp_path, train=True)
    draws = torch.stack([aug[1][0] for _ in range(6)])
    assert not all(torch.equal(draws[0], d) for d in draws[1:])


def test_cifar_test_pixels_are_totensor_times_two_minus_one(tmp_path):
    write_cifar(tmp_path, "cifar10")
    ds = _load_quiet("cifar10", tmp_path, train=False)
    x, _ = ds[3]
    ref = torch.from_numpy(ds.image(3)).permute(2, 0, 1).float() / 255 * 2 - 1   # (3, 32, 32)
    assert torch.allclose(x, ref)
    assert ds.image(3).shape == (32, 32, 3) and ds.image(3).dtype == np.uint8
    assert len(ds) == N_SPLIT and ds.rows.shape == (N_SPLIT, 3072)


def test_hflip_flag_controls_the_flip():
    def flips(**kw) -> bool:
        ops = D.DATASETS.get("gtsrb").ops(True, **kw)
        return any(isinstance(o, T.RandomHorizontalFlip) for o in ops)
    assert flips(hflip=True) and not flips(hflip=False)


def test_md5_mismatch_warns_but_loads(tmp_path):
    write_cifar(tmp_path, "cifar10")
    with pytest.warns(UserWarning, match="md5 of test_batch, batches.meta differs"):
        ds = load_split("cifar10", tmp_path, train=False)
    assert len(ds) == N_SPLIT


@pytest.mark.parametrize("name", list_datasets())
@pytest.mark.parametrize("train", [True, False])
def test_missing_data_names_the_expected_path(tmp_path, name, train):
    with pytest.raises(DataMissingError) as e:
        load_split(name, tmp_path, train=train)
    msg = str(e.value)
    assert str(tmp_path) in msg and name in msg
    expected = {"cifar10": "cifar-10-batches-py", "cifar100": "cifar-100-python",
                "gtsrb": "gtsrb/GTSRB", "imagenet224": "imagenet-10/"}[name]
    assert expected in msg
    assert ("--download" in msg) == get_dataset_info(name).downloadable


@pytest.mark.parametrize("name", ["cifar10", "gtsrb"])
def test_failed_download_becomes_data_missing_error(tmp_path, monkeypatch, name):
    def offline(*a, **kw):
        raise OSError("no network")
    monkeypatch.setattr(D.cifar.FAMILIES["cifar10"]["tv_cls"] if name == "cifar10" else D.gtsrb.tvd.GTSRB,
                        "download", offline)
    with pytest.raises(DataMissingError, match="download failed.*no network"):
        load_split(name, tmp_path, train=True, download=True)


def test_imagenet_download_says_it_cannot(tmp_path):
    with pytest.raises(DataMissingError, match="cannot be downloaded"):
        load_split("imagenet224", tmp_path, train=True, download=True)


@pytest.mark.parametrize("damage", ["truncate", "garbage", "wrong_keys"])
def test_corrupt_pickle_is_data_missing_error(tmp_path, damage):
    write_cifar(tmp_path, "cifar10")
    f = tmp_path / "cifar-10-batches-py" / "test_batch"   # unpickled before batches.meta
    if damage == "truncate":
        f.write_bytes(f.read_bytes()[:100])
    elif damage == "garbage":
        f.write_bytes(b"not a pickle at all")
    else:
        f.write_bytes(pickle.dumps({"pixels": np.zeros((2, 3072), np.uint8)}))
    with pytest.raises(DataMissingError, match="unreadable file .*test_batch"):
        _load_quiet("cifar10", tmp_path, train=False)


def test_gtsrb_csv_listing_absent_image_is_data_missing_error(tmp_path):
    write_gtsrb(tmp_path)
    (tmp_path / "gtsrb" / "GTSRB" / "Final_Test" / "Images" / "00002.ppm").unlink()
    with pytest.raises(DataMissingError, match="00002.ppm"):
        load_split("gtsrb", tmp_path, train=False)


def test_imagenet_class_folders_must_match_between_splits(tmp_path):
    write_imagenet10(tmp_path)
    val = tmp_path / "imagenet-10" / "val"
    first = sorted(val.iterdir())[0]
    first.rename(val / "n99999999")
    with pytest.raises(DataMissingError, match="different class folders"):
        load_split("imagenet224", tmp_path, train=False)


def test_dataset_pickles_for_dataloader_workers(tmp_path):
    write_cifar(tmp_path, "cifar10")
    ds = _load_quiet("cifar10", tmp_path, train=False)
    clone = pickle.loads(pickle.dumps(ds))
    assert torch.equal(clone[2][0], ds[2][0]) and clone.targets == ds.targets


# ---- balanced_subset ----------------------------------------------------------------------------

def _counts(targets: np.ndarray, idx: List[int]) -> Tuple[int, ...]:
    return tuple(np.bincount(targets[idx], minlength=targets.max() + 1).tolist())


def test_balanced_subset_is_balanced_sorted_and_seeded():
    targets = np.repeat(np.arange(4), 25)[np.random.default_rng(3).permutation(100)]
    a = balanced_subset(targets, 42, seed=0)
    assert len(a) == 42 == len(set(a)) and a == sorted(a)
    assert _counts(targets, a) == (11, 11, 10, 10)           # remainder to the first classes
    assert balanced_subset(list(targets), 42, seed=0) == a   # deterministic, list input too
    assert balanced_subset(targets, 42, seed=1) != a


def test_balanced_subset_refills_from_other_classes():
    targets = np.array([0] * 3 + [1] * 50 + [2] * 50)
    idx = balanced_subset(targets, 30, seed=0)
    assert _counts(targets, idx) == (3, 14, 13) and len(idx) == 30


def test_balanced_subset_edge_sizes():
    targets = [0, 1, 1, 2]
    assert balanced_subset(targets, 4, seed=0) == [0, 1, 2, 3]
    assert balanced_subset(targets, 10, seed=5) == [0, 1, 2, 3]
    assert balanced_subset(targets, 0, seed=0) == []
    assert len(balanced_subset(targets, 3, seed=0)) == 3


def test_gtsrb_subset_opens_only_its_files(tmp_path, monkeypatch):
    from config import DataConfig
    from datasets import base, cache_batches, make_loader
    write_gtsrb(tmp_path)
    opened = []
    real_open = base.Image.open                   # every loader opens images through base.open_rgb
    monkeypatch.setattr(base.Image, "open", lambda p, *a, **k: opened.append(p) or real_open(p, *a, **k))
    cfg = DataConfig("gtsrb", root=str(tmp_path), download=False, test_limit=2, test_batch_size=2)
    batches = cache_batches(make_loader(cfg, "test", seed=0, device=torch.device("cpu")))
    assert sum(len(y) for _, y in batches) == 2 and len(opened) == 2          # of 4 test images


def _md5_notes(root: Path, loads) -> List[str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for train in loads:
            load_split("cifar10", root, train=train)
    return [str(w.message) for w in caught if "official release" in str(w.message)]


def test_one_md5_note_per_folder_covers_both_splits(tmp_path):
    write_cifar(tmp_path, "cifar10")
    notes = _md5_notes(tmp_path, (True, False, True))
    assert len(notes) == 1 and notes[0].startswith("cifar10: md5 of data_batch_1, ")
    assert all(f in notes[0] for f in ("data_batch_5", "batches.meta", "test_batch"))


def test_the_jpeg_copy_is_named_once_without_md5s(tmp_path, monkeypatch):
    """The JPEG copy's batch labels end in '(JPEG copy)': one note says why its files differ, no md5 list."""
    import datasets.cifar as C
    write_cifar(tmp_path, "cifar10")
    folder = tmp_path / "cifar-10-batches-py"
    for f in C.FAMILIES["cifar10"]["train"] + C.FAMILIES["cifar10"]["test"]:
        with open(folder / f, "rb") as fh:
            d = pickle.load(fh)
        with open(folder / f, "wb") as fh:
            pickle.dump({**d, "batch_label": f"{f} (JPEG copy)"}, fh)
    monkeypatch.setattr(C, "_md5", lambda path: pytest.fail(f"hashed {path}"))
    notes = _md5_notes(tmp_path, (False, True))
    assert len(notes) == 1 and "JPEG re-encoding" in notes[0] and "by design" in notes[0]
    assert "md5" not in notes[0]

"""CIFAR-10 / CIFAR-100 from the official python pickles (docs/DESIGN.md §3).

We read the pickles ourselves instead of torchvision's CIFAR classes: those refuse any file whose md5
differs from the 2009 release (e.g. a re-encoded copy); we load it and say so in one note per data
folder per process (a command), which covers both splits. A JPEG copy whose batch labels say
"(JPEG copy)" (the one the measurements use, written by the data folder's materialize.py) is named as
such instead of a list of md5 mismatches. The official md5s are read from torchvision's class
attributes at run time.

Rows stay as stored (N, 3072) and are turned into an image only when an item is read, so a
--train-limit/--test-limit subset converts only its own rows.

    python -c "import datasets; print(len(datasets.load_split('cifar10', 'data', train=True)))"
"""
from __future__ import annotations

import hashlib
import pickle
import warnings
from pathlib import Path
from typing import Dict, List, Optional, Set

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset
from torchvision import datasets as tvd
from torchvision import transforms as T

from .base import DATASETS, Augment, DatasetEntry, DatasetInfo, missing
from .device import crop_with_padding, random_hflip

CIFAR_SIZE = 32     # pixels per side
CIFAR_PAD = 4       # RandomCrop padding, docs/DESIGN.md §3


def _family(tv_cls: type, folder: str, labels_key: str) -> Dict:
    """Everything that differs between CIFAR-10 and -100: data, not code."""
    return {"tv_cls": tv_cls, "folder": folder, "labels_key": labels_key,
            "train": [f for f, _ in tv_cls.train_list], "test": [f for f, _ in tv_cls.test_list],
            "meta": tv_cls.meta["filename"], "meta_key": tv_cls.meta["key"]}


FAMILIES = {
    "cifar10": _family(tvd.CIFAR10, "cifar-10-batches-py", "labels"),
    "cifar100": _family(tvd.CIFAR100, "cifar-100-python", "fine_labels"),
}


def _official_md5s(tv_cls: type) -> Dict[str, str]:
    return {**dict(tv_cls.train_list + tv_cls.test_list), tv_cls.meta["filename"]: tv_cls.meta["md5"]}


_NOTED: Set[str] = set()   # data folders already checked in this process (demo + stages share one)
JPEG_COPY_MARK = "(JPEG copy)"   # ends each batch_label of the JPEG copy of CIFAR-10 (materialize.py)


def _md5(path: str) -> str:
    """md5 of a file (each folder is checked once per process: `_NOTED` remembers it)."""
    h = hashlib.md5()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


# The only globals a CIFAR batch file may name: numpy's array/scalar rebuilders (old and new module
# paths, every pickle protocol) and the str->bytes helper protocol 2 uses. Anything else (os.system,
# builtins.eval, ...) is refused before it is called, so a planted file cannot run code.
_SAFE_GLOBALS = {("_codecs", "encode"), ("numpy", "ndarray"), ("numpy", "dtype")} | {
    (f"numpy.{core}.{module}", name) for core in ("core", "_core")
    for module, name in (("multiarray", "_reconstruct"), ("multiarray", "scalar"), ("numeric", "_frombuffer"))}


class _PlainUnpickler(pickle.Unpickler):
    """Plain containers, strings, numbers and numpy arrays only."""

    def find_class(self, module: str, name: str):
        if (module, name) not in _SAFE_GLOBALS:
            raise pickle.UnpicklingError(f"refused to load {module}.{name} (a CIFAR file holds only plain "
                                         f"data and numpy arrays)")
        return super().find_class(module, name)


def _unpickle(path: Path) -> Dict[str, object]:
    with open(path, "rb") as fh:
        d = _PlainUnpickler(fh, encoding="bytes").load()   # the official files are Python-2 pickles
    if not isinstance(d, dict):
        raise ValueError(f"{path.name} holds a {type(d).__name__}, not a dict")
    return {(k.decode() if isinstance(k, bytes) else k): v for k, v in d.items()}


def _md5_or_none(path: Path) -> Optional[str]:
    """md5 of a file this command may not need (the other split): None when it cannot be read."""
    try:
        return _md5(str(path))
    except OSError:
        return None


def _text(b: object) -> str:
    return b.decode(errors="replace") if isinstance(b, bytes) else str(b)


def _note_unofficial(name: str, folder: Path, opened: List[Path], others: List[Path], jpeg_copy: bool,
                     tv_cls: type) -> None:
    """At most one note per data folder per process: the JPEG copy named as such, or else the files
    (those just opened first, then the other split's) whose md5 differs from the official release."""
    key = str(folder.resolve())
    if key in _NOTED:
        return
    _NOTED.add(key)
    if jpeg_copy:
        warnings.warn(f"{name}: {folder} is a JPEG re-encoding of {name} (its batch labels end in "
                      f"'{JPEG_COPY_MARK}'), so its files differ from the official release by design; its "
                      f"pixels are lossy, so accuracies may differ slightly from the paper's", stacklevel=3)
        return
    official = _official_md5s(tv_cls)
    odd = [p.name for p in opened if _md5(str(p)) != official[p.name]]
    odd_other = [p.name for p in others if _md5_or_none(p) not in (official[p.name], None)]
    if odd or odd_other:
        also = f" (and so does that of {', '.join(odd_other)})" if odd and odd_other else ""
        warnings.warn(f"{name}: md5 of {', '.join(odd or odd_other)} differs from the official release{also}; "
                      f"a re-encoded copy? Loading anyway", stacklevel=3)


class CifarPickles(Dataset):
    """The images of one split as stored, uint8 rows (N, 3072) = (N, 3, 32, 32); items are (PIL image ->
    transform, label), each converted from its row when read."""

    size = CIFAR_SIZE                # pixels per side

    def __init__(self, name: str, root: Path, train: bool, download: bool):
        fam, info = FAMILIES[name], DATASETS.get(name).info
        folder = root / fam["folder"]
        files = fam["train"] if train else fam["test"]
        needed = [folder / f for f in files + [fam["meta"]]]
        absent = [p for p in needed if not p.is_file()]
        if absent and download:
            try:
                fam["tv_cls"](str(root), train=train, download=True)
            except Exception as e:  # offline, bad archive, ...: all end as the same clear error
                raise missing(info, root, "download failed", f"{type(e).__name__}: {e}") from e
            absent = [p for p in needed if not p.is_file()]
        if absent:
            what = folder if not folder.is_dir() else ", ".join(str(p) for p in absent)
            raise missing(info, root, f"missing {what}")
        xs, ys, labels, p = [], [], [], needed[0]
        try:
            for p in needed[:-1]:
                d = _unpickle(p)
                labels.append(d.get("batch_label", b""))
                x = np.asarray(d["data"], dtype=np.uint8)
                y = [int(v) for v in d[fam["labels_key"]]]
                if x.ndim != 2 or x.shape[1] != 3 * CIFAR_SIZE ** 2 or len(y) != len(x):
                    raise ValueError(f"{p.name}: data {x.shape} / {len(y)} labels, expected (N, 3072) / N")
                xs.append(x)
                ys.extend(y)
            p = needed[-1]
            classes = [c.decode() if isinstance(c, bytes) else str(c) for c in _unpickle(p)[fam["meta_key"]]]
        except Exception as e:  # truncated/corrupt pickle, wrong keys or shapes
            raise missing(info, root, f"unreadable file {p}", f"{type(e).__name__}: {e}") from e
        if ys and not (0 <= min(ys) and max(ys) < info.num_classes):
            raise missing(info, root, f"labels outside 0..{info.num_classes - 1} in {folder}")
        jpeg_copy = all(_text(b).endswith(JPEG_COPY_MARK) for b in labels)
        other = [folder / f for f in fam["test" if train else "train"]]
        _note_unofficial(name, folder, needed, [q for q in other if q.is_file()], jpeg_copy, fam["tv_cls"])

        self.rows = np.concatenate(xs)                                    # (N, 3072) uint8 as stored
        self.targets: List[int] = ys
        self.classes = classes
        self.transform = None

    def __len__(self) -> int:
        return len(self.targets)

    def image(self, i: int) -> np.ndarray:
        """Item i as a (32, 32, 3) uint8 array; only the rows that are read get converted."""
        return np.ascontiguousarray(self.rows[i].reshape(3, CIFAR_SIZE, CIFAR_SIZE).transpose(1, 2, 0))

    def __getitem__(self, i: int):
        img = Image.fromarray(self.image(i))                             # (32, 32, 3) uint8 -> PIL RGB
        return (self.transform(img) if self.transform else img), self.targets[i]


def _ops(augment: bool, hflip: bool) -> list:
    if not augment:
        return []
    return [T.RandomCrop(CIFAR_SIZE, padding=CIFAR_PAD)] + ([T.RandomHorizontalFlip()] if hflip else [])


def device_augment(hflip: bool) -> Augment:
    """`_ops(True, hflip)` as batched tensor ops on a uint8 batch held on the device (--device-data)."""
    def augment(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        x = crop_with_padding(x, g, CIFAR_PAD)                      # (B, 3, 32, 32) uint8
        return random_hflip(x, g) if hflip else x
    return augment


# Class names in label order, as the release's batches.meta / meta files list them.
CLASS_NAMES = {
    "cifar10": ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"),
    "cifar100": tuple("""apple aquarium_fish baby bear beaver bed bee beetle bicycle bottle bowl boy bridge bus
        butterfly camel can castle caterpillar cattle chair chimpanzee clock cloud cockroach couch crab crocodile
        cup dinosaur dolphin elephant flatfish forest fox girl hamster house kangaroo keyboard lamp lawn_mower
        leopard lion lizard lobster man maple_tree motorcycle mountain mouse mushroom oak_tree orange orchid otter
        palm_tree pear pickup_truck pine_tree plain plate poppy porcupine possum rabbit raccoon ray road rocket
        rose sea seal shark shrew skunk skyscraper snail snake spider squirrel streetcar sunflower sweet_pepper
        table tank telephone television tiger tractor train trout tulip turtle wardrobe whale willow_tree wolf
        woman worm""".split()),
}

for _name, _classes in (("cifar10", 10), ("cifar100", 100)):
    _fam = FAMILIES[_name]
    _layout = (f"{_fam['folder']}/{{{','.join(_fam['train'] + _fam['test'] + [_fam['meta']])}}} "
               f"(the python pickles of the official release)")
    DATASETS.register(_name)(DatasetEntry(
        info=DatasetInfo(_name, _classes, CIFAR_SIZE, _layout, downloadable=True, class_names=CLASS_NAMES[_name]),
        open=lambda root, train, download, _n=_name: CifarPickles(_n, root, train, download),
        ops=_ops, device_augment=device_augment))

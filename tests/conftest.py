"""Shared fixtures: a small *learnable* CIFAR-10 copy in the real on-disk format (python pickles).

Each class is a fixed coarse colour template plus noise, so a model can learn it in a few steps and
bit errors visibly hurt it: enough to test the pipeline's behaviour, not the paper's numbers.
"""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

torch.set_num_threads(min(2, torch.get_num_threads()))


def learnable_images(n: int, classes: int = 10, size: int = 32, signal: float = 0.5, seed: int = 0):
    """(uint8 N×size×size×3 images, int labels): class template (4×4 colour blocks) + Gaussian noise."""
    rng = np.random.default_rng(1234)                        # templates are the same for every split
    templates = rng.uniform(-1, 1, size=(classes, 4, 4, 3)).repeat(size // 4, 1).repeat(size // 4, 2)
    rng = np.random.default_rng(seed)
    y = np.arange(n) % classes
    x = signal * templates[y] + (1 - signal) * rng.standard_normal((n, size, size, 3))
    return (np.clip(x, -1, 1) * 127.5 + 127.5).astype(np.uint8), y.tolist()


def write_cifar10(root: Path, n_train: int = 200, n_test: int = 100) -> Path:
    """Write root/cifar-10-batches-py/{data_batch_1..5,test_batch,batches.meta} like the real release."""
    folder = Path(root) / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    x, y = learnable_images(n_train, seed=1)
    chunks = np.array_split(np.arange(n_train), 5)
    files = [(f"data_batch_{i + 1}", idx) for i, idx in enumerate(chunks)]
    xt, yt = learnable_images(n_test, seed=2)
    for name, xs, ys in [(f, x[idx], [y[i] for i in idx]) for f, idx in files] + [("test_batch", xt, yt)]:
        data = xs.transpose(0, 3, 1, 2).reshape(len(xs), 3072)      # CIFAR rows: R plane, G, B
        with open(folder / name, "wb") as fh:
            pickle.dump({b"data": data, b"labels": list(ys)}, fh)
    with open(folder / "batches.meta", "wb") as fh:
        pickle.dump({b"label_names": [f"class{i}".encode() for i in range(10)]}, fh)
    return Path(root)


@pytest.fixture(scope="session")
def cifar_root(tmp_path_factory) -> Path:
    return write_cifar10(tmp_path_factory.mktemp("data"))


class divisors:
    """`with divisors() as rec:` records in rec.divisors the divisor of every aten.div (div_) the block runs
    (on the meta device: which operands a division gets, e.g. a CPU scalar or a device tensor)."""

    def __enter__(self):
        from torch.utils._python_dispatch import TorchDispatchMode
        seen = self.divisors = []

        class Mode(TorchDispatchMode):
            def __torch_dispatch__(self, func, types, args=(), kwargs=None):
                if func.overloadpacket in (torch.ops.aten.div, torch.ops.aten.div_):
                    seen.append(args[1])
                return func(*args, **(kwargs or {}))
        self.mode = Mode()
        self.mode.__enter__()
        return self

    def __exit__(self, *exc):
        self.mode.__exit__(*exc)


"""CIFAR-10 from torchvision's layout: ROOT/cifar-10-batches-py/{data_batch_1..5,test_batch}.

Each batch file is the original Python pickle: a dict with b"data" (N, 3072) uint8, each row the
red, green and blue 32x32 planes in turn, and b"labels" (N ints in 0-9). Any number of images
per file loads, so a hand-made or subsampled CIFAR-10 directory works like the real one.
`--download` fetches the real files with torchvision, which verifies their checksums.

A pickle can name any importable callable and have the reader call it, so the files are read by
an unpickler that admits only what a batch holds (dicts, lists, strings, bytes, numbers and
numpy arrays) and refuses any other global: a planted `data_batch_1` cannot run code.

Images stay uint8 (N, 3, 32, 32) in memory and are normalised per batch with the usual
per-channel CIFAR-10 mean and std. The `augment` setting adds a random 32x32 crop of the
4-padded image and a horizontal flip to training batches.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch

from biobench.data.augment import random_crop_flip
from biobench.data.base import DataOptions, Dataset, TensorSplit, download_with, normalisation
from biobench.errors import DataError
from biobench.files import open_user_file
from biobench.registry import DATASETS
from biobench.spec.params import HParam

FOLDER = "cifar-10-batches-py"
FILES = {
    "train": tuple(f"data_batch_{i}" for i in range(1, 6)),
    "test": ("test_batch",),
}
SIDE = 32
MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2470, 0.2435, 0.2616)
_FIX = "delete it and rerun with --download, or restore the original file"


# Every global a batch file may name: numpy's array and scalar reconstructors (numpy.core in
# 1.x and in the original files, numpy._core in 2.x; _frombuffer for pickle protocol 5) and
# _codecs.encode, which Python 3's protocol 2 uses to spell bytes.
_ALLOWED_GLOBALS = frozenset(
    {
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),
        *(
            (f"numpy.{core}.{module}", name)
            for core in ("core", "_core")
            for module, name in (
                ("multiarray", "_reconstruct"),
                ("multiarray", "scalar"),
                ("numeric", "_frombuffer"),
            )
        ),
    }
)


class _Refused(pickle.UnpicklingError):
    """The file names a global no batch holds: code, not data."""


class _BatchUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ALLOWED_GLOBALS:
            raise _Refused(f"{module}.{name}")
        return super().find_class(module, name)


def batches_dir(root: Path) -> Path:
    return root / FOLDER


def _entry(batch: dict[Any, Any], key: str) -> Any:
    """A batch dict's value under a bytes key (the original files) or a str key (re-pickled)."""
    if key.encode() in batch:
        return batch[key.encode()]
    return batch.get(key)


def read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 3, 32, 32) uint8 and labels (N,) int64 of one pickled batch file, validated."""
    if path.is_dir():
        raise DataError(f"CIFAR-10 file {path} is a folder, not a file; {_FIX}")
    with open_user_file(path, fix=_FIX, what="CIFAR-10 file") as f:
        size = os.fstat(f.fileno()).st_size
        try:
            batch = _BatchUnpickler(f, encoding="bytes").load()
        except _Refused as refused:
            raise DataError(
                f"CIFAR-10 file {path} is not a batch file: it asks to call {refused}, which "
                f"biobench refuses to run; {_FIX}"
            ) from None
        except Exception as error:  # a damaged pickle fails in many ways; all mean the same
            raise DataError(f"CIFAR-10 file {path} is unreadable ({error!r}); {_FIX}") from None
    if not isinstance(batch, dict):
        raise DataError(
            f"CIFAR-10 file {path} holds a {type(batch).__name__}, not a batch dict; {_FIX}"
        )
    data, labels = _entry(batch, "data"), _entry(batch, "labels")
    if data is None or labels is None:
        raise DataError(f"CIFAR-10 file {path} has no 'data' or no 'labels' entry; {_FIX}")
    _check_shared(path, [data, labels], size)
    data = np.asarray(data)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * SIDE * SIDE:
        raise DataError(
            f"CIFAR-10 file {path} holds {data.dtype} data of shape {data.shape}, expected "
            f"uint8 (N, {3 * SIDE * SIDE}); {_FIX}"
        )
    labels = np.asarray(labels)
    integers = np.issubdtype(labels.dtype, np.integer) or not labels.size  # [] reads as float
    if labels.ndim != 1 or len(labels) != len(data) or not integers:
        raise DataError(
            f"CIFAR-10 file {path} has {len(data)} images but labels of shape {labels.shape} "
            f"({labels.dtype}); {_FIX}"
        )
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise DataError(
            f"CIFAR-10 labels in {path} span {labels.min()}..{labels.max()}, expected 0-9; {_FIX}"
        )
    return data.reshape(-1, 3, SIDE, SIDE), labels.astype(np.int64)


def _check_shared(path: Path, values: list[Any], size: int) -> None:
    """Refuse lists that hold more items than the file has bytes. A pickle stores a list once
    and refers to it again in two bytes, so nested lists that share their members can stand
    for more numbers than memory holds (numpy would try to build all of them); a real batch
    spends at least a byte on each. Walked with a budget, so the walk itself stays short."""
    left, pending = size, list(values)
    while pending:
        value = pending.pop()
        if isinstance(value, list | tuple):
            left -= len(value)
            if left < 0:
                raise DataError(
                    f"CIFAR-10 file {path} holds lists of more items than its {size} bytes "
                    f"can store (lists that repeat each other); {_FIX}"
                )
            pending.extend(item for item in value if isinstance(item, list | tuple | dict))
        elif isinstance(value, dict):
            pending.extend(value.values())


def _missing(root: Path) -> list[Path]:
    folder = batches_dir(root)
    return [
        folder / name for names in FILES.values() for name in names if not (folder / name).exists()
    ]


def _split(root: Path, split: str, augment: bool) -> TensorSplit:
    paths = [batches_dir(root) / name for name in FILES[split]]
    parts = [read_batch(path) for path in paths]
    if not sum(len(labels) for _, labels in parts):  # would only fail once the run is under way
        if len(paths) == 1:
            raise DataError(f"CIFAR-10 file {paths[0]} holds no images; {_FIX}")
        raise DataError(
            f"CIFAR-10 files {paths[0].name} to {paths[-1].name} in {batches_dir(root)} hold no "
            "images; delete them and rerun with --download, or restore the original files"
        )
    x = torch.from_numpy(np.concatenate([images for images, _ in parts]))
    y = torch.from_numpy(np.concatenate([labels for _, labels in parts]))
    scale, shift = normalisation(MEAN, STD)
    return TensorSplit(x, y, scale, shift, augment=random_crop_flip if augment else None)


AUGMENT = HParam(
    bool, "random crop of the 4-padded image + horizontal flip, training set only", default=False
)


@DATASETS.register(
    "cifar10",
    label="CIFAR-10",
    input_shape=(3, 32, 32),
    num_classes=10,
    settings={"augment": AUGMENT},
    order=20,
    train_size=50_000,
)
def load_cifar10(options: DataOptions) -> Dataset:
    missing = _missing(options.root)
    if missing and options.download:
        from torchvision.datasets import CIFAR10

        download_with(
            CIFAR10,
            options.root,
            "CIFAR-10",
            "without internet, unpack cifar-10-python.tar.gz from "
            f"https://www.cs.toronto.edu/~kriz/cifar.html into {options.root} by hand",
        )
        missing = _missing(options.root)
    if missing:
        raise DataError(
            f"CIFAR-10 not found: expected {missing[0]}"
            + (f" and {len(missing) - 1} more file(s)" if len(missing) > 1 else "")
            + f"; pass --data-dir DIR with DIR/{FOLDER} holding them, or add --download"
        )
    augment = bool(options.settings.get("augment", False))
    return Dataset(
        name="cifar10",
        train=_split(options.root, "train", augment),
        test=_split(options.root, "test", augment=False),
        num_classes=10,
        source=str(batches_dir(options.root)),
    )

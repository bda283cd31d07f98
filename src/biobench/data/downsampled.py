"""Downsampled ImageNet (Chrabaszcz, Loshchilov & Hutter 2017) in its published npz batches.

    ROOT/imagenet32/train_data_batch_1.npz ... train_data_batch_10.npz   the training set
    ROOT/imagenet32/val_data.npz                                         the validation set
    ROOT/imagenet64/ likewise, with 64x64 images

Each npz holds "data" (N, 3*S*S) uint8, every row the red, then green, then blue SxS plane of
one image, and "labels" (N,) in 1..1000 (stored 1-based; loaded 0-based). The train batches also
carry the dataset's "mean" image, which biobench does not use: images are normalised with the
ImageNet per-channel mean and std, like the full-size set. The files may sit directly in the
folder or one level down, in the folders the published zips unpack to; any number of train
batches (at least one) and of images loads. The validation set is the test set.

The labels follow the downsampled set's own class order, not the sorted wnids the full-size
`imagenet` loader uses, so class k names different classes in the two.

The whole set is held in memory as uint8 (3.9 GB at 32x32, 15.7 GB at 64x64). Array headers are
read first, so every batch file is decoded once, straight into one preallocated tensor, and
loading never needs twice that memory.
"""

from __future__ import annotations

import math
import re
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import torch

from biobench.data.augment import random_crop_flip
from biobench.data.base import DataOptions, Dataset, TensorSplit, normalisation
from biobench.data.imagenet import MEAN, STD
from biobench.errors import DataError
from biobench.registry import DATASETS
from biobench.spec.params import HParam

NUM_CLASSES = 1000
TRAIN_FILE = re.compile(r"train_data_batch_(\d+)\.npz")
VAL_FILE = "val_data.npz"
_FIX = "download it again from image-net.org"
# What numpy, zipfile and zlib raise for a truncated or corrupt npz.
_DAMAGE = (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile, zlib.error)
_DEFLATE_RATIO = 1032  # the most deflate inflates one byte to (zlib's technical details)
_HEADER_READERS = {
    (1, 0): np.lib.format.read_array_header_1_0,
    (2, 0): np.lib.format.read_array_header_2_0,
}


def downsampled_dir(root: Path, side: int) -> Path:
    return root / f"imagenet{side}"


def _train_files(folder: Path) -> list[Path]:
    """train_data_batch_<k>.npz in `folder` or one folder below, in batch order."""
    numbered: dict[int, Path] = {}
    for path in [*folder.glob("train_data_batch_*.npz"), *folder.glob("*/train_data_batch_*.npz")]:
        hit = TRAIN_FILE.fullmatch(path.name)
        if not hit:
            continue
        number = int(hit.group(1))
        if number in numbered:
            raise DataError(
                f"downsampled ImageNet batch {number} is there twice: {numbered[number]} and "
                f"{path}; keep one of them"
            )
        numbered[number] = path
    return [numbered[number] for number in sorted(numbered)]


def _val_file(folder: Path) -> Path | None:
    found = [*folder.glob(VAL_FILE), *folder.glob(f"*/{VAL_FILE}")]
    if len(found) > 1:
        raise DataError(
            f"downsampled ImageNet has {len(found)} validation files ({found[0]}, {found[1]}); "
            "keep one of them"
        )
    return found[0] if found else None


def _damaged(path: Path, error: Exception) -> DataError:
    return DataError(f"downsampled ImageNet file {path} is unreadable ({error!r}); {_FIX}")


def _count(path: Path, side: int) -> int:
    """The number of images in one npz, from its "data" header alone, checking the row size."""
    columns = 3 * side * side
    if path.is_dir():
        raise DataError(f"downsampled ImageNet file {path} is a folder, not a file; {_FIX}")
    try:
        with zipfile.ZipFile(path) as archive:
            shape, dtype = _header(path, archive, "data.npy")
            _header(path, archive, "labels.npy")  # checked here, read by _read
    except _DAMAGE as error:
        raise _damaged(path, error) from None
    if dtype != np.uint8 or len(shape) != 2 or shape[1] != columns:
        raise DataError(
            f"downsampled ImageNet file {path} holds {dtype} data of shape {shape}, expected "
            f"uint8 (N, {columns}) for {side}x{side} images; check it is the "
            f"imagenet{side} file, or {_FIX}"
        )
    return shape[0]


def _header(path: Path, archive: zipfile.ZipFile, name: str) -> tuple[tuple[int, ...], Any]:
    """The shape and dtype of array `name` of the npz, from its header, once the bytes the
    header promises are known to be what the archive holds: numpy allocates an array as its
    header says before reading it, and the data is loaded into tensors sized by it."""
    info = archive.getinfo(name)
    with archive.open(info) as stored:
        shape, _, dtype = _HEADER_READERS[np.lib.format.read_magic(stored)](stored)
        promised = stored.tell() + math.prod(shape) * dtype.itemsize
    if dtype.hasobject:  # a pickle, of no fixed size: np.load refuses it (allow_pickle=False)
        return shape, dtype
    size = path.stat().st_size
    # What the archive can hold: its stored bytes, or what deflate can make of them.
    most = size if info.compress_type == zipfile.ZIP_STORED else _DEFLATE_RATIO * size
    if promised > most or promised != info.file_size:
        held = f"can hold at most {most}" if promised > most else f"holds {info.file_size}"
        raise DataError(
            f"downsampled ImageNet file {path} is corrupt: the header of {name} promises "
            f"{promised} bytes, the archive {held}; {_FIX}"
        )
    return shape, dtype


def _read(path: Path, rows: int) -> tuple[np.ndarray, np.ndarray]:
    """The data and 0-based labels of one npz, whose header promised `rows` images."""
    try:
        with np.load(path, allow_pickle=False) as batch:
            data, labels = batch["data"], batch["labels"]
    except _DAMAGE as error:
        raise _damaged(path, error) from None
    integers = np.issubdtype(labels.dtype, np.integer) or not labels.size  # [] reads as float
    if labels.shape != (rows,) or not integers:
        raise DataError(
            f"downsampled ImageNet file {path} has {rows} images but labels of shape "
            f"{labels.shape} ({labels.dtype}); {_FIX}"
        )
    if rows and (labels.min() < 1 or labels.max() > NUM_CLASSES):
        raise DataError(
            f"downsampled ImageNet labels in {path} span {labels.min()}..{labels.max()}, "
            f"expected 1..{NUM_CLASSES}; {_FIX}"
        )
    return data, labels.astype(np.int64) - 1


def _split(paths: list[Path], side: int, augment: bool) -> TensorSplit:
    counts = [_count(path, side) for path in paths]
    if not sum(counts):  # would only fail once the run is under way
        if len(paths) == 1:
            raise DataError(f"downsampled ImageNet file {paths[0]} holds no images; {_FIX}")
        raise DataError(
            f"downsampled ImageNet training batches {paths[0]} to {paths[-1].name} hold no "
            "images; download them again from image-net.org"
        )
    x = torch.empty((sum(counts), 3, side, side), dtype=torch.uint8)
    y = torch.empty(sum(counts), dtype=torch.int64)
    start = 0
    for path, rows in zip(paths, counts, strict=True):
        data, labels = _read(path, rows)
        x[start : start + rows] = torch.from_numpy(data).view(rows, 3, side, side)
        y[start : start + rows] = torch.from_numpy(labels)
        start += rows
    scale, shift = normalisation(MEAN, STD)
    return TensorSplit(x, y, scale, shift, augment=random_crop_flip if augment else None)


def _load(options: DataOptions, side: int) -> Dataset:
    folder = downsampled_dir(options.root, side)
    train, val = _train_files(folder), _val_file(folder)
    if not train or val is None:
        expected = folder / ("train_data_batch_1.npz" if not train else VAL_FILE)
        how = (
            "it cannot be downloaded for you (image-net.org needs a login): download"
            if options.download
            else "download"
        )
        raise DataError(
            f"downsampled ImageNet {side}x{side} not found: expected {expected}; {how} "
            f'"Downsampled ImageNet {side}x{side}" in npz format (train and val) from '
            f"https://image-net.org and unzip it into {folder}, or pass --data-dir DIR with "
            f"DIR/imagenet{side} holding it"
        )
    return Dataset(
        name=f"imagenet{side}",
        train=_split(train, side, bool(options.settings.get("augment", False))),
        test=_split([val], side, augment=False),
        num_classes=NUM_CLASSES,
        source=str(folder),
    )


AUGMENT = HParam(
    bool, "random crop of the 4-padded image + horizontal flip, training set only", default=False
)
# biobench choices: the paper runs neither; 40 epochs of batch 256.
RUN = {"num_classes": 1000, "settings": {"augment": AUGMENT}, "epochs": 40, "batch_size": 256}
RUN["train_size"] = 1_281_167  # ILSVRC-2012's training images, downsampled


@DATASETS.register("imagenet32", label="ImageNet 32x32", input_shape=(3, 32, 32), order=40, **RUN)
def load_imagenet32(options: DataOptions) -> Dataset:
    return _load(options, 32)


@DATASETS.register("imagenet64", label="ImageNet 64x64", input_shape=(3, 64, 64), order=50, **RUN)
def load_imagenet64(options: DataOptions) -> Dataset:
    return _load(options, 64)

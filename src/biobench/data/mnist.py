"""MNIST from torchvision's on-disk layout: ROOT/MNIST/raw/{train,t10k}-{images,labels}-idx*-ubyte.

The IDX files are parsed directly (any number of images, any image size), so a hand-made or
subsampled MNIST-format directory loads the same way as the real one. `--download` fetches the
real files with torchvision, which also verifies their checksums.
"""

from __future__ import annotations

import gzip
import math
import os
import struct
import zlib
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch

from biobench.data.base import DataOptions, Dataset, TensorSplit, download_with
from biobench.errors import DataError
from biobench.files import open_user_file, read_at_most
from biobench.registry import DATASETS

_IMAGES_MAGIC, _LABELS_MAGIC = 2051, 2049
FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_FIX = "delete it and rerun with --download, or restore the original file"
_DEFLATE_RATIO = 1032  # the most deflate inflates one byte to (zlib's technical details)


def raw_dir(root: Path) -> Path:
    return root / "MNIST" / "raw"


def _source(path: Path) -> tuple[Path, bool]:
    """The file to read (`path`, or `path.gz` when only the compressed file is there) and
    whether it is compressed: errors name the file actually read, not the one it stands in
    for."""
    compressed = not path.exists()
    source = path.with_name(path.name + ".gz") if compressed else path
    if source.is_dir():
        raise DataError(f"MNIST file {source} is a folder, not a file; {_FIX}")
    return source, compressed


def read_idx(path: Path, magic: int, ndim: int) -> tuple[Path, np.ndarray]:
    """Parse one IDX file of unsigned bytes, checking its header against its length before
    reading the rest; returns the file read (see `_source`) with the array. A .gz is inflated
    only up to the size its header promises: one that inflates further is corrupt, and its
    excess is never held."""
    source, compressed = _source(path)
    header = 4 + 4 * ndim
    try:
        with open_user_file(source, fix=_FIX, what="MNIST file") as raw:
            stored = os.fstat(raw.fileno()).st_size
            handle: BinaryIO = gzip.GzipFile(fileobj=raw) if compressed else raw
            head = read_at_most(handle, header)
            if len(head) < header:
                raise DataError(f"MNIST file {source} is truncated ({len(head)} bytes); {_FIX}")
            found_magic, *dims = struct.unpack(f">{1 + ndim}I", head)
            if found_magic != magic:
                raise DataError(
                    f"MNIST file {source} is not the expected IDX file "
                    f"(magic {found_magic}, expected {magic}); {_FIX}"
                )
            expected = header + math.prod(dims)  # exact: np.prod would wrap for huge headers
            # What the file can hold: its own size, or what deflate can make of a .gz's bytes.
            most = _DEFLATE_RATIO * stored if compressed else stored
            if expected > most or (not compressed and expected != stored):
                held = f"a {stored}-byte .gz inflates to at most {most}" if compressed else ""
                raise DataError(
                    f"MNIST file {source} is corrupt: its header promises {expected} bytes, "
                    f"{held or f'it has {stored}'}; {_FIX}"
                )
            body = read_at_most(handle, expected - header + 1)  # one more: is there excess?
    except (OSError, EOFError, zlib.error) as error:  # zlib.error: a damaged deflate stream
        reason = error.strerror if isinstance(error, OSError) and error.strerror else error
        raise DataError(f"MNIST file {source} is unreadable ({reason}); {_FIX}") from None
    if header + len(body) != expected:
        found = "more" if header + len(body) > expected else header + len(body)
        raise DataError(
            f"MNIST file {source} is corrupt: its header promises {expected} bytes, "
            f"it {'inflates to' if compressed else 'has'} {found}; {_FIX}"
        )
    return source, np.frombuffer(body, dtype=np.uint8).reshape(dims)


def _missing(root: Path) -> list[Path]:
    folder = raw_dir(root)
    return [
        folder / name
        for pair in FILES.values()
        for name in pair
        if not (folder / name).exists() and not (folder / f"{name}.gz").exists()
    ]


def _split(root: Path, split: str) -> tuple[Path, TensorSplit]:
    """One split's images file (as read) and its images and labels, checked to match."""
    images_name, labels_name = FILES[split]
    images_file, images = read_idx(raw_dir(root) / images_name, _IMAGES_MAGIC, 3)
    labels_file, labels = read_idx(raw_dir(root) / labels_name, _LABELS_MAGIC, 1)
    if len(images) != len(labels):
        raise DataError(
            f"MNIST {split} split has {len(images)} images but {len(labels)} labels in "
            f"{raw_dir(root)}; the files do not belong together"
        )
    # An empty split or 0-pixel images would only fail once the run is under way.
    if not images.size:
        height, width = images.shape[1:]
        what = f"images of {height}x{width} pixels" if len(images) else "no images"
        raise DataError(f"MNIST file {images_file} holds {what}; {_FIX}")
    if labels.max() > 9:
        raise DataError(f"MNIST labels in {labels_file} go up to {labels.max()}, expected 0-9")
    x = torch.from_numpy(images.copy()).unsqueeze(1)  # (N, 1, H, W) uint8
    return images_file, TensorSplit(x, torch.from_numpy(labels.astype(np.int64)), scale=1 / 255)


def _size(split: TensorSplit) -> str:
    return "x".join(map(str, split.sample_shape[1:]))


@DATASETS.register(
    "mnist", label="MNIST", input_shape=(1, 28, 28), num_classes=10, order=10, train_size=60_000
)
def load_mnist(options: DataOptions) -> Dataset:
    missing = _missing(options.root)
    if missing and options.download:
        from torchvision.datasets import MNIST

        download_with(
            MNIST,
            options.root,
            "MNIST",
            f"without internet, copy the four *-ubyte files into {raw_dir(options.root)} by hand",
        )
        missing = _missing(options.root)
    if missing:
        raise DataError(
            f"MNIST not found: expected {missing[0]}"
            + (f" and {len(missing) - 1} more file(s)" if len(missing) > 1 else "")
            + "; pass --data-dir DIR with DIR/MNIST/raw holding them, or add --download"
        )
    train_file, train = _split(options.root, "train")
    test_file, test = _split(options.root, "test")
    if test.sample_shape != train.sample_shape:
        raise DataError(
            f"MNIST test images in {test_file} are {_size(test)} but the training images in "
            f"{train_file} are {_size(train)}; the files do not belong together: restore the "
            "original files or rerun with --download"
        )
    return Dataset(
        name="mnist",
        train=train,
        test=test,
        num_classes=10,
        source=str(raw_dir(options.root)),
    )

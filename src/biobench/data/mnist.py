"""MNIST from torchvision's on-disk layout: ROOT/MNIST/raw/{train,t10k}-{images,labels}-idx*-ubyte.

The IDX files are parsed directly (any number of images, any image size), so a hand-made or
subsampled MNIST-format directory loads the same way as the real one. `--download` fetches the
real files with torchvision, which also verifies their checksums.
"""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import torch

from biobench.data.base import DataOptions, Dataset, TensorSplit, download_with
from biobench.errors import DataError
from biobench.registry import DATASETS

_IMAGES_MAGIC, _LABELS_MAGIC = 2051, 2049
FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def raw_dir(root: Path) -> Path:
    return root / "MNIST" / "raw"


def _read(path: Path) -> bytes:
    """The bytes of `path`, or of `path.gz` when only the compressed file is there."""
    if path.exists():
        return path.read_bytes()
    gz = path.with_name(path.name + ".gz")
    try:
        return gzip.decompress(gz.read_bytes())
    except (OSError, EOFError) as error:
        raise DataError(
            f"MNIST file {gz} is unreadable ({error}); delete it and rerun with --download"
        ) from None


def read_idx(path: Path, magic: int, ndim: int) -> np.ndarray:
    """Parse one IDX file of unsigned bytes, checking its header against its length."""
    data = _read(path)
    header = 4 + 4 * ndim
    fix = "delete it and rerun with --download, or restore the original file"
    if len(data) < header:
        raise DataError(f"MNIST file {path} is truncated ({len(data)} bytes); {fix}")
    found_magic, *dims = struct.unpack(f">{1 + ndim}I", data[:header])
    if found_magic != magic:
        raise DataError(
            f"MNIST file {path} is not the expected IDX file "
            f"(magic {found_magic}, expected {magic}); {fix}"
        )
    expected = header + int(np.prod(dims))
    if len(data) != expected:
        raise DataError(
            f"MNIST file {path} is corrupt: its header promises {expected} bytes, "
            f"it has {len(data)}; {fix}"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


def _missing(root: Path) -> list[Path]:
    folder = raw_dir(root)
    return [
        folder / name
        for pair in FILES.values()
        for name in pair
        if not (folder / name).exists() and not (folder / f"{name}.gz").exists()
    ]


def _split(root: Path, split: str) -> TensorSplit:
    images_name, labels_name = FILES[split]
    images = read_idx(raw_dir(root) / images_name, _IMAGES_MAGIC, 3)
    labels = read_idx(raw_dir(root) / labels_name, _LABELS_MAGIC, 1)
    if len(images) != len(labels):
        raise DataError(
            f"MNIST {split} split has {len(images)} images but {len(labels)} labels in "
            f"{raw_dir(root)}; the files do not belong together"
        )
    if labels.size and labels.max() > 9:
        raise DataError(
            f"MNIST labels in {raw_dir(root) / labels_name} go up to {labels.max()}, expected 0-9"
        )
    x = torch.from_numpy(images.copy()).unsqueeze(1)  # (N, 1, H, W) uint8
    return TensorSplit(x, torch.from_numpy(labels.astype(np.int64)), scale=1 / 255)


@DATASETS.register("mnist", label="MNIST", input_shape=(1, 28, 28), num_classes=10, order=10)
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
    return Dataset(
        name="mnist",
        train=_split(options.root, "train"),
        test=_split(options.root, "test"),
        num_classes=10,
        source=str(raw_dir(options.root)),
    )

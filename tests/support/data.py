"""Datasets written small in their real on-disk formats."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np


def write_idx(path: Path, array: np.ndarray, magic: int) -> None:
    """An IDX file of unsigned bytes, as in the real MNIST distribution."""
    path.parent.mkdir(parents=True, exist_ok=True)
    header = struct.pack(f">{1 + array.ndim}I", magic, *array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def make_mnist(root: Path, n_train: int = 300, n_test: int = 100, size: int = 28) -> Path:
    """A small MNIST in torchvision's raw layout: class-dependent stroke patterns plus noise."""
    rng = np.random.default_rng(0)
    prototypes = rng.integers(0, 256, size=(10, size, size))

    def split(n: int) -> tuple[np.ndarray, np.ndarray]:
        labels = np.arange(n) % 10
        noise = rng.integers(-60, 60, size=(n, size, size))
        return np.clip(prototypes[labels] + noise, 0, 255), labels

    raw = root / "MNIST" / "raw"
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images, labels = split(n)
        write_idx(raw / f"{prefix}-images-idx3-ubyte", images, 2051)
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", labels, 2049)
    return root

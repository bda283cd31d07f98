"""Datasets. Each module registers a loader `load(DataOptions) -> Dataset` in DATASETS."""

from __future__ import annotations

from biobench.data import cifar10, digits, downsampled, imagenet, mnist
from biobench.data.base import DataOptions, Dataset, TensorSplit
from biobench.registry import DATASETS


def load_dataset(name: str, options: DataOptions) -> Dataset:
    return DATASETS.get(name)(options)


__all__ = [
    "DATASETS",
    "DataOptions",
    "Dataset",
    "TensorSplit",
    "cifar10",
    "digits",
    "downsampled",
    "imagenet",
    "load_dataset",
    "mnist",
]

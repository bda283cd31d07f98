"""Offline datasets that need no download.

- `digits`: scikit-learn's 1,797 real 8x8 handwritten digits (UCI optdigits), which ship inside
  the scikit-learn package. A fixed, stratified split: 1,437 train / 360 test.
- `synthetic`: deterministic Gaussian class clusters in 1x8x8 images, 10 classes, for tests.
"""

from __future__ import annotations

import numpy as np
import torch

from biobench.data.base import DataOptions, Dataset, TensorSplit
from biobench.registry import DATASETS

DIGITS_TEST = 360
SYNTHETIC_SEED = 20181807  # fixed: the synthetic data never depends on the run's seed


# 1,437 training images: small batches, fewer epochs (biobench choices).
@DATASETS.register(
    "digits",
    input_shape=(1, 8, 8),
    num_classes=10,
    epochs=30,
    batch_size=32,
    order=60,
    train_size=1437,
)
def load_digits(options: DataOptions) -> Dataset:
    from sklearn.datasets import load_digits as sklearn_digits

    bunch = sklearn_digits()
    images = bunch.images.astype(np.uint8)  # (1797, 8, 8), values 0..16
    labels = bunch.target.astype(np.int64)
    # Stratified split by a fixed permutation: every 5th sample of each class goes to test.
    rng = np.random.default_rng(0)
    test_mask = np.zeros(len(labels), dtype=bool)
    for label in range(10):
        members = rng.permutation(np.flatnonzero(labels == label))
        test_mask[members[: DIGITS_TEST // 10]] = True
    x = torch.from_numpy(images).unsqueeze(1)
    y = torch.from_numpy(labels)
    mask = torch.from_numpy(test_mask)
    return Dataset(
        name="digits",
        train=TensorSplit(x[~mask], y[~mask], scale=1 / 16),
        test=TensorSplit(x[mask], y[mask], scale=1 / 16),
        num_classes=10,
        source="sklearn.datasets.load_digits",
    )


@DATASETS.register(
    "synthetic",
    input_shape=(1, 8, 8),
    num_classes=10,
    epochs=10,
    batch_size=32,
    order=70,
    train_size=1000,
)
def load_synthetic(options: DataOptions, n_train: int = 1000, n_test: int = 500) -> Dataset:
    generator = torch.Generator().manual_seed(SYNTHETIC_SEED)
    prototypes = torch.randn(10, 1, 8, 8, generator=generator)

    def sample(n: int) -> TensorSplit:
        y = torch.arange(n) % 10
        x = prototypes[y] + 3.0 * torch.randn(n, 1, 8, 8, generator=generator)
        return TensorSplit(x, y)

    return Dataset(
        name="synthetic",
        train=sample(n_train),
        test=sample(n_test),
        num_classes=10,
        source=f"synthetic(seed={SYNTHETIC_SEED})",
    )

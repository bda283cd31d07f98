"""A dataset of one's own: two Gaussian blobs per class in 1x6x6 images, made on the fly."""

from __future__ import annotations

import torch

from biobench import DATASETS, DataOptions, Dataset, TensorSplit


@DATASETS.register("blobs", input_shape=(1, 6, 6), num_classes=4, epochs=2, batch_size=16)
def load_blobs(options: DataOptions) -> Dataset:
    """Four classes of noisy 6x6 prototypes (a plugin's dataset)."""
    generator = torch.Generator().manual_seed(7)
    prototypes = torch.randn(4, 1, 6, 6, generator=generator)

    def split(n: int) -> TensorSplit:
        y = torch.arange(n) % 4
        return TensorSplit(prototypes[y] + 0.5 * torch.randn(n, 1, 6, 6, generator=generator), y)

    return Dataset("blobs", split(256), split(128), num_classes=4, source="my_plugin.data")

"""What every dataset module returns: a `Dataset` bundle of in-memory train/test splits.

Small datasets (MNIST, CIFAR-10, the offline ones) are held whole in memory as uint8 or float
tensors, moved to the training device once, and batched by indexing there: no DataLoader
workers, no per-batch host-to-device copies.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch import Tensor


class TensorSplit:
    """Images (N, C, H, W) and integer labels (N,), batched in a fixed or seeded order.

    `x` may be stored compactly (uint8); batches come out as float32 `x * scale`.
    """

    def __init__(self, x: Tensor, y: Tensor, scale: float = 1.0) -> None:
        if x.ndim != 4:
            raise ValueError(f"images must be (N, C, H, W), got shape {tuple(x.shape)}")
        if len(x) != len(y):
            raise ValueError(f"{len(x)} images but {len(y)} labels")
        self.x, self.y, self.scale = x, y.long(), scale

    def __len__(self) -> int:
        return len(self.y)

    def to(self, device: torch.device | str) -> TensorSplit:
        return TensorSplit(self.x.to(device), self.y.to(device), self.scale)

    def num_batches(self, batch_size: int) -> int:
        return -(-len(self) // batch_size)

    def batches(
        self, batch_size: int, generator: torch.Generator | None = None
    ) -> Iterator[tuple[Tensor, Tensor]]:
        """Yield (x, y) batches; shuffled by `generator` when one is given, else in order."""
        n = len(self)
        if generator is None:
            for start in range(0, n, batch_size):
                yield self._batch(slice(start, start + batch_size))
            return
        # The permutation is drawn on the CPU from a seeded generator, so the data order depends
        # only on the seed, not on the device.
        order = torch.randperm(n, generator=generator).to(self.y.device)
        for start in range(0, n, batch_size):
            yield self._batch(order[start : start + batch_size])

    def _batch(self, index: slice | Tensor) -> tuple[Tensor, Tensor]:
        x = self.x[index].to(torch.float32)
        if self.scale != 1.0:
            x = x.mul_(self.scale)
        return x, self.y[index]


@dataclass(frozen=True)
class Dataset:
    name: str
    train: TensorSplit
    test: TensorSplit
    num_classes: int
    source: str  # where it came from, recorded with the run

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(self.train.x.shape[1:])  # type: ignore[return-value]

    def to(self, device: torch.device | str) -> Dataset:
        return replace(self, train=self.train.to(device), test=self.test.to(device))


@dataclass(frozen=True)
class DataOptions:
    """Where datasets live on disk and whether a missing one may be downloaded."""

    root: Path
    download: bool = False

"""What every dataset module returns: a `Dataset` bundle of in-memory train/test splits.

Small datasets (MNIST, CIFAR-10, the offline ones) are held whole in memory as uint8 or float
tensors, moved to the training device once, and batched by indexing there: no DataLoader
workers, no per-batch host-to-device copies.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import Tensor

from biobench.errors import DataError

VAL_SEED = 20181203  # the validation split's permutation: one for every run (NeurIPS 2018)

# A batch transform applied on the training device to shuffled (training) batches only:
# augment(x, generator) -> x, drawing its randomness from the run's seeded CPU generator.
Augment = Callable[[Tensor, torch.Generator], Tensor]


class Split(Protocol):
    """What the training loop needs of a train or test split (in memory or streamed)."""

    def __len__(self) -> int: ...

    def num_batches(self, batch_size: int) -> int: ...

    def batches(
        self, batch_size: int, generator: torch.Generator | None = None
    ) -> Iterator[tuple[Tensor, Tensor]]: ...

    # Splits may also take `shard: Shard | None = None` in `batches` and yield this process's
    # part of each batch (biobench's do); for one that does not, the loop slices whole batches.

    def to(self, device: torch.device | str) -> Split: ...

    @property
    def device(self) -> torch.device: ...

    @property
    def sample_shape(self) -> tuple[int, ...]: ...


@dataclass(frozen=True)
class Shard:
    """Process `rank` of `world` in a data-parallel run: which part of each batch it trains on.

    A batch of n splits into near-equal, contiguous parts in rank order (the first n % world
    ranks one sample more), so the parts put together are the batch one process would train
    on. A rank left without a sample (a last batch smaller than the world) gets the batch's
    first sample so that it keeps in step with the others; its `size` is 0, and the loop gives
    its gradients no weight.
    """

    rank: int
    world: int

    def size(self, n: int) -> int:
        """How many of a batch of n samples are this rank's own."""
        return n // self.world + (self.rank < n % self.world)

    def bounds(self, n: int) -> tuple[int, int]:
        """[lo, hi) of this rank's part of a batch of n, never empty (see the class)."""
        lo = self.rank * (n // self.world) + min(self.rank, n % self.world)
        size = self.size(n)
        return (lo, lo + size) if size else (0, 1)


class TensorSplit:
    """Images (N, C, H, W) and integer labels (N,), batched in a fixed or seeded order.

    `x` may be stored compactly (uint8); batches come out as float32 `x * scale - shift`
    (each a scalar or a per-channel (C, 1, 1) tensor: normalisation), then through `augment`
    when shuffled.
    """

    def __init__(
        self,
        x: Tensor,
        y: Tensor,
        scale: Tensor | float = 1.0,
        shift: Tensor | float = 0.0,
        augment: Augment | None = None,
    ) -> None:
        if x.ndim != 4:
            raise ValueError(f"images must be (N, C, H, W), got shape {tuple(x.shape)}")
        if len(x) != len(y):
            raise ValueError(f"{len(x)} images but {len(y)} labels")
        self.x, self.y = x, y.long()
        self.scale = scale.to(x.device) if isinstance(scale, Tensor) else scale
        self.shift = shift.to(x.device) if isinstance(shift, Tensor) else shift
        self.augment = augment

    @property
    def device(self) -> torch.device:
        return self.y.device

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return tuple(self.x.shape[1:])

    def __len__(self) -> int:
        return len(self.y)

    def to(self, device: torch.device | str) -> TensorSplit:
        return TensorSplit(
            self.x.to(device), self.y.to(device), self.scale, self.shift, self.augment
        )

    def num_batches(self, batch_size: int) -> int:
        return -(-len(self) // batch_size)

    def batches(
        self, batch_size: int, generator: torch.Generator | None = None, shard: Shard | None = None
    ) -> Iterator[tuple[Tensor, Tensor]]:
        """Yield (x, y) batches; shuffled by `generator` when one is given, else in order; with
        `shard`, only this process's part of each."""
        n = len(self)
        if generator is None:
            for start in range(0, n, batch_size):
                lo, hi = shard.bounds(min(batch_size, n - start)) if shard else (0, batch_size)
                yield self._batch(slice(start + lo, start + hi))
            return
        # The permutation is drawn on the CPU from a seeded generator, so the data order depends
        # only on the seed, not on the device.
        order = torch.randperm(n, generator=generator).to(self.y.device)
        for start in range(0, n, batch_size):
            index = order[start : start + batch_size]
            lo, hi = shard.bounds(len(index)) if shard else (0, len(index))
            if self.augment is None:
                yield self._batch(index[lo:hi])
                continue
            # Augmented whole, then cut: every process draws the whole batch's crops, so the
            # generator stays in step and each sample is cropped as one process would crop it.
            x, y = self._batch(index)
            yield self.augment(x, generator)[lo:hi], y[lo:hi]

    def _batch(self, index: slice | Tensor) -> tuple[Tensor, Tensor]:
        x = self.x[index].to(torch.float32)
        if isinstance(self.scale, Tensor) or self.scale != 1.0:
            x = x.mul_(self.scale)
        if isinstance(self.shift, Tensor) or self.shift != 0.0:
            x = x.sub_(self.shift)
        return x, self.y[index]


def normalisation(
    mean: tuple[float, ...], std: tuple[float, ...]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel (scale, shift) with x * scale - shift == (x / 255 - mean) / std for uint8 x."""
    mean_t = torch.tensor(mean, dtype=torch.float32).view(-1, 1, 1)
    std_t = torch.tensor(std, dtype=torch.float32).view(-1, 1, 1)
    return 1 / (255 * std_t), mean_t / std_t


@dataclass(frozen=True)
class Dataset:
    name: str
    train: Split
    test: Split
    num_classes: int
    source: str  # where it came from, recorded with the run
    # The split train error is measured on; None means all of `train`. ImageNet measures it on
    # a fixed subset: decoding 1.28 M JPEGs every epoch just to report it would double the cost.
    train_eval: Split | None = None
    # Held out of the training set by `hold_out` (`--set val_split=N`): evaluated every epoch,
    # never trained on, what a search can select by instead of the test set.
    val: Split | None = None

    def __post_init__(self) -> None:
        # Checked as a loader returns, before the run's row is written: an empty split or test
        # images of another shape would only fail mid-run. The built-in loaders check first and
        # name the file; this catches a plugin's loader too.
        for what, split in (("training", self.train), ("test", self.test)):
            if not len(split):
                raise DataError(
                    f"dataset {self.name} ({self.source}) has no {what} images; check its files"
                )
        if self.test.sample_shape != self.train.sample_shape:
            raise DataError(
                f"dataset {self.name} ({self.source}) has test images of shape "
                f"{self.test.sample_shape} but training images of shape "
                f"{self.train.sample_shape}; check its files"
            )

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return self.train.sample_shape  # type: ignore[return-value]

    @property
    def train_eval_split(self) -> Split:
        return self.train if self.train_eval is None else self.train_eval

    def to(self, device: torch.device | str) -> Dataset:
        return replace(
            self,
            train=self.train.to(device),
            test=self.test.to(device),
            train_eval=None if self.train_eval is None else self.train_eval.to(device),
            val=None if self.val is None else self.val.to(device),
        )

    def hold_out(self, n: int) -> Dataset:
        """The same data with `n` training samples moved to a validation split: the same
        samples for every run and seed (a fixed permutation), in their original order; the
        training split keeps its augmentation, the validation split has none."""
        train = self.train
        if not isinstance(train, TensorSplit) or self.train_eval is not None:
            raise DataError(
                f"--set val_split needs a dataset held in memory; {self.name} is read from disk "
                "as it trains (hold out a folder of its images as the test set instead)"
            )
        if not 0 < n < len(train):
            raise DataError(
                f"--set val_split={n}: {self.name} has {len(train)} training images; hold out "
                f"between 1 and {len(train) - 1}"
            )
        order = torch.randperm(len(train), generator=torch.Generator().manual_seed(VAL_SEED))
        order = order.to(train.device)
        held, kept = order[:n].sort().values, order[n:].sort().values
        return replace(
            self,
            train=TensorSplit(
                train.x[kept], train.y[kept], train.scale, train.shift, train.augment
            ),
            val=TensorSplit(train.x[held], train.y[held], train.scale, train.shift),
        )


def download_with(dataset_class: Any, root: Path, name: str, by_hand: str) -> None:
    """Fetch a torchvision dataset's files (train and test) into `root`; torchvision verifies
    their checksums. Any failure becomes one line saying what to do without internet."""
    try:
        for train in (True, False):
            dataset_class(str(root), train=train, download=True)
    except Exception as error:  # network errors come in many types; all mean the same here
        # torchvision's message spans lines (one per mirror tried): joined, it reads as one
        # line, where the error line would show each break as a literal \n
        reason = " ".join(str(error).split())
        raise DataError(f"downloading {name} into {root} failed ({reason}); {by_hand}") from None


@dataclass(frozen=True)
class DataOptions:
    """Where datasets live on disk, whether a missing one may be downloaded, and the dataset's
    own settings (validated against the `settings` its loader declares, e.g. augment)."""

    root: Path
    download: bool = False
    settings: Mapping[str, Any] = field(default_factory=dict)

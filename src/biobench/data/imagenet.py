"""ImageNet (ILSVRC-2012) streamed from the standard folder layout, decoded by worker processes.

    ROOT/imagenet/train/<wnid>/*.JPEG    the training set, one folder per class
    ROOT/imagenet/val/<wnid>/*.JPEG      the validation set, sorted into the same class folders

The validation set is the test set (the paper reports ILSVRC-2012 validation error). Class k is
the k-th train wnid in sorted order (1000 classes for the real set; any number loads), and every
val folder must be one of the train classes. ImageNet cannot be downloaded automatically: it is
obtained from https://image-net.org under its terms of use.

**biobench choice** of the 224x224 input the paper uses: each image is converted to RGB
(ImageNet holds some grayscale and CMYK JPEGs), resized so its shorter side is 256 and
centre-cropped to 224x224, as in the standard ImageNet evaluation. With the `augment` setting,
training images are instead cropped at a random 224x224 position of the 256-resized image and
flipped horizontally with probability 1/2 (the ResNet-era "scale and crop" recipe rather than
Inception's random-resized-crop, whose aggressive rescaling the paper does not mention).

The set is far too large to hold in memory, so a `FolderSplit` decodes images in DataLoader
workers and ships them as uint8; normalisation with the usual ImageNet mean and std happens on
the training device. The shuffled order and every crop position and flip are drawn up front from
the run's seeded generator, so the data seen depends only on the seed, not on the number of
workers or the device.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import DataLoader

from biobench.data.base import DataOptions, Dataset, Shard, normalisation
from biobench.errors import DataError
from biobench.registry import DATASETS
from biobench.spec.params import HParam

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
RESIZE, CROP = 256, 224
TRAIN_EVAL_IMAGES = 10_000  # train error is measured on this many fixed images
EXTENSIONS = (".jpeg", ".jpg", ".png")
RESIZED_PIXELS = 256 * RESIZE**2  # 48 MiB as RGB, an aspect ratio of 256:1 at most


def imagenet_dir(root: Path) -> Path:
    return root / "imagenet"


# A sample's key: its index, where to crop (None: the centre) and whether to flip. A random crop
# position is a pair of uniform fractions of the free range, since the resized size is only
# known once the image is decoded.
Key = tuple[int, tuple[float, float] | None, bool]


@dataclass(frozen=True)
class _Unreadable:
    """Stands in for an image a worker could not decode, so the main process raises the error:
    an exception raised in a worker reaches the caller wrapped in a multi-line traceback."""

    message: str


class _Images(torch.utils.data.Dataset):
    """Decodes, resizes and crops one image per key to a uint8 (3, 224, 224) tensor.

    Paths are one fixed-width bytes array rather than a list of str: forked workers reading a
    list of 1.3 M Python objects touch their refcounts and so copy the whole list, page by page.
    """

    def __init__(self, paths: np.ndarray, labels: np.ndarray) -> None:
        self.paths, self.labels = paths, labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, key: Key) -> tuple[Tensor | _Unreadable, int]:
        index, position, flip = key
        path, label = os.fsdecode(self.paths[index]), int(self.labels[index])
        try:
            with Image.open(path) as image:
                _resized(*image.size)  # from the header: before any pixel is decoded
                pixels = _crop(image.convert("RGB"), position)
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
            return _Unreadable(
                f"ImageNet image {path} is unreadable ({error}); replace it with the original "
                "file from image-net.org or delete it"
            ), label
        if flip:
            pixels = pixels[:, ::-1]
        return torch.from_numpy(np.ascontiguousarray(pixels.transpose(2, 0, 1))), label


def _resized(width: int, height: int) -> tuple[int, int]:
    """The size an image of `width` x `height` is resized to (shorter side 256). A very wide or
    tall image (a few kB of JPEG) would resize to gigabytes: past RESIZED_PIXELS it is refused
    as a ValueError, which names the image as unreadable."""
    if width <= height:
        size = RESIZE, int(RESIZE * height / width)
    else:
        size = int(RESIZE * width / height), RESIZE
    if size[0] * size[1] > RESIZED_PIXELS:
        raise ValueError(
            f"its {width}x{height} pixels resize to {size[0]}x{size[1]}, more than the "
            f"{RESIZED_PIXELS} pixels an ImageNet image resizes to; an aspect ratio past "
            f"{RESIZED_PIXELS // RESIZE**2}:1 is not a photograph"
        )
    return size


def _crop(image: Image.Image, position: tuple[float, float] | None) -> np.ndarray:
    """Shorter side to 256, then a 224x224 crop: centred, or at (top, left) fractions of the free
    range, each giving every whole-pixel offset the same chance (as torchvision's RandomCrop).
    Sizes and centre offsets are rounded as torchvision's Resize and CenterCrop round them."""
    width, height = _resized(*image.size)
    image = image.resize((width, height), Image.Resampling.BILINEAR)
    if position is None:
        y, x = round((height - CROP) / 2), round((width - CROP) / 2)
    else:
        y = min(int(position[0] * (height - CROP + 1)), height - CROP)
        x = min(int(position[1] * (width - CROP + 1)), width - CROP)
    return np.asarray(image.crop((x, y, x + CROP, y + CROP)), dtype=np.uint8)


def _collate(items: list[tuple[Tensor | _Unreadable, int]]) -> tuple[Tensor, Tensor] | _Unreadable:
    for image, _ in items:
        if isinstance(image, _Unreadable):
            return image
    images = torch.stack([image for image, _ in items])  # type: ignore[misc]
    return images, torch.tensor([label for _, label in items], dtype=torch.int64)


class FolderSplit:
    """A Split streamed from image files: DataLoader workers decode, the device normalises."""

    def __init__(
        self,
        paths: np.ndarray,
        labels: np.ndarray,
        workers: int,
        augment: bool = False,
        device: torch.device | str = "cpu",
    ) -> None:
        self.paths, self.labels = paths, labels
        self.workers = workers
        self.augment = augment
        self._device = torch.device(device)
        scale, shift = normalisation(MEAN, STD)
        self._scale, self._shift = scale.to(self._device), shift.to(self._device)

    @property
    def device(self) -> torch.device:
        return self._device

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return (3, CROP, CROP)

    def __len__(self) -> int:
        return len(self.labels)

    def to(self, device: torch.device | str) -> FolderSplit:
        return FolderSplit(self.paths, self.labels, self.workers, self.augment, device)

    def num_batches(self, batch_size: int) -> int:
        return -(-len(self) // batch_size)

    def batches(
        self, batch_size: int, generator: torch.Generator | None = None, shard: Shard | None = None
    ) -> Iterator[tuple[Tensor, Tensor]]:
        """Yield normalised (x, y) batches; shuffled and augmented by `generator` when one is
        given, else in order with centre crops. With `shard`, only this process's part of each
        batch: its own workers decode its own files."""
        keys = self._keys(generator)
        shard = shard or Shard(0, 1)
        parts = []
        for start in range(0, len(keys), batch_size):
            lo, hi = shard.bounds(min(batch_size, len(keys) - start))
            parts.append(keys[start + lo : start + hi])
        loader = DataLoader(
            _Images(self.paths, self.labels),
            batch_sampler=parts,
            num_workers=self.workers,
            collate_fn=_collate,
            pin_memory=self._device.type == "cuda",
            # Only seeds worker RNGs, which nothing uses; a private generator keeps the
            # DataLoader from drawing from torch's global one and shifting the run's randomness.
            generator=torch.Generator().manual_seed(0),
        )
        for batch in loader:
            if isinstance(batch, _Unreadable):
                raise DataError(batch.message)
            x, y = batch
            x = x.to(self._device, non_blocking=True).to(torch.float32)
            yield x.mul_(self._scale).sub_(self._shift), y.to(self._device, non_blocking=True)

    def _keys(self, generator: torch.Generator | None) -> list[Key]:
        n = len(self)
        if generator is None:
            return [(i, None, False) for i in range(n)]
        # Drawn on the CPU from the seeded generator, up front: the order and the augmentation
        # depend only on the seed, whichever worker decodes which image.
        order = torch.randperm(n, generator=generator).tolist()
        if not self.augment:
            return [(i, None, False) for i in order]
        positions = torch.rand(n, 2, generator=generator).tolist()
        flips = (torch.rand(n, generator=generator) < 0.5).tolist()
        return [
            (i, (top, left), flip)
            for i, (top, left), flip in zip(order, positions, flips, strict=True)
        ]


def _images_in(folder: Path) -> list[str]:
    return sorted(
        entry.path
        for entry in os.scandir(folder)
        if entry.is_file() and entry.name.lower().endswith(EXTENSIONS)
    )


def _class_folders(split_dir: Path) -> list[Path]:
    try:
        return sorted(Path(entry.path) for entry in os.scandir(split_dir) if entry.is_dir())
    except OSError as error:
        raise DataError(f"ImageNet folder {split_dir} is unreadable ({error})") from None


def _scan(split_dir: Path, classes: dict[str, int]) -> tuple[np.ndarray, np.ndarray]:
    """Paths (as bytes) and class indices of the images under split_dir/<wnid>/, checked
    against `classes`."""
    folders = _class_folders(split_dir)
    if not folders:
        if _images_in(split_dir):
            raise DataError(
                f"ImageNet images lie directly in {split_dir}; sort them into one <wnid> folder "
                "per class (for the validation set, e.g. with the ILSVRC-2012 devkit labels)"
            )
        raise DataError(
            f"ImageNet folder {split_dir} has no class folders; expected "
            f"{split_dir}/<wnid>/*.JPEG (the training set's per-class .tar archives must be "
            "unpacked into folders named by wnid)"
        )
    unknown = [folder.name for folder in folders if folder.name not in classes]
    if unknown:
        raise DataError(
            f"ImageNet folder {split_dir / unknown[0]} is not one of the {len(classes)} classes "
            f"in {split_dir.parent / 'train'}"
            + (f" ({len(unknown) - 1} more like it)" if len(unknown) > 1 else "")
            + "; the val classes must be a subset of the train classes"
        )
    paths: list[bytes] = []
    labels: list[int] = []
    for folder in folders:
        images = _images_in(folder)
        if not images:
            raise DataError(
                f"ImageNet class folder {folder} holds no images (*.JPEG); "
                "the copy is incomplete: restore the folder's images or remove the folder"
            )
        paths.extend(os.fsencode(path) for path in images)
        labels.extend([classes[folder.name]] * len(images))
    return np.array(paths), np.array(labels, dtype=np.int64)


SETTINGS = {
    "augment": HParam(
        bool,
        "random 224 crop of the 256-resized image + horizontal flip, training set only",
        default=False,
    ),
    "workers": HParam(int, "DataLoader worker processes decoding JPEGs (0: in-process)", low=0),
}


# biobench choices: the paper gives neither ImageNet's batch size nor its epochs.
@DATASETS.register(
    "imagenet",
    label="ImageNet",
    input_shape=(3, 224, 224),
    num_classes=1000,
    settings=SETTINGS,
    epochs=50,
    batch_size=256,
    order=30,
    train_size=1_281_167,
)
def load_imagenet(options: DataOptions) -> Dataset:
    folder = imagenet_dir(options.root)
    train_dir, val_dir = folder / "train", folder / "val"
    for split_dir in (train_dir, val_dir):
        if split_dir.exists() and not split_dir.is_dir():
            raise DataError(
                f"ImageNet folder {split_dir} is a file, not a folder; replace it with the "
                f"{split_dir.name}/<wnid>/ folders"
            )
        if not split_dir.is_dir():
            how = (
                "downloading ImageNet is not possible: it must be obtained from "
                "https://image-net.org"
                if options.download
                else "ImageNet must be obtained from https://image-net.org (there is no "
                "--download for it)"
            )
            raise DataError(
                f"ImageNet not found: expected {split_dir}; {how}; put its train/<wnid>/ and "
                f"val/<wnid>/ folders in {folder}, or pass --data-dir DIR with DIR/imagenet "
                "holding them"
            )
    wnids = [path.name for path in _class_folders(train_dir)]
    classes = {wnid: index for index, wnid in enumerate(wnids)}
    workers = int(options.settings.get("workers", min(8, os.cpu_count() or 1)))
    augment = bool(options.settings.get("augment", False))
    paths, labels = _scan(train_dir, classes)
    # Train error is measured on a fixed subset (the same images every epoch and every run).
    subset = np.sort(np.random.default_rng(0).permutation(len(labels))[:TRAIN_EVAL_IMAGES])
    return Dataset(
        name="imagenet",
        train=FolderSplit(paths, labels, workers, augment),
        test=FolderSplit(*_scan(val_dir, classes), workers),
        num_classes=len(classes),
        source=str(folder),
        train_eval=FolderSplit(paths[subset], labels[subset], workers),
    )

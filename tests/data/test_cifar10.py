"""CIFAR-10 read from torchvision's pickled batches, written small, and the batch augmentation."""

from __future__ import annotations

import os
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from biobench.data import DataOptions, load_dataset
from biobench.data.augment import random_crop_flip
from biobench.data.cifar10 import MEAN, STD
from biobench.errors import DataError
from biobench.registry import DATASETS

TRAIN_FILES = [f"data_batch_{i}" for i in range(1, 6)]


def write_batch(path: Path, images: np.ndarray, labels: list[int], name: str) -> None:
    """One batch file as the CIFAR-10 distribution has it: a pickled dict with bytes keys."""
    batch = {
        b"batch_label": name.encode(),
        b"labels": labels,
        b"data": images.reshape(len(images), 3 * 32 * 32),
        b"filenames": [f"image_{i}.png".encode() for i in range(len(images))],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as f:
        pickle.dump(batch, f)


def make_cifar(
    root: Path, train_sizes: tuple[int, ...] = (3, 1, 4, 1, 5), n_test: int = 6
) -> Path:
    """A tiny CIFAR-10 in torchvision's layout; image i of the whole set has label i % 10."""
    rng = np.random.default_rng(0)
    folder = root / "cifar-10-batches-py"
    sizes = dict(zip(TRAIN_FILES, train_sizes, strict=True)) | {"test_batch": n_test}
    start = 0
    for name, n in sizes.items():
        images = rng.integers(0, 256, size=(n, 3, 32, 32), dtype=np.uint8)
        write_batch(folder / name, images, [(start + i) % 10 for i in range(n)], name)
        start += n
    return root


def batch_path(root: Path, name: str = "data_batch_2") -> Path:
    return root / "cifar-10-batches-py" / name


def test_cifar10_of_any_size_loads_from_torchvisions_layout(tmp_path: Path) -> None:
    data = load_dataset("cifar10", DataOptions(make_cifar(tmp_path)))
    assert (len(data.train), len(data.test), data.num_classes) == (14, 6, 10)
    assert data.input_shape == (3, 32, 32) and data.train.x.dtype == torch.uint8
    assert data.source == str(tmp_path / "cifar-10-batches-py")
    x, y = next(data.train.batches(64))
    assert x.dtype == torch.float32 and y.dtype == torch.int64 and x.shape == (14, 3, 32, 32)
    assert y.tolist() == [i % 10 for i in range(14)]
    assert next(data.test.batches(64))[1].tolist() == [i % 10 for i in range(14, 20)]


def test_pixels_are_normalised_per_channel_with_the_cifar10_statistics(tmp_path: Path) -> None:
    root = make_cifar(tmp_path)
    images = np.zeros((2, 3, 32, 32), dtype=np.uint8)
    images[1, 2, 5, 7] = 200  # blue channel, row 5, column 7 of the second image
    write_batch(batch_path(root, "data_batch_1"), images, [4, 9], "batch 0")
    x, _ = next(load_dataset("cifar10", DataOptions(root)).train.batches(2))
    assert x[1, 2, 5, 7].item() == pytest.approx((200 / 255 - 0.4465) / 0.2616, abs=1e-5)
    assert x[1, 0, 0, 0].item() == pytest.approx((0 - 0.4914) / 0.2470, abs=1e-5)
    assert x[1, 1, 5, 7].item() == pytest.approx(-MEAN[1] / STD[1], abs=1e-5)


def test_rows_hold_the_red_green_blue_planes_in_turn(tmp_path: Path) -> None:
    root = make_cifar(tmp_path)
    row = np.zeros(3072, dtype=np.uint8)
    row[1024 + 32 * 3 + 4] = 255  # green plane, row 3, column 4
    write_batch(batch_path(root, "test_batch"), row[None], [0], "test")
    test = load_dataset("cifar10", DataOptions(root)).test
    assert test.x[0].nonzero().tolist() == [[1, 3, 4]]


def test_batches_pickled_with_str_keys_load_too(tmp_path: Path) -> None:
    root = make_cifar(tmp_path)
    with batch_path(root).open("wb") as f:
        pickle.dump({"data": np.zeros((2, 3072), np.uint8), "labels": [7, 8]}, f)
    data = load_dataset("cifar10", DataOptions(root))
    assert len(data.train) == 15 and data.train.y[3:5].tolist() == [7, 8]


def test_missing_cifar10_names_the_first_expected_file_and_the_flags(tmp_path: Path) -> None:
    with pytest.raises(DataError) as caught:
        load_dataset("cifar10", DataOptions(tmp_path / "empty"))
    message = str(caught.value)
    assert str(tmp_path / "empty" / "cifar-10-batches-py" / "data_batch_1") in message
    assert "5 more" in message and "--download" in message and "--data-dir" in message


def test_one_missing_batch_is_named(tmp_path: Path) -> None:
    root = make_cifar(tmp_path)
    batch_path(root, "data_batch_4").unlink()
    with pytest.raises(DataError, match="expected .*data_batch_4;"):
        load_dataset("cifar10", DataOptions(root))


def test_a_folder_where_a_batch_belongs_is_named(tmp_path: Path) -> None:
    root = make_cifar(tmp_path)
    batch_path(root, "test_batch").unlink()
    batch_path(root, "test_batch").mkdir()
    with pytest.raises(DataError, match="test_batch is a folder, not a file; delete it"):
        load_dataset("cifar10", DataOptions(root))


@pytest.mark.parametrize(
    ("train_sizes", "n_test", "message"),
    [
        ((3, 1, 4, 1, 5), 0, "file .*test_batch holds no images; delete it"),
        ((0, 0, 0, 0, 0), 6, "files data_batch_1 to data_batch_5 in .* hold no images"),
    ],
)
def test_an_empty_split_is_refused_before_training(
    tmp_path: Path, train_sizes: tuple[int, ...], n_test: int, message: str
) -> None:
    root = make_cifar(tmp_path, train_sizes, n_test)
    with pytest.raises(DataError, match=message):
        load_dataset("cifar10", DataOptions(root))


def test_an_empty_batch_among_others_loads(tmp_path: Path) -> None:
    data = load_dataset("cifar10", DataOptions(make_cifar(tmp_path, (3, 0, 4, 1, 5))))
    assert (len(data.train), len(data.test)) == (13, 6)


def test_download_goes_through_torchvision_for_both_splits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[str, bool, bool]] = []

    def fake_cifar10(root: str, train: bool, download: bool) -> None:
        calls.append((root, train, download))
        make_cifar(Path(root))

    monkeypatch.setattr("torchvision.datasets.CIFAR10", fake_cifar10)
    data = load_dataset("cifar10", DataOptions(tmp_path, download=True))
    assert calls == [(str(tmp_path), True, True), (str(tmp_path), False, True)]
    assert len(data.train) == 14


def test_a_failed_download_is_a_data_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def offline(root: str, train: bool, download: bool) -> None:
        raise OSError("Name or service not known")

    monkeypatch.setattr("torchvision.datasets.CIFAR10", offline)
    with pytest.raises(DataError, match="downloading CIFAR-10 .* failed .*Name or service"):
        load_dataset("cifar10", DataOptions(tmp_path, download=True))


def _pickled(batch: Any) -> Callable[[bytes], bytes]:
    return lambda _: pickle.dumps(batch)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda b: b[: len(b) // 2], "unreadable"),
        (lambda b: b"not a pickle at all", "unreadable"),
        (_pickled([1, 2, 3]), "not a batch dict"),
        (_pickled({b"data": np.zeros((2, 3072), np.uint8)}), "no 'data' or no 'labels'"),
        (_pickled({b"data": np.zeros((2, 3071), np.uint8), b"labels": [0, 1]}), r"\(N, 3072\)"),
        (_pickled({b"data": np.zeros((2, 3072), np.int64), b"labels": [0, 1]}), "int64 data"),
        (_pickled({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]}), "2 images but"),
        (_pickled({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 10]}), "expected 0-9"),
        (_pickled({b"data": np.zeros((2, 3072), np.uint8), b"labels": [-1, 3]}), "expected 0-9"),
        # One row stored once, referred to 5,000 times: 15 M numbers in a 16 kB file.
        (_pickled({b"data": [[0] * 3072] * 5000, b"labels": [0]}), "lists of more items"),
        (_pickled({b"data": [[[[0] * 40] * 40] * 40] * 40, b"labels": []}), "than its 364 bytes"),
        (_pickled({b"data": np.zeros((1, 3072), np.uint8), b"labels": [[0] * 99] * 99}), "repeat"),
    ],
)
def test_corrupt_or_malformed_batches_are_named_with_the_fix(
    tmp_path: Path, damage: Callable[[bytes], bytes], message: str
) -> None:
    root = make_cifar(tmp_path)
    target = batch_path(root)
    target.write_bytes(damage(target.read_bytes()))
    with pytest.raises(DataError, match=message) as caught:
        load_dataset("cifar10", DataOptions(root))
    text = str(caught.value)
    assert str(target) in text and "--download" in text and "\n" not in text


class Planted:
    """What a hostile batch file holds: unpickling it would run a shell command."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (self.command,))


@pytest.mark.parametrize("name", [*TRAIN_FILES, "test_batch"])
@pytest.mark.parametrize("where", ["whole file", "inside the batch dict"])
def test_a_batch_file_that_would_run_code_is_refused_without_running_it(
    tmp_path: Path, name: str, where: str
) -> None:
    root = make_cifar(tmp_path)
    marker = tmp_path / "pwned"
    planted = Planted(f"touch {marker}")
    payload = planted if where == "whole file" else {b"data": planted, b"labels": [0]}
    batch_path(root, name).write_bytes(pickle.dumps(payload))
    with pytest.raises(DataError) as caught:
        load_dataset("cifar10", DataOptions(root))
    message = str(caught.value)
    assert not marker.exists()
    assert str(batch_path(root, name)) in message and "\n" not in message
    assert f"{os.system.__module__}.system" in message and "refuses to run" in message


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_batches_load_whatever_pickle_protocol_wrote_them(tmp_path: Path, protocol: int) -> None:
    # The original files are Python 2 pickles (protocol 2); re-pickled copies use any protocol,
    # and numpy spells its arrays differently in each (_reconstruct, _frombuffer, _codecs).
    root = make_cifar(tmp_path)
    images = np.arange(2 * 3072).astype(np.uint8).reshape(2, 3072)
    batch = {b"data": images, b"labels": np.array([3, 4]), b"filenames": ["a", "b"]}
    batch_path(root).write_bytes(pickle.dumps(batch, protocol=protocol))
    data = load_dataset("cifar10", DataOptions(root))
    assert data.train.y[3:5].tolist() == [3, 4]
    assert data.train.x[3:5].reshape(2, -1).numpy().tolist() == images.tolist()


def test_augment_is_a_declared_setting_for_the_training_set_only(tmp_path: Path) -> None:
    root = make_cifar(tmp_path)
    assert DATASETS.entry("cifar10").settings["augment"].parse("augment", "true") is True
    plain = load_dataset("cifar10", DataOptions(root))
    augmented = load_dataset("cifar10", DataOptions(root, settings={"augment": True}))
    assert plain.train.augment is None and plain.test.augment is None
    assert augmented.train.augment is random_crop_flip and augmented.test.augment is None


def _epoch(split: Any, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    xs, ys = zip(*split.batches(4, torch.Generator().manual_seed(seed)), strict=True)
    return torch.cat(xs), torch.cat(ys)


@pytest.mark.parametrize("augment", [False, True])
def test_a_seeded_epoch_is_reproducible(tmp_path: Path, augment: bool) -> None:
    options = DataOptions(make_cifar(tmp_path), settings={"augment": augment})
    train = load_dataset("cifar10", options).train
    (x, y), (x_again, y_again), (_, y_other) = (_epoch(train, seed) for seed in (3, 3, 4))
    assert torch.equal(x, x_again) and torch.equal(y, y_again) and not torch.equal(y, y_other)


def test_augmentation_changes_shuffled_training_batches_only(tmp_path: Path) -> None:
    root = make_cifar(tmp_path)
    plain = load_dataset("cifar10", DataOptions(root)).train
    augmented = load_dataset("cifar10", DataOptions(root, settings={"augment": True})).train
    (x_plain, y_plain), (x_aug, y_aug) = (
        next(split.batches(14, torch.Generator().manual_seed(0))) for split in (plain, augmented)
    )
    assert torch.equal(y_plain, y_aug) and x_aug.shape == x_plain.shape
    assert not torch.equal(x_plain, x_aug)
    assert torch.equal(next(plain.batches(14))[0], next(augmented.batches(14))[0])


# random_crop_flip


def _crops_of(image: torch.Tensor, padding: int) -> list[torch.Tensor]:
    """Every crop of the zero-padded image, and its mirror: the slow reference."""
    _, height, width = image.shape
    padded = F.pad(image, (padding,) * 4)
    crops = [
        padded[:, top : top + height, left : left + width]
        for top in range(2 * padding + 1)
        for left in range(2 * padding + 1)
    ]
    return crops + [crop.flip(-1) for crop in crops]


@pytest.mark.parametrize("shape", [(5, 3, 32, 32), (4, 1, 8, 12), (1, 2, 5, 3)])
@pytest.mark.parametrize("padding", [0, 1, 4])
def test_random_crop_flip_keeps_the_shape(shape: tuple[int, ...], padding: int) -> None:
    x = torch.randn(shape)
    assert random_crop_flip(x, torch.Generator().manual_seed(0), padding).shape == shape


def test_random_crop_flip_is_determined_by_the_generator() -> None:
    x = torch.randn(16, 3, 10, 10)
    a, b, c = (random_crop_flip(x, torch.Generator().manual_seed(s)) for s in (1, 1, 2))
    assert torch.equal(a, b) and not torch.equal(a, c)


@pytest.mark.parametrize("sample", range(6))
@pytest.mark.parametrize("padding", [1, 4])
def test_each_augmented_sample_is_a_crop_or_mirrored_crop_of_its_padded_input(
    sample: int, padding: int
) -> None:
    x = torch.randn(6, 3, 9, 7, generator=torch.Generator().manual_seed(5))
    out = random_crop_flip(x, torch.Generator().manual_seed(sample), padding)
    assert any(torch.equal(out[sample], crop) for crop in _crops_of(x[sample], padding))


def test_about_half_the_samples_are_flipped() -> None:
    x = torch.arange(6.0).expand(4000, 1, 2, 6)  # increasing left to right
    out = random_crop_flip(x, torch.Generator().manual_seed(0), padding=0)
    flipped = out[:, 0, 0, 0] > out[:, 0, 0, -1]
    assert torch.equal(out[flipped], x[flipped].flip(-1))
    assert abs(flipped.float().mean().item() - 0.5) < 0.05


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_random_crop_flip_on_the_gpu_matches_the_cpu_for_the_same_seed() -> None:
    x = torch.randn(32, 3, 32, 32)
    cpu = random_crop_flip(x, torch.Generator().manual_seed(7))
    gpu = random_crop_flip(x.cuda(), torch.Generator().manual_seed(7))
    assert gpu.device.type == "cuda" and torch.equal(gpu.cpu(), cpu)

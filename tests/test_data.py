"""Datasets read from their real on-disk formats, written small by the tests."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
import torch

from biobench.data import DataOptions, load_dataset
from biobench.errors import DataError, SpecError
from conftest import make_mnist, write_idx


def test_mnist_of_any_size_loads_from_torchvisions_raw_layout(tmp_path: Path) -> None:
    root = make_mnist(tmp_path, n_train=37, n_test=11, size=20)
    data = load_dataset("mnist", DataOptions(root))
    assert (len(data.train), len(data.test), data.input_shape) == (37, 11, (1, 20, 20))
    x, y = next(data.train.batches(64))
    assert x.dtype == torch.float32 and x.min() >= 0.0 and x.max() <= 1.0
    assert y.tolist() == [i % 10 for i in range(37)]


def test_mnist_reads_the_gzipped_files_torchvision_downloads(tmp_path: Path) -> None:
    root = make_mnist(tmp_path, n_train=20, n_test=10)
    for path in (root / "MNIST" / "raw").iterdir():
        path.with_name(path.name + ".gz").write_bytes(gzip.compress(path.read_bytes()))
        path.unlink()
    assert len(load_dataset("mnist", DataOptions(root)).train) == 20


def test_missing_mnist_names_the_expected_path_and_the_flag(tmp_path: Path) -> None:
    with pytest.raises(DataError) as caught:
        load_dataset("mnist", DataOptions(tmp_path / "empty"))
    message = str(caught.value)
    assert str(tmp_path / "empty" / "MNIST" / "raw" / "train-images-idx3-ubyte") in message
    assert "--download" in message and "--data-dir" in message


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda b: b[:-7], "corrupt"),
        (lambda b: b[:6], "truncated"),
        (lambda b: b"\x00\x00\x08\x01" + b[4:], "not the expected IDX"),
    ],
)
def test_corrupt_mnist_files_are_named(tmp_path: Path, damage, message: str) -> None:
    root = make_mnist(tmp_path, n_train=20, n_test=10)
    target = root / "MNIST" / "raw" / "train-images-idx3-ubyte"
    target.write_bytes(damage(target.read_bytes()))
    with pytest.raises(DataError, match=message) as caught:
        load_dataset("mnist", DataOptions(root))
    assert str(target) in str(caught.value)


def test_images_and_labels_that_do_not_belong_together_are_refused(tmp_path: Path) -> None:
    root = make_mnist(tmp_path, n_train=20, n_test=10)
    write_idx(root / "MNIST" / "raw" / "train-labels-idx1-ubyte", np.zeros(19), 2049)
    with pytest.raises(DataError, match="20 images but 19 labels"):
        load_dataset("mnist", DataOptions(root))


def test_digits_is_the_real_offline_dataset_with_a_fixed_stratified_split() -> None:
    a = load_dataset("digits", DataOptions(Path("unused")))
    b = load_dataset("digits", DataOptions(Path("unused")))
    assert (len(a.train), len(a.test), a.num_classes) == (1437, 360, 10)
    assert torch.equal(a.test.y, b.test.y) and torch.equal(a.train.x, b.train.x)
    assert a.test.y.bincount().tolist() == [36] * 10


def test_synthetic_data_is_deterministic() -> None:
    a = load_dataset("synthetic", DataOptions(Path("unused")))
    b = load_dataset("synthetic", DataOptions(Path("unused")))
    assert torch.equal(a.train.x, b.train.x) and torch.equal(a.test.y, b.test.y)


def test_shuffled_batches_cover_the_split_once_in_a_seeded_order() -> None:
    split = load_dataset("synthetic", DataOptions(Path("unused"))).train
    order = [
        torch.cat([y for _, y in split.batches(64, torch.Generator().manual_seed(s))])
        for s in (1, 1, 2)
    ]
    assert torch.equal(order[0], order[1]) and not torch.equal(order[0], order[2])
    assert torch.equal(order[0].sort().values, split.y.sort().values)


def test_unknown_dataset_lists_the_choices() -> None:
    with pytest.raises(SpecError, match="unknown dataset 'cifar'; choose one of: cifar10, digits"):
        load_dataset("cifar", DataOptions(Path("unused")))

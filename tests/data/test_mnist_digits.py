"""Datasets read from their real on-disk formats, written small by the tests."""

from __future__ import annotations

import gzip
import io
import os
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from biobench.data import DataOptions, Dataset, TensorSplit, load_dataset
from biobench.errors import BiobenchError, DataError, SpecError
from support.data import make_mnist, write_idx


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


def _zeros_after(content: bytes, zeros: int) -> bytes:
    """`content` then `zeros` zero bytes, gzipped, without holding the zeros in memory."""
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb") as gz:
        gz.write(content)
        block = bytes(2**20)
        for _ in range(zeros // len(block)):
            gz.write(block)
    return out.getvalue()


def _gzipped(root: Path, name: str = "train-images-idx3-ubyte") -> Path:
    """Replace one MNIST file by its .gz, as torchvision leaves it; returns the .gz."""
    path = root / "MNIST" / "raw" / name
    gz = path.with_name(name + ".gz")
    gz.write_bytes(gzip.compress(path.read_bytes()))
    path.unlink()
    return gz


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda b: b"garbage, not gzip", "unreadable .Not a gzipped file"),
        (lambda b: b[:10] + b"\xff" * 64, "unreadable .Error -3 while decompressing"),
        (lambda b: b[: len(b) // 2], "unreadable .Compressed file ended"),
        (lambda b: gzip.compress(gzip.decompress(b)[:-5]), "corrupt: its header promises"),
        (  # 256 MiB of zeros in a 256 KiB .gz, past the 15,696 bytes its header promises
            lambda b: _zeros_after(gzip.decompress(b), 2**28),
            "corrupt: its header promises 15696 bytes, it inflates to more;",
        ),
        (  # a header promising 4 GB from a file that cannot inflate to that much
            lambda b: gzip.compress(struct.pack(">4I", 2051, 2**16, 2**8, 2**8)),
            "corrupt: its header promises 4294967312 bytes, a 31-byte .gz inflates to at most "
            "31992;",
        ),
    ],
)
def test_a_damaged_gz_is_named_as_the_file_read(tmp_path: Path, damage, message: str) -> None:
    gz = _gzipped(make_mnist(tmp_path, n_train=20, n_test=10))
    gz.write_bytes(damage(gz.read_bytes()))
    with pytest.raises(DataError, match=message) as caught:
        load_dataset("mnist", DataOptions(tmp_path))
    assert f"MNIST file {gz} is" in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.parametrize("name", ["t10k-labels-idx1-ubyte", "train-images-idx3-ubyte.gz"])
def test_a_folder_where_an_mnist_file_belongs_is_named(tmp_path: Path, name: str) -> None:
    root = make_mnist(tmp_path, n_train=20, n_test=10)
    target = root / "MNIST" / "raw" / name
    (target.parent / name.removesuffix(".gz")).unlink()
    target.mkdir()
    with pytest.raises(DataError, match=f"MNIST file {target} is a folder, not a file"):
        load_dataset("mnist", DataOptions(root))


def test_a_named_pipe_where_an_mnist_file_belongs_is_never_waited_on(tmp_path: Path) -> None:
    target = (
        make_mnist(tmp_path, n_train=20, n_test=10) / "MNIST" / "raw" / "t10k-labels-idx1-ubyte"
    )
    target.unlink()
    os.mkfifo(target)  # no writer: opening it to read would wait forever
    with pytest.raises(BiobenchError, match=f"MNIST file {target}: it is a named pipe, not a"):
        load_dataset("mnist", DataOptions(tmp_path))


@pytest.mark.parametrize(
    ("split", "shape", "message"),
    [
        ("t10k", (0, 28, 28), "t10k-images-idx3-ubyte holds no images"),
        ("train", (0, 28, 28), "train-images-idx3-ubyte holds no images"),
        ("train", (20, 0, 28), "train-images-idx3-ubyte holds images of 0x28 pixels"),
        ("t10k", (10, 14, 14), "t10k-images-idx3-ubyte are 14x14 but the training images"),
        ("t10k", (10, 28, 14), "are 28x14 but the training images in .*train-images.* are 28x28"),
    ],
)
def test_an_empty_split_or_test_images_of_another_size_are_refused(
    tmp_path: Path, split: str, shape: tuple[int, ...], message: str
) -> None:
    raw = make_mnist(tmp_path, n_train=20, n_test=10) / "MNIST" / "raw"
    write_idx(raw / f"{split}-images-idx3-ubyte", np.zeros(shape), 2051)
    write_idx(raw / f"{split}-labels-idx1-ubyte", np.zeros(shape[0]), 2049)
    with pytest.raises(DataError, match=message):
        load_dataset("mnist", DataOptions(tmp_path))


def test_a_header_promising_more_than_64_bits_of_bytes_is_corrupt(tmp_path: Path) -> None:
    raw = make_mnist(tmp_path, n_train=20, n_test=10) / "MNIST" / "raw"
    target = raw / "train-images-idx3-ubyte"
    target.write_bytes(struct.pack(">4I", 2051, 2**32 - 1, 2**32 - 1, 2**32 - 1) + b"\0" * 64)
    promised = 16 + (2**32 - 1) ** 3  # np.prod would wrap around to some other number
    with pytest.raises(DataError, match=f"its header promises {promised} bytes, it has 80"):
        load_dataset("mnist", DataOptions(tmp_path))


def test_a_plugin_dataset_with_an_empty_or_mismatched_split_is_refused() -> None:
    def split(n: int, side: int = 8) -> TensorSplit:
        return TensorSplit(torch.zeros(n, 1, side, side), torch.zeros(n))

    with pytest.raises(DataError, match=r"dataset blobs \(plugin\) has no test images"):
        Dataset("blobs", split(4), split(0), num_classes=2, source="plugin")
    with pytest.raises(DataError, match=r"test images of shape \(1, 4, 4\) but training images"):
        Dataset("blobs", split(4), split(2, side=4), num_classes=2, source="plugin")


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

"""ImageNet streamed from JPEG class folders, and downsampled ImageNet from its npz batches, both
written small in their real formats."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.transforms import functional as TF

from biobench.data import DataOptions, load_dataset
from biobench.data.augment import random_crop_flip
from biobench.data.imagenet import MEAN, STD, FolderSplit
from biobench.errors import DataError, SpecError
from biobench.registry import DATASETS

# Created out of sorted order: class k must still be the k-th wnid in sorted order.
TRAIN: dict[str, list[tuple[int, int, str]]] = {
    "n03000003": [(40, 30, "RGB"), (30, 40, "RGB")],
    "n01000001": [(40, 30, "L"), (36, 36, "RGB")],
    "n02000002": [(30, 40, "CMYK"), (44, 28, "RGB")],
}
VAL: dict[str, list[tuple[int, int, str]]] = {
    "n02000002": [(40, 30, "RGB")],
    "n01000001": [(28, 44, "L"), (40, 30, "RGB")],
}


def write_jpeg(path: Path, width: int, height: int, mode: str, seed: int) -> None:
    """A small smooth picture (JPEG keeps it faithfully) in the given PIL mode."""
    rng = np.random.default_rng(seed)
    corners = rng.integers(0, 256, size=(2, 2, 3)).astype(np.float64)
    rows = np.linspace(0, 1, height)[:, None, None]
    cols = np.linspace(0, 1, width)[None, :, None]
    top = corners[0, 0] * (1 - cols) + corners[0, 1] * cols
    bottom = corners[1, 0] * (1 - cols) + corners[1, 1] * cols
    pixels = (top * (1 - rows) + bottom * rows).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels, "RGB").convert(mode).save(path, "JPEG", quality=95)


def make_imagenet(
    root: Path,
    train: dict[str, list[tuple[int, int, str]]] = TRAIN,
    val: dict[str, list[tuple[int, int, str]]] = VAL,
) -> Path:
    """ILSVRC-2012's folder layout, with JPEGs of a few sizes and colour modes."""
    seed = 0
    for split, classes in (("train", train), ("val", val)):
        for wnid, images in classes.items():
            (root / "imagenet" / split / wnid).mkdir(parents=True, exist_ok=True)
            for i, (width, height, mode) in enumerate(images):
                path = root / "imagenet" / split / wnid / f"{wnid}_{i}.JPEG"
                write_jpeg(path, width, height, mode, seed)
                seed += 1
    return root


def reference(path: Path) -> torch.Tensor:
    """torchvision's standard evaluation transform, for comparison."""
    with Image.open(path) as image:
        image = TF.center_crop(TF.resize(image.convert("RGB"), 256), 224)
        return TF.normalize(TF.to_tensor(image), MEAN, STD)


def as_pixels(x: torch.Tensor) -> np.ndarray:
    """Normalised (3, H, W) back to uint8 (H, W, 3)."""
    mean, std = torch.tensor(MEAN).view(3, 1, 1), torch.tensor(STD).view(3, 1, 1)
    return (((x * std + mean) * 255).round().byte()).permute(1, 2, 0).numpy()


def crop_kind(crop: np.ndarray, path: Path) -> str | None:
    """Whether `crop` is a "plain" or "mirrored" 224x224 crop of the 256-resized image, or
    neither (None)."""
    with Image.open(path) as image:
        resized = np.asarray(TF.resize(image.convert("RGB"), 256))
    height, width = resized.shape[:2]
    for kind, candidate in (("plain", crop), ("mirrored", crop[:, ::-1])):
        corner = (resized[: height - 223, : width - 223] == candidate[0, 0]).all(-1)
        for top, left in zip(*corner.nonzero(), strict=True):
            if np.array_equal(resized[top : top + 224, left : left + 224], candidate):
                return kind
    return None


def train_paths(root: Path) -> list[Path]:
    """The train images in class-index order (sorted wnids, then sorted file names)."""
    return sorted((root / "imagenet" / "train").glob("*/*.JPEG"))


def epoch(split: Any, seed: int | None, batch_size: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    generator = None if seed is None else torch.Generator().manual_seed(seed)
    xs, ys = zip(*split.batches(batch_size, generator), strict=True)
    return torch.cat(xs), torch.cat(ys)


def options(root: Path, **settings: Any) -> DataOptions:
    return DataOptions(root, settings={"workers": 0} | settings)


def test_imagenet_streams_224_pixel_crops_with_classes_from_sorted_wnids(tmp_path: Path) -> None:
    data = load_dataset("imagenet", options(make_imagenet(tmp_path)))
    assert (len(data.train), len(data.test), data.num_classes) == (6, 3, 3)
    assert data.input_shape == (3, 224, 224) and data.source == str(tmp_path / "imagenet")
    assert isinstance(data.train, FolderSplit) and data.train.device == torch.device("cpu")
    assert data.train.num_batches(4) == 2 and isinstance(data.to("cpu").test, FolderSplit)
    x, y = epoch(data.test, None)
    assert x.dtype == torch.float32 and y.dtype == torch.int64 and x.shape == (3, 3, 224, 224)
    assert y.tolist() == [0, 0, 1]  # val n01000001 (two images), then n02000002
    assert epoch(data.train, None)[1].tolist() == [0, 0, 1, 1, 2, 2]


def test_evaluation_images_match_torchvisions_resize_and_centre_crop(tmp_path: Path) -> None:
    root = make_imagenet(tmp_path)
    x, _ = epoch(load_dataset("imagenet", options(root)).train, None)
    expected = torch.stack([reference(path) for path in train_paths(root)])
    torch.testing.assert_close(x, expected, atol=1e-5, rtol=0)


def test_a_pixel_is_normalised_with_the_imagenet_statistics(tmp_path: Path) -> None:
    root = make_imagenet(tmp_path, train={"n1": [(40, 30, "RGB")]}, val={"n1": [(30, 40, "RGB")]})
    path = root / "imagenet" / "train" / "n1" / "n1_0.JPEG"
    Image.new("RGB", (40, 30), (200, 100, 50)).save(path, "JPEG")
    with Image.open(path) as image:
        red = image.getpixel((20, 15))[0]  # what the JPEG decodes to
    x, _ = epoch(load_dataset("imagenet", options(root)).train, None)
    assert x[0, 0, 112, 112].item() == pytest.approx((red / 255 - 0.485) / 0.229, abs=1e-5)


def test_grayscale_and_cmyk_jpegs_become_rgb(tmp_path: Path) -> None:
    root = make_imagenet(tmp_path)
    x, _ = epoch(load_dataset("imagenet", options(root)).train, None)
    gray = as_pixels(x[0])  # n01000001_0 is the grayscale JPEG
    assert np.array_equal(gray[..., 0], gray[..., 1]) and np.array_equal(
        gray[..., 0], gray[..., 2]
    )
    assert x[4].shape == (3, 224, 224)  # n02000002_0 is the CMYK JPEG


@pytest.mark.parametrize("augment", [False, True])
def test_a_seeded_epoch_is_the_same_with_or_without_worker_processes(
    tmp_path: Path, augment: bool
) -> None:
    root = make_imagenet(tmp_path)
    in_process = load_dataset("imagenet", options(root, augment=augment)).train
    one_worker = load_dataset("imagenet", options(root, augment=augment, workers=1)).train
    x, y = epoch(in_process, 5)
    x_worker, y_worker = epoch(one_worker, 5)
    assert torch.equal(x, x_worker) and torch.equal(y, y_worker)
    assert not torch.equal(x, epoch(in_process, 6)[0])


def test_augmented_images_are_random_crops_and_flips_of_the_resized_image(tmp_path: Path) -> None:
    # One image per class, so a label names the image it came from.
    train = {f"n{i}": [size] for i, size in enumerate([(40, 30, "RGB"), (30, 40, "RGB")] * 3)}
    root = make_imagenet(tmp_path, train=train, val={"n0": [(40, 30, "RGB")]})
    split = load_dataset("imagenet", options(root, augment=True)).train
    x, y = epoch(split, 0)
    centred, _ = epoch(load_dataset("imagenet", options(root)).train, None)
    paths = train_paths(root)
    kinds = [crop_kind(as_pixels(image), paths[label]) for image, label in zip(x, y, strict=True)]
    assert None not in kinds and {"plain", "mirrored"} <= set(kinds)
    assert not torch.equal(x, centred[y])
    assert torch.equal(epoch(split, None)[0], centred)  # unshuffled batches stay centred


@pytest.mark.parametrize("workers", [0, 1])
@pytest.mark.parametrize(
    ("content", "why"),
    [
        (b"this is not a JPEG", "cannot identify image file"),
        ("truncated", "Truncated File Read"),
        # A few hundred bytes whose resize to a shorter side of 256 would be 60 MB (and a
        # 30000x1 one, as small a file, 6 GB): refused from the header.
        ((300, 1), "its 300x1 pixels resize to 76800x256, more than the 16777216 pixels"),
        ((1, 300), "its 1x300 pixels resize to 256x76800, more than the 16777216 pixels"),
    ],
)
def test_an_unreadable_jpeg_is_named_in_one_line(
    tmp_path: Path, workers: int, content: bytes | str | tuple[int, int], why: str
) -> None:
    root = make_imagenet(tmp_path)
    target = root / "imagenet" / "train" / "n02000002" / "n02000002_1.JPEG"
    data = target.read_bytes()
    if isinstance(content, tuple):
        Image.new("RGB", content, (10, 20, 30)).save(target, "JPEG")
    else:
        target.write_bytes(data[: len(data) // 2] if content == "truncated" else content)
    split = load_dataset("imagenet", options(root, workers=workers)).train
    with pytest.raises(DataError, match="unreadable") as caught:
        epoch(split, 0)
    assert why in str(caught.value)
    message = str(caught.value)
    assert str(target) in message and "image-net.org" in message and "\n" not in message


@pytest.mark.parametrize("download", [False, True])
@pytest.mark.parametrize("missing", ["train", "val"])
def test_missing_imagenet_says_where_to_put_it_and_that_it_cannot_be_downloaded(
    tmp_path: Path, download: bool, missing: str
) -> None:
    root = make_imagenet(tmp_path)
    (root / "imagenet" / missing).rename(root / "elsewhere")
    with pytest.raises(DataError) as caught:
        load_dataset("imagenet", DataOptions(root, download=download))
    message = str(caught.value)
    assert str(root / "imagenet" / missing) in message and "image-net.org" in message
    assert "--data-dir" in message and ("not possible" in message) == download


def _empty_class(root: Path) -> Path:
    folder = root / "imagenet" / "train" / "n09000009"
    folder.mkdir()
    (folder / "notes.txt").write_text("not an image")
    return folder


def _unknown_val_class(root: Path) -> Path:
    folder = root / "imagenet" / "val" / "n09000009"
    write_jpeg(folder / "a.JPEG", 40, 30, "RGB", 0)
    return folder


def _empty_train(root: Path) -> Path:
    train = root / "imagenet" / "train"
    for path in train.glob("*/*"):
        path.rename(root / path.name)
    for folder in train.iterdir():
        folder.rmdir()
    return train


def _flat_val(root: Path) -> Path:
    val = root / "imagenet" / "val"
    for path in val.glob("*/*"):
        path.rename(val / path.name)
    for folder in [path for path in val.iterdir() if path.is_dir()]:
        folder.rmdir()
    return val


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (_empty_class, "holds no images"),
        (_unknown_val_class, "not one of the 3 classes"),
        (_empty_train, "no class folders"),
        (_flat_val, "lie directly in"),
    ],
)
def test_a_malformed_folder_tree_is_named_with_the_fix(
    tmp_path: Path, damage: Any, message: str
) -> None:
    root = make_imagenet(tmp_path)
    named = damage(root)
    with pytest.raises(DataError, match=message) as caught:
        load_dataset("imagenet", options(root))
    assert str(named) in str(caught.value) and "\n" not in str(caught.value)


def test_a_file_where_a_split_folder_belongs_is_named(tmp_path: Path) -> None:
    root = make_imagenet(tmp_path)
    val = root / "imagenet" / "val"
    val.rename(root / "elsewhere")
    val.write_text("not a folder")
    with pytest.raises(DataError, match=f"ImageNet folder {val} is a file, not a folder"):
        load_dataset("imagenet", options(root))


def test_imagenet_declares_its_settings_and_defaults_to_some_workers(tmp_path: Path) -> None:
    assert DATASETS.entry("imagenet").settings["workers"].parse("workers", "4") == 4
    with pytest.raises(SpecError, match="out of range"):
        DATASETS.entry("imagenet").settings["workers"].parse("workers", "-1")
    data = load_dataset("imagenet", DataOptions(make_imagenet(tmp_path)))
    assert 1 <= data.train.workers <= 8 and data.test.augment is False


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_a_folder_split_delivers_pinned_batches_to_the_gpu(tmp_path: Path) -> None:
    split = load_dataset("imagenet", options(make_imagenet(tmp_path), workers=1)).train
    x, y = epoch(split.to("cuda"), 0)
    assert x.device.type == "cuda" and y.device.type == "cuda"
    torch.testing.assert_close(x.cpu(), epoch(split, 0)[0])


# Downsampled ImageNet (npz batches)


def write_npz(path: Path, data: np.ndarray, labels: np.ndarray, compressed: bool = False) -> None:
    """One batch as published: "data" (N, 3*S*S) uint8, "labels" 1..1000, the "mean" image."""
    path.parent.mkdir(parents=True, exist_ok=True)
    save = np.savez_compressed if compressed else np.savez
    save(path, data=data, labels=labels, mean=data.mean(axis=0) if len(data) else data.sum(0))


def make_downsampled(
    root: Path,
    side: int = 32,
    batches: dict[int, int] | None = None,
    n_val: int = 4,
    subfolder: str = "",
    compressed: bool = False,
) -> Path:
    """Batches {number: images}; image i of batch k has label 1 + (100 * k + i) % 1000."""
    rng = np.random.default_rng(side)
    folder = root / f"imagenet{side}" / subfolder
    for number, n in (batches or {1: 3, 2: 2}).items():
        data = rng.integers(0, 256, size=(n, 3 * side * side), dtype=np.uint8)
        labels = 1 + (100 * number + np.arange(n)) % 1000
        write_npz(folder / f"train_data_batch_{number}.npz", data, labels, compressed)
    data = rng.integers(0, 256, size=(n_val, 3 * side * side), dtype=np.uint8)
    write_npz(folder / "val_data.npz", data, np.array([1, 1000, 500, 2][:n_val]), compressed)
    return root


@pytest.mark.parametrize("side", [32, 64])
@pytest.mark.parametrize("subfolder", ["", "Imagenet_train_npz"])
@pytest.mark.parametrize("compressed", [False, True])
def test_downsampled_imagenet_loads_from_its_npz_batches(
    tmp_path: Path, side: int, subfolder: str, compressed: bool
) -> None:
    root = make_downsampled(tmp_path, side, subfolder=subfolder, compressed=compressed)
    data = load_dataset(f"imagenet{side}", DataOptions(root))
    assert (len(data.train), len(data.test), data.num_classes) == (5, 4, 1000)
    assert data.input_shape == (3, side, side) and data.train.x.dtype == torch.uint8
    assert data.train.y.tolist() == [100, 101, 102, 200, 201]  # 1-based labels made 0-based
    assert data.test.y.tolist() == [0, 999, 499, 1]
    x, _ = next(data.test.batches(8))
    assert x.dtype == torch.float32 and x.shape == (4, 3, side, side)


def test_train_batches_load_in_numeric_order_whichever_are_present(tmp_path: Path) -> None:
    root = make_downsampled(tmp_path, batches={10: 1, 2: 1, 9: 2})
    data = load_dataset("imagenet32", DataOptions(root))
    assert data.train.y.tolist() == [200, 900, 901, 0]  # batch 10's label 1 + 1000 % 1000 = 1


def test_rows_are_planes_and_pixels_are_normalised_like_imagenet(tmp_path: Path) -> None:
    root = make_downsampled(tmp_path)
    row = np.zeros((1, 3072), dtype=np.uint8)
    row[0, 2 * 1024 + 32 * 6 + 9] = 180  # blue plane, row 6, column 9
    write_npz(root / "imagenet32" / "val_data.npz", row, np.array([7]))
    test = load_dataset("imagenet32", DataOptions(root)).test
    assert test.x[0].nonzero().tolist() == [[2, 6, 9]]
    x, _ = next(test.batches(1))
    assert x[0, 2, 6, 9].item() == pytest.approx((180 / 255 - 0.406) / 0.225, abs=1e-5)
    assert x[0, 0, 0, 0].item() == pytest.approx(-0.485 / 0.229, abs=1e-5)


@pytest.mark.parametrize("download", [False, True])
@pytest.mark.parametrize("missing", ["train_data_batch_1.npz", "val_data.npz"])
def test_missing_downsampled_files_say_where_to_get_them(
    tmp_path: Path, download: bool, missing: str
) -> None:
    root = make_downsampled(tmp_path, batches={1: 2})
    (root / "imagenet32" / missing).unlink()
    with pytest.raises(DataError) as caught:
        load_dataset("imagenet32", DataOptions(root, download=download))
    message = str(caught.value)
    assert str(root / "imagenet32" / missing) in message and "image-net.org" in message
    assert "Downsampled ImageNet 32x32" in message and "npz" in message
    assert ("cannot be downloaded" in message) == download


def _rewrite(**batch: Any) -> Any:
    return lambda path: np.savez(path, **batch)


def _forged(name: str, shape: tuple[int, ...]) -> Any:
    """An npz whose array `name` has a header promising `shape` and no data: a few hundred
    bytes that would have the loader allocate what the header says."""

    def forge(path: Path) -> None:
        arrays = {"data": np.zeros((2, 3072), np.uint8), "labels": np.ones(2, np.int64)}
        with zipfile.ZipFile(path, "w") as archive:
            for key, array in arrays.items():
                header = io.BytesIO()
                dtype = array.dtype
                if f"{key}.npy" == name:
                    np.lib.format.write_array_header_1_0(
                        header, {"descr": dtype.str, "fortran_order": False, "shape": shape}
                    )
                else:
                    np.lib.format.write_array(header, array)
                archive.writestr(f"{key}.npy", header.getvalue())

    return forge


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda path: path.write_bytes(path.read_bytes()[:-100]), "unreadable"),
        (lambda path: path.write_bytes(b"garbage"), "unreadable"),
        (_rewrite(labels=np.array([1, 2])), "unreadable"),
        (_rewrite(data=np.zeros((2, 3072), np.uint8)), "unreadable"),
        (_rewrite(data=np.zeros((2, 12288), np.uint8), labels=np.ones(2)), r"\(N, 3072\)"),
        (_rewrite(data=np.zeros((2, 3072), np.float32), labels=np.ones(2)), "float32 data"),
        (_rewrite(data=np.zeros((2, 3072), np.uint8), labels=np.ones(3, int)), "2 images but"),
        (_rewrite(data=np.zeros((2, 3072), np.uint8), labels=np.array([0, 5])), "1..1000"),
        (_rewrite(data=np.zeros((2, 3072), np.uint8), labels=np.array([5, 1001])), "1..1000"),
        (
            _forged("data.npy", (10**5, 3072)),
            "corrupt: the header of data.npy promises 307200128 bytes, the archive can hold",
        ),
        (
            _forged("labels.npy", (10**9,)),
            "corrupt: the header of labels.npy promises 8000000128 bytes, the archive can hold",
        ),
    ],
)
def test_a_damaged_npz_batch_is_named(tmp_path: Path, damage: Any, message: str) -> None:
    root = make_downsampled(tmp_path)
    target = root / "imagenet32" / "train_data_batch_2.npz"
    damage(target)
    with pytest.raises(DataError, match=message) as caught:
        load_dataset("imagenet32", DataOptions(root))
    assert str(target) in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.parametrize("name", ["train_data_batch_2.npz", "val_data.npz"])
def test_a_folder_where_an_npz_belongs_is_named(tmp_path: Path, name: str) -> None:
    root = make_downsampled(tmp_path)
    target = root / "imagenet32" / name
    target.unlink()
    target.mkdir()
    with pytest.raises(DataError, match=f"file {target} is a folder, not a file"):
        load_dataset("imagenet32", DataOptions(root))


@pytest.mark.parametrize(
    ("batches", "n_val", "message"),
    [
        ({1: 3}, 0, "file .*val_data.npz holds no images"),
        ({1: 0, 2: 0}, 4, "batches .*train_data_batch_1.npz to train_data_batch_2.npz hold no"),
    ],
)
def test_an_empty_downsampled_split_is_refused(
    tmp_path: Path, batches: dict[int, int], n_val: int, message: str
) -> None:
    root = make_downsampled(tmp_path, batches=batches, n_val=n_val)
    with pytest.raises(DataError, match=message):
        load_dataset("imagenet32", DataOptions(root))


def test_a_batch_present_twice_is_refused(tmp_path: Path) -> None:
    root = make_downsampled(tmp_path)
    make_downsampled(tmp_path, batches={2: 1}, subfolder="part2")
    with pytest.raises(DataError, match="batch 2 is there twice"):
        load_dataset("imagenet32", DataOptions(root))


def test_downsampled_augmentation_is_a_training_setting(tmp_path: Path) -> None:
    root = make_downsampled(tmp_path)
    assert DATASETS.entry("imagenet32").settings["augment"].parse("augment", "yes") is True
    data = load_dataset("imagenet32", DataOptions(root, settings={"augment": True}))
    assert data.train.augment is random_crop_flip and data.test.augment is None
    assert load_dataset("imagenet32", DataOptions(root)).train.augment is None


def test_train_error_is_measured_on_a_fixed_subset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import biobench.data.imagenet as imagenet

    monkeypatch.setattr(imagenet, "TRAIN_EVAL_IMAGES", 4)
    root = make_imagenet(tmp_path)
    first, second = (load_dataset("imagenet", options(root)) for _ in range(2))
    assert len(first.train_eval_split) == 4 and len(first.train) == 6
    assert first.train_eval_split.paths.tolist() == second.train_eval_split.paths.tolist()
    assert set(first.train_eval_split.paths.tolist()) <= set(first.train.paths.tolist())

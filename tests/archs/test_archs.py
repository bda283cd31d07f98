"""The paper's networks (Table 3): shapes, parameter counts, and every pair training with BP."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from biobench.archs import ARCHITECTURES, DataInfo, build_network
from biobench.cli import app
from biobench.errors import SpecError
from biobench.learners import ALGORITHMS
from biobench.nn import Identity, SameConv2d, Tanh
from biobench.store import Store
from support.data import make_mnist

runner = CliRunner()
SHAPES = {
    "mnist": ((1, 28, 28), 10),
    "cifar10": ((3, 32, 32), 10),
    "imagenet": ((3, 224, 224), 1000),
}


def count(arch: str, dataset: str) -> int:
    shape, classes = SHAPES[dataset]
    with torch.device("meta"):  # no memory, no arithmetic: shapes only
        return build_network(arch, DataInfo(dataset, shape, classes)).num_parameters()


@pytest.mark.parametrize(
    ("arch", "dataset", "millions"),
    [
        ("lc", "mnist", 4.2),
        ("lc", "cifar10", 50.0),
        ("lc", "imagenet", 259.9),
        ("conv", "cifar10", 17.3),
        ("conv", "imagenet", 20.2),
    ],
)
def test_parameter_counts_are_the_papers(arch: str, dataset: str, millions: float) -> None:
    assert round(count(arch, dataset) / 1e6, 1) == millions


@pytest.mark.parametrize(
    ("dataset", "layers"),
    [
        ("mnist", [(32, 14, 14), (64, 7, 7), (1024,), (10,)]),
        ("cifar10", [(64, 16, 16), (128, 8, 8), (256, 8, 8), (1024,), (10,)]),
        (
            "imagenet",
            [
                (48, 56, 56),
                (48, 28, 28),
                (96, 28, 28),
                (96, 14, 14),
                (192, 14, 14),
                (192, 7, 7),
                (384, 7, 7),
                (1000,),
            ],
        ),
    ],
)
@pytest.mark.parametrize("arch", ["lc", "conv"])
def test_layer_shapes_follow_table_3_with_same_padding(
    arch: str, dataset: str, layers: list
) -> None:
    shape, classes = SHAPES[dataset]
    with torch.device("meta"):
        net = build_network(arch, DataInfo(dataset, shape, classes))
    assert [layer.output_shape for layer in net.layers] == [tuple(s) for s in layers]
    assert all(isinstance(layer.activation, Tanh) for layer in net.layers[:-1])
    assert isinstance(net.layers[-1].activation, Identity)


def test_the_paper_has_no_fully_connected_imagenet_net() -> None:
    info = DataInfo("imagenet", (3, 224, 224), 1000)
    assert "no fully-connected net on 224x224 images" in ARCHITECTURES.entry("fc").refuses(info)
    with pytest.raises(SpecError, match="no network for dataset 'imagenet'"):
        build_network("fc", info)


# biobench's own datasets outside Table 3, and a plugin's: (C, H, W) -> per-layer output shapes.
@pytest.mark.parametrize(
    ("arch", "shape", "layers"),
    [
        ("lc", (3, 32, 32), [(64, 16, 16), (128, 8, 8), (256, 8, 8), (1024,), (7,)]),  # IN32
        ("lc", (3, 64, 64), [(64, 32, 32), (128, 16, 16), (256, 8, 8), (1024,), (7,)]),  # IN64
        ("lc", (1, 8, 8), [(16, 8, 8), (32, 4, 4), (256,), (7,)]),  # digits, synthetic
        ("conv", (1, 8, 8), [(16, 8, 8), (32, 4, 4), (256,), (7,)]),
        ("fc", (3, 32, 32), [(1024,)] * 3 + [(7,)]),
        ("fc", (3, 64, 64), [(1024,)] * 3 + [(7,)]),
        ("fc", (1, 8, 8), [(256,)] * 5 + [(7,)]),
        # A plugin dataset of a shape biobench has never seen needs no edit anywhere.
        ("lc", (3, 48, 48), [(64, 24, 24), (128, 12, 12), (256, 6, 6), (1024,), (7,)]),
        ("conv", (3, 48, 48), [(64, 24, 24), (128, 12, 12), (256, 6, 6), (1024,), (7,)]),
        ("fc", (3, 48, 48), [(1024,)] * 3 + [(7,)]),
        (
            "lc",
            (1, 96, 80),
            [(48, 24, 20), (48, 12, 10), (96, 12, 10), (96, 6, 5)]
            + [(192, 6, 5), (192, 3, 3), (384, 3, 3), (7,)],
        ),
    ],
)
def test_the_network_follows_the_input_shape(arch: str, shape: tuple, layers: list) -> None:
    with torch.device("meta"):
        net = build_network(arch, DataInfo("plugin", shape, 7))
    assert [layer.output_shape for layer in net.layers] == layers


@pytest.mark.parametrize("algorithm", ["bp", "fa", "dtp"])
def test_a_plugin_shape_trains_with_every_family(algorithm: str) -> None:
    torch.manual_seed(0)
    net = build_network("conv", DataInfo("plugin", (3, 48, 48), 7))
    learner_class = ALGORITHMS.get(algorithm)
    learner = learner_class(net, {k: p.default for k, p in learner_class.hparams.items()})
    x, y = torch.randn(4, 3, 48, 48), torch.arange(4)
    learner.start_phase("train")
    assert torch.isfinite(learner.train_step(x, y)["loss"])
    assert learner.logits(x).shape == (4, 7)


@pytest.mark.parametrize(
    ("arch", "shape", "reason"),
    [
        ("fc", (1, 128, 128), "no fully-connected net on 128x128 images"),
        ("lc", (3, 300, 200), "no locally-connected recipe fits 300x200 images"),
        ("conv", (3, 512, 512), "no locally-connected recipe fits 512x512 images"),
    ],
)
def test_a_shape_no_rule_fits_is_refused_before_building(
    arch: str, shape: tuple, reason: str
) -> None:
    info = DataInfo("plugin", shape, 7)
    assert reason in ARCHITECTURES.entry(arch).refuses(info)
    with pytest.raises(SpecError, match=reason):
        build_network(arch, info)


@pytest.mark.parametrize(
    ("arch", "label", "order"), [("fc", "FC", 10), ("lc", "LC", 20), ("conv", "Conv", 30)]
)
def test_architectures_describe_themselves(arch: str, label: str, order: int) -> None:
    entry = ARCHITECTURES.entry(arch)
    assert (entry.label, entry.order, entry.families) == (label, order, None)
    assert entry.help and entry.refuses(DataInfo("mnist", (1, 28, 28), 10)) is None


def test_same_conv_is_conv2d_with_tensorflow_same_padding() -> None:
    torch.manual_seed(0)
    op = SameConv2d(3, 5, 3, 2, input_size=(9, 8)).double()
    x = torch.randn(2, 3, 9, 8, dtype=torch.float64)
    # 9 -> 5 needs 2 zeros (1 before, 1 after); 8 -> 4 needs 1 (0 before, 1 after).
    padded = torch.nn.functional.pad(x, (0, 1, 1, 1))
    expected = torch.nn.functional.conv2d(padded, op.weight, op.bias, stride=2)
    torch.testing.assert_close(op(x), expected)
    assert op.output_size == (5, 4)


def test_same_conv_transpose_is_its_vjp() -> None:
    torch.manual_seed(0)
    op = SameConv2d(2, 3, 5, 3, input_size=(11, 7)).double()
    x = torch.randn(2, 2, 11, 7, dtype=torch.float64, requires_grad=True)
    out = op(x)
    g = torch.randn_like(out)
    (vjp,) = torch.autograd.grad(out, x, g)
    torch.testing.assert_close(op.transpose(g, op.weight), vjp)


def write_cifar(root: Path) -> Path:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in [*(f"data_batch_{i}" for i in range(1, 6)), "test_batch"]:
        labels = list(range(10))
        batch = {
            b"data": rng.integers(0, 256, (10, 3072), dtype=np.uint8),
            b"labels": labels,
            b"batch_label": b"x",
            b"filenames": [b"f"] * 10,
        }
        (folder / name).write_bytes(pickle.dumps(batch))
    return root


def write_imagenet(root: Path) -> Path:
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for wnid in ("n01", "n02"):
            folder = root / "imagenet" / split / wnid
            folder.mkdir(parents=True)
            pixels = rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(folder / "a.JPEG")
    return root


DATA = {
    "mnist": lambda root: make_mnist(root, n_train=20, n_test=10),
    "cifar10": write_cifar,
    "imagenet": write_imagenet,
}


@pytest.mark.parametrize(
    ("arch", "dataset"),
    [
        ("fc", "mnist"),
        ("lc", "mnist"),
        ("conv", "mnist"),
        ("fc", "cifar10"),
        ("lc", "cifar10"),
        ("conv", "cifar10"),
        ("conv", "imagenet"),
        ("lc", "imagenet"),
    ],
)
def test_every_pair_of_table_3_trains_with_bp(arch: str, dataset: str, tmp_path: Path) -> None:
    root = DATA[dataset](tmp_path / "data")
    url = f"sqlite:///{tmp_path / 'results.db'}"
    extra = (
        ["--batch-size", "2", "--set", "workers=0"]
        if dataset == "imagenet"
        else ["--batch-size", "8"]
    )
    result = runner.invoke(
        app,
        [
            "run",
            "--algo",
            "bp",
            "--arch",
            arch,
            "--data",
            dataset,
            "--data-dir",
            str(root),
            "--epochs",
            "1",
            "--device",
            "cpu",
            "--db",
            url,
            *extra,
        ],
    )
    assert result.exit_code == 0, result.output
    (run,) = Store(url).runs()
    assert run.status == "finished" and run.epochs_done == 1

"""Locally-connected networks and their shared-weight twins (paper Table 3).

Each hidden layer is (kernel, channels, stride) with zero "same" padding and tanh, no pooling,
then dense tanh layers, then the softmax output. `lc` builds it with locally-connected layers
(a separate filter at every position); `conv` with shared-weight convolutions, which on `bp` is
the paper's BP-ConvNet.

The recipe follows from the input's shape (C x H x W, side = max(H, W)), first row that fits:

| input                   | spatial layers (kernel, channels, stride) | dense | for            |
|-------------------------|-------------------------------------------|-------|----------------|
| side <= 16              | (3,16,1) (3,32,2)                         | 256   | 8x8 offline    |
| one channel, side <= 32 | (3,32,2) (3,64,2)                         | 1024  | MNIST          |
| side <= 32              | (5,64,2) (5,128,2) (3,256,1)              | 1024  | CIFAR-10, IN32 |
| side <= 64              | (5,64,2) (5,128,2) (3,256,2)              | 1024  | IN64           |
| side <= 256             | (9,48,4) (3,48,2) (5,96,1) (3,96,2)       | none  | ImageNet 224   |
|                         | (3,192,1) (3,192,2) (3,384,1)             |       |                |
| larger                  | refused                                   |       |                |

MNIST, CIFAR-10 and ImageNet 224 are Table 3's networks; the rest (the offline data,
downsampled ImageNet IN32 and IN64, any plugin dataset) are biobench choices. Small images take
a small net that trains in seconds. At 64x64 the CIFAR-10 net's third layer strides too, so the
dense layer again sees an 8x8 map (a 48x48 image gets 6x6). From 65 pixels a side the ImageNet
net's total stride of 32 takes over; beyond 256 its first layer alone (36.6 M of its 259.9 M
weights at 224) outgrows what the paper ran, so biobench builds none.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from biobench.archs.stack import Layer, Stack
from biobench.errors import SpecError
from biobench.nn import Dense, Identity, LocallyConnected2d, SameConv2d, Tanh, glorot_
from biobench.registry import ARCHITECTURES, DataInfo

MAX_SIDE = 256


@dataclass(frozen=True)
class Recipe:
    """Spatial layers as (kernel, channels, stride), then the dense hidden widths."""

    spatial: tuple[tuple[int, int, int], ...]
    dense: tuple[int, ...]


SMALL = Recipe(((3, 16, 1), (3, 32, 2)), (256,))
MNIST = Recipe(((3, 32, 2), (3, 64, 2)), (1024,))
CIFAR10 = Recipe(((5, 64, 2), (5, 128, 2), (3, 256, 1)), (1024,))
CIFAR10_STRIDED = Recipe(((5, 64, 2), (5, 128, 2), (3, 256, 2)), (1024,))
IMAGENET = Recipe(
    ((9, 48, 4), (3, 48, 2), (5, 96, 1), (3, 96, 2), (3, 192, 1), (3, 192, 2), (3, 384, 1)), ()
)


def recipe(info: DataInfo) -> Recipe | None:
    """The network for `info`'s input shape, by the module docstring's table (None: none fits)."""
    channels, height, width = info.input_shape
    side = max(height, width)
    if side <= 16:
        return SMALL
    if channels == 1 and side <= 32:
        return MNIST
    if side <= 32:
        return CIFAR10
    if side <= 64:
        return CIFAR10_STRIDED
    if side <= MAX_SIDE:
        return IMAGENET
    return None


def refuses(info: DataInfo) -> str | None:
    if recipe(info) is not None:
        return None
    _, height, width = info.input_shape
    return (
        f"no locally-connected recipe fits {height}x{width} images (at most {MAX_SIDE} pixels "
        "a side; the paper's largest is ImageNet's 224): downsample the images or register an "
        "architecture of your own"
    )


SpatialOp = Callable[[int, int, int, int, tuple[int, int]], nn.Module]


def build_spatial(name: str, info: DataInfo, make_op: SpatialOp) -> Stack:
    """The network for `info` with `make_op(c_in, c_out, kernel, stride, input_size)` as its
    spatial layers (an op with an `output_size`); tools/perf.py times other ops so."""
    spec = recipe(info)
    if spec is None:
        raise SpecError(
            f"architecture {name!r} has no network for dataset {info.name!r}: {refuses(info)}"
        )
    channels, size = info.input_shape[0], tuple(info.input_shape[1:])
    layers = []
    for kernel, out_channels, stride in spec.spatial:
        op = make_op(channels, out_channels, kernel, stride, size)
        layers.append(Layer(op, Tanh()))
        channels, size = out_channels, op.output_size
    width = channels * size[0] * size[1]
    for i, units in enumerate([*spec.dense, info.num_classes]):
        activation = Identity() if i == len(spec.dense) else Tanh()
        layers.append(Layer(Dense(width, units), activation, flatten=i == 0))
        width = units
    return glorot_(Stack(layers, info))


@ARCHITECTURES.register(
    "lc", aliases=("locally-connected",), label="LC", order=20, refuses=refuses
)
def locally_connected(info: DataInfo) -> Stack:
    """Locally connected: untied-filter tanh layers, dense tanh layers, softmax (Table 3)."""
    return build_spatial(
        "lc",
        info,
        lambda c_in, c_out, k, s, size: LocallyConnected2d(c_in, c_out, k, s, input_size=size),
    )


@ARCHITECTURES.register(
    "conv", aliases=("convolutional",), label="Conv", order=30, refuses=refuses
)
def convolutional(info: DataInfo) -> Stack:
    """Convolutional: the lc network with shared-weight filters (BP-ConvNet on bp)."""
    return build_spatial(
        "conv",
        info,
        lambda c_in, c_out, k, s, size: SameConv2d(c_in, c_out, k, s, input_size=size),
    )

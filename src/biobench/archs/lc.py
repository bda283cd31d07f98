"""Locally-connected networks and their shared-weight twins (paper Table 3).

Each hidden layer is (kernel, channels, stride) with zero "same" padding and tanh, no pooling,
then dense tanh layers, then the softmax output. `lc` builds it with locally-connected layers
(a separate filter at every position); `conv` with shared-weight convolutions, which on `bp` is
the paper's BP-ConvNet.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from biobench.archs.stack import DataInfo, Layer, Stack
from biobench.errors import SpecError
from biobench.nn import glorot_
from biobench.nn.conv import SameConv2d
from biobench.registry import ARCHITECTURES

# dataset -> ([(kernel, channels, stride), ...], [dense widths])
SPECS: dict[str, tuple[list[tuple[int, int, int]], list[int]]] = {
    "mnist": ([(3, 32, 2), (3, 64, 2)], [1024]),
    "cifar10": ([(5, 64, 2), (5, 128, 2), (3, 256, 1)], [1024]),
    "imagenet": (
        [(9, 48, 4), (3, 48, 2), (5, 96, 1), (3, 96, 2), (3, 192, 1), (3, 192, 2), (3, 384, 1)],
        [],
    ),
    # biobench choices, not in the paper. Downsampled ImageNet takes the CIFAR-10 net at 32x32
    # and one more stride at 64x64; the 8x8 offline datasets take a small net of the same kind.
    "imagenet32": ([(5, 64, 2), (5, 128, 2), (3, 256, 1)], [1024]),
    "imagenet64": ([(5, 64, 2), (5, 128, 2), (3, 256, 2)], [1024]),
    "digits": ([(3, 16, 1), (3, 32, 2)], [256]),
    "synthetic": ([(3, 16, 1), (3, 32, 2)], [256]),
}

SpatialOp = Callable[[int, int, int, int, tuple[int, int]], nn.Module]


def build_spatial(name: str, info: DataInfo, make_op: SpatialOp) -> Stack:
    """Table 3's network for `info` with `make_op(c_in, c_out, kernel, stride, input_size)`
    as its spatial layers (an op with an `output_size`); tools/perf.py times other ops so."""
    if info.name not in SPECS:
        raise SpecError(
            f"architecture {name!r} has no network for dataset {info.name!r}; "
            f"use it with: {', '.join(sorted(SPECS))}"
        )
    spatial, dense = SPECS[info.name]
    channels, size = info.input_shape[0], tuple(info.input_shape[1:])
    layers = []
    for kernel, out_channels, stride in spatial:
        op = make_op(channels, out_channels, kernel, stride, size)
        layers.append(Layer(op, hidden=True))
        channels, size = out_channels, op.output_size
    width = channels * size[0] * size[1]
    for i, units in enumerate([*dense, info.num_classes]):
        last = i == len(dense)
        layers.append(Layer(nn.Linear(width, units), hidden=not last, flatten=i == 0))
        width = units
    return glorot_(Stack(layers, info))


@ARCHITECTURES.register("lc", aliases=("locally-connected",))
def locally_connected(info: DataInfo) -> Stack:
    from biobench.nn.locally_connected import LocallyConnected2d

    return build_spatial(
        "lc",
        info,
        lambda c_in, c_out, k, s, size: LocallyConnected2d(c_in, c_out, k, s, input_size=size),
    )


@ARCHITECTURES.register("conv", aliases=("convolutional",))
def convolutional(info: DataInfo) -> Stack:
    return build_spatial(
        "conv",
        info,
        lambda c_in, c_out, k, s, size: SameConv2d(c_in, c_out, k, s, input_size=size),
    )


locally_connected.datasets = tuple(SPECS)  # type: ignore[attr-defined]
convolutional.datasets = tuple(SPECS)  # type: ignore[attr-defined]

"""Fully-connected networks (paper Table 3): tanh hidden layers, softmax output.

The hidden widths follow from the input's shape, so any dataset gets a network:

| input                      | hidden layers | the paper's / biobench's                      |
|----------------------------|---------------|-----------------------------------------------|
| one channel (grayscale)    | 5 x 256       | MNIST 1x28x28; the 8x8 offline data           |
| more channels (colour)     | 3 x 1024      | CIFAR-10 3x32x32; downsampled ImageNet 32, 64 |
| over 12,288 input values   | refused       | ImageNet 3x224x224 (the paper runs none)      |

The limit is downsampled ImageNet 64's 3x64x64 (biobench's largest dense input): above it the
first layer alone would dwarf the rest of the network (ImageNet's 150,528 inputs x 1024 units
is 154 M weights) while the paper shows such nets are not worth running.
"""

from __future__ import annotations

import math

from biobench.archs.stack import Layer, Stack
from biobench.nn import Dense, Identity, Tanh, glorot_
from biobench.registry import ARCHITECTURES, DataInfo

MAX_INPUTS = 3 * 64 * 64


def hidden_widths(info: DataInfo) -> list[int]:
    """The paper's MNIST widths for grayscale inputs, its CIFAR-10 widths for colour ones."""
    return [256] * 5 if info.input_shape[0] == 1 else [1024] * 3


def refuses(info: DataInfo) -> str | None:
    inputs = math.prod(info.input_shape)
    if inputs <= MAX_INPUTS:
        return None
    _, height, width = info.input_shape
    return (
        f"the paper runs no fully-connected net on {height}x{width} images; fc takes at most "
        f"{MAX_INPUTS:,} input values (3x64x64) and these have {inputs:,}: use lc or conv"
    )


@ARCHITECTURES.register("fc", aliases=("fully-connected",), label="FC", order=10, refuses=refuses)
def fully_connected(info: DataInfo) -> Stack:
    """Fully connected: tanh hidden layers (5 x 256 grayscale, 3 x 1024 colour), softmax."""
    widths = [math.prod(info.input_shape), *hidden_widths(info), info.num_classes]
    last = len(widths) - 2
    layers = [
        Layer(Dense(n_in, n_out), Tanh() if i < last else Identity(), flatten=i == 0)
        for i, (n_in, n_out) in enumerate(zip(widths[:-1], widths[1:], strict=False))
    ]
    return glorot_(Stack(layers, info))

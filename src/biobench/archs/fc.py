"""Fully-connected networks (paper Table 3): tanh hidden layers, softmax output."""

from __future__ import annotations

import math

from torch import nn

from biobench.archs.stack import DataInfo, Layer, Stack
from biobench.errors import SpecError
from biobench.nn import glorot_
from biobench.registry import ARCHITECTURES

# Hidden widths per dataset. MNIST and CIFAR-10 are the paper's (it runs no FC net on ImageNet);
# downsampled ImageNet takes the CIFAR-10 recipe and the small offline datasets the MNIST one,
# which trains in seconds on their 8x8 images (biobench choices).
HIDDEN = {
    "mnist": [256] * 5,
    "cifar10": [1024] * 3,
    "imagenet32": [1024] * 3,
    "imagenet64": [1024] * 3,
    "digits": [256] * 5,
    "synthetic": [256] * 5,
}


@ARCHITECTURES.register("fc", aliases=("fully-connected",))
def fully_connected(info: DataInfo) -> Stack:
    if info.name not in HIDDEN:
        raise SpecError(
            f"architecture 'fc' has no network for dataset {info.name!r} (the paper runs no "
            f"fully-connected net there); use it with: {', '.join(sorted(HIDDEN))}"
        )
    widths = [math.prod(info.input_shape), *HIDDEN[info.name], info.num_classes]
    layers = [
        Layer(nn.Linear(n_in, n_out), hidden=i < len(widths) - 2, flatten=i == 0)
        for i, (n_in, n_out) in enumerate(zip(widths[:-1], widths[1:], strict=False))
    ]
    return glorot_(Stack(layers, info))


fully_connected.datasets = tuple(HIDDEN)  # type: ignore[attr-defined]

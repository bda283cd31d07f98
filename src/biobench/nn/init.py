"""Initialisation, as in the paper: Glorot (Xavier) uniform weights, zero biases.

Glorot's bound sqrt(6 / (fan_in + fan_out)) needs each op's fans. For a dense layer they are its
input and output widths; for a convolution and a locally-connected layer, channels times kernel
area (per output position: an LC filter sees what a conv filter sees). An op that is neither
Linear nor Conv2d declares its own with a `glorot_fans()` method.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


def glorot_fans(op: nn.Module) -> tuple[int, int]:
    if hasattr(op, "glorot_fans"):
        return op.glorot_fans()
    if isinstance(op, nn.Linear):
        return op.in_features, op.out_features
    if isinstance(op, nn.Conv2d):
        area = math.prod(op.kernel_size)
        return op.in_channels // op.groups * area, op.out_channels * area
    raise TypeError(f"no Glorot fans known for {type(op).__name__}")


@torch.no_grad()
def glorot_uniform_(tensor: Tensor, fan_in: int, fan_out: int) -> Tensor:
    bound = math.sqrt(6.0 / (fan_in + fan_out))
    return tensor.uniform_(-bound, bound)


def glorot_like(op: nn.Module) -> Tensor:
    """A new tensor shaped like `op.weight`, Glorot-initialised with the op's fans.

    Feedback alignment's fixed random feedback weights B are drawn this way.
    """
    return glorot_uniform_(torch.empty_like(op.weight), *glorot_fans(op))


@torch.no_grad()
def glorot_(module: nn.Module) -> nn.Module:
    """Glorot-uniform the weight and zero the bias of every op in `module`; returns it."""
    for op in module.modules():
        if isinstance(op, nn.Linear | nn.Conv2d) or hasattr(op, "glorot_fans"):
            glorot_uniform_(op.weight, *glorot_fans(op))
            if getattr(op, "bias", None) is not None:
                op.bias.zero_()
    return module

"""A network as a Stack: an ordered list of layers, each an op followed by an activation.

Learners other than backprop need to walk the network layer by layer (feedback alignment sends
a signal down through each layer, target propagation builds an inverse per layer), so the paper's
networks are not opaque `nn.Sequential`s but a list of `Layer`s with the pre-activation exposed
and each layer's input and output shapes known.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn


@dataclass(frozen=True)
class DataInfo:
    """What an architecture needs to know about its dataset."""

    name: str
    input_shape: tuple[int, int, int]  # (C, H, W)
    num_classes: int


class Layer(nn.Module):
    """h_l = f(op(h_{l-1})) with f = tanh for hidden layers and the identity for the output.

    A dense op after image-shaped layers flattens its input (`flatten`); `input_shape` and
    `output_shape` are per sample and are filled in by the Stack.
    """

    def __init__(self, op: nn.Module, *, hidden: bool, flatten: bool = False) -> None:
        super().__init__()
        self.op = op
        self.hidden = hidden
        self.flatten = flatten
        self.input_shape: tuple[int, ...] = ()
        self.output_shape: tuple[int, ...] = ()

    def preactivation(self, h: Tensor) -> Tensor:
        return self.op(h.flatten(1) if self.flatten else h)

    def activate(self, a: Tensor) -> Tensor:
        return torch.tanh(a) if self.hidden else a

    def forward(self, h: Tensor) -> Tensor:
        return self.activate(self.preactivation(h))

    @property
    def units(self) -> int:
        return math.prod(self.output_shape)


def tanh_derivative(h: Tensor) -> Tensor:
    """tanh'(a) from h = tanh(a), without keeping a."""
    return 1 - h * h


class Stack(nn.Module):
    def __init__(self, layers: list[Layer], info: DataInfo) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.info = info
        with torch.no_grad():  # one sample through the net records every layer's shapes
            h = torch.zeros(1, *info.input_shape)
            for layer in layers:
                layer.input_shape = tuple(h.shape[1:])
                h = layer(h)
                layer.output_shape = tuple(h.shape[1:])

    def forward(self, x: Tensor) -> Tensor:
        for layer in self.layers:
            x = layer(x)
        return x

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

"""A network as a Stack: an ordered list of layers, each an op followed by its activation.

Learners other than backprop need to walk the network layer by layer (feedback alignment sends
a signal down through each layer, target propagation builds an inverse per layer), so the paper's
networks are not opaque `nn.Sequential`s but a list of `Layer`s with the pre-activation exposed
and each layer's input and output shapes known. A layer's op brings its transpose
(`biobench.nn.ops`) and its activation brings its derivative (`biobench.nn.activations`).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from biobench.nn.activations import Activation
from biobench.registry import DataInfo


class Layer(nn.Module):
    """h_l = f_l(op_l(h_{l-1})): the paper's hidden layers take f = Tanh(), the output Identity().

    A dense op after image-shaped layers flattens its input (`flatten`); `input_shape` and
    `output_shape` are per sample and are filled in by the Stack.
    """

    def __init__(self, op: nn.Module, activation: Activation, *, flatten: bool = False) -> None:
        super().__init__()
        self.op = op
        self.activation = activation
        self.flatten = flatten
        self.input_shape: tuple[int, ...] = ()
        self.output_shape: tuple[int, ...] = ()

    def preactivation(self, h: Tensor) -> Tensor:
        return self.op(h.flatten(1) if self.flatten else h)

    def forward(self, h: Tensor) -> Tensor:
        return self.activation(self.preactivation(h))

    @property
    def units(self) -> int:
        return math.prod(self.output_shape)


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

"""A network as a Stack: an ordered list of layers, each an op followed by an activation.

Learners other than backprop need to walk the network layer by layer (feedback alignment sends
a signal down through each layer, target propagation builds an inverse per layer), so the paper's
networks are not opaque `nn.Sequential`s but a list of `Layer`s with the pre-activation exposed.
"""

from __future__ import annotations

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
    """h_l = f(op(h_{l-1})) with f = tanh for hidden layers and the identity for the output."""

    def __init__(self, op: nn.Module, *, hidden: bool, flatten: bool = False) -> None:
        super().__init__()
        self.op = op
        self.hidden = hidden  # hidden layers are tanh; the output layer gives logits
        self.flatten = flatten  # the first dense layer after images flattens its input

    def preactivation(self, h: Tensor) -> Tensor:
        return self.op(h.flatten(1) if self.flatten else h)

    def forward(self, h: Tensor) -> Tensor:
        a = self.preactivation(h)
        return torch.tanh(a) if self.hidden else a


class Stack(nn.Module):
    def __init__(self, layers: list[Layer], info: DataInfo) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.info = info

    def forward(self, x: Tensor) -> Tensor:
        for layer in self.layers:
            x = layer(x)
        return x

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

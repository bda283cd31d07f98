"""Activations a Layer carries, each with the derivative the non-backprop learners need.

Feedback alignment multiplies the signal arriving at a layer's output by f'(a) itself (autograd
never sees two layers at once), so an activation brings `derivative(a, h)`: f'(a) given both the
pre-activation a and the output h = f(a). Both are passed because which is exact and cheap
differs: tanh' = 1 - h^2 and ReLU' = [h > 0] come from the output alone (as BP's own tanh and
ReLU backward do), while an activation that cannot be inverted from its output, GELU, needs a.
A target-propagation inverse g_l ends in the activation of the space it maps into.

They are modules without parameters, so a network prints with them and its state_dict is that
of its ops alone.
"""

from __future__ import annotations

import math
from abc import abstractmethod

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class Activation(nn.Module):
    """h = f(a), elementwise; subclasses give `forward` and `derivative`."""

    @abstractmethod
    def forward(self, a: Tensor) -> Tensor: ...

    @abstractmethod
    def derivative(self, a: Tensor, h: Tensor) -> Tensor:
        """f'(a), elementwise, where h = f(a) (either may be the cheaper or exact source)."""


class Tanh(Activation):
    """The paper's activation for every hidden layer."""

    def forward(self, a: Tensor) -> Tensor:
        return torch.tanh(a)

    def derivative(self, a: Tensor, h: Tensor) -> Tensor:
        return 1 - h * h


class ReLU(Activation):
    def forward(self, a: Tensor) -> Tensor:
        return torch.relu(a)

    def derivative(self, a: Tensor, h: Tensor) -> Tensor:
        # h > 0 exactly where a > 0; at a = 0 the derivative is 0, as in torch's ReLU backward.
        return (h > 0).to(h.dtype)


_GELU_C = math.sqrt(2 / math.pi)
_GELU_K = 0.044715


class GELU(Activation):
    """GELU in its tanh form, x/2 (1 + tanh(c (x + 0.044715 x^3))), c = sqrt(2/pi): what
    jax.nn.gelu computes by default, so PCX's VGG nets (biobench.archs.vgg) use it."""

    def forward(self, a: Tensor) -> Tensor:
        return F.gelu(a, approximate="tanh")

    def derivative(self, a: Tensor, h: Tensor) -> Tensor:
        # Not invertible from h (GELU dips below zero), so from a: with u = c (a + k a^3),
        # d/da [a/2 (1 + tanh u)] = (1 + tanh u)/2 + a/2 (1 - tanh^2 u) c (1 + 3k a^2).
        t = torch.tanh(_GELU_C * (a + _GELU_K * a**3))
        return 0.5 * (1 + t) + 0.5 * a * (1 - t * t) * _GELU_C * (1 + 3 * _GELU_K * a * a)


class Identity(Activation):
    """The output layer's: its pre-activations are the logits."""

    def forward(self, a: Tensor) -> Tensor:
        return a

    def derivative(self, a: Tensor, h: Tensor) -> Tensor:
        return torch.ones_like(a)

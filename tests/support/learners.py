"""Tiny networks, batches and rules for the learners' tests, in float64."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from biobench.archs import DataInfo, Layer, Stack, build_network
from biobench.learners.base import Learner
from biobench.nn import Dense, Identity, Tanh, glorot_
from biobench.registry import ALGORITHMS

TINY = DataInfo("synthetic", (1, 8, 8), 10)
# One step on a tiny net must move every trainable tensor, so target propagation runs in
# parallel mode (inverses and forward weights in one step) and AO-SDTP with few features.
SMALL = {"mode": "parallel", "aux_units": 16}


def hparams(algorithm: str) -> dict:
    """The rule's declared defaults: a rule added to the registry is tested as it is."""
    declared = ALGORITHMS.entry(algorithm).hparams
    return {name: SMALL.get(name, param.default) for name, param in declared.items()}


def net64(arch: str, seed: int = 0):
    torch.manual_seed(seed)
    return build_network(arch, TINY).double()


def batch(n: int = 5):
    generator = torch.Generator().manual_seed(2)
    x = torch.randn(n, 1, 8, 8, generator=generator, dtype=torch.float64)
    return x, torch.arange(n) % 10


class LogitsFromImages(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return x.flatten(1)


class StillLearner(Learner):
    def __init__(self) -> None:
        super().__init__(LogitsFromImages(), {})

    def train_step(self, x: Tensor, y: Tensor) -> dict[str, Tensor]:
        return {}


WIDTHS = [4, 5, 5, 4, 3]


def tiny_tp_net() -> Stack:
    torch.manual_seed(0)
    layers = [
        Layer(Dense(a, b), Tanh() if i < 3 else Identity(), flatten=i == 0)
        for i, (a, b) in enumerate(zip(WIDTHS[:-1], WIDTHS[1:], strict=True))
    ]
    net = glorot_(Stack(layers, DataInfo("tiny", (1, 2, 2), 3))).double()
    with torch.no_grad():  # non-zero biases, so a bias mix-up cannot hide
        for layer in net.layers:
            layer.op.bias.uniform_(-0.3, 0.3)
    return net

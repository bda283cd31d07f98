"""Tiny networks, batches and rules for the learners' tests, in float64."""

from __future__ import annotations

import torch
import torch.nn.functional as F
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


def batch(n: int = 5, seed: int = 2) -> tuple[Tensor, Tensor]:
    """n random float64 8x8 images (the generator seeded with `seed`), labels 0, 1, 2, ..."""
    generator = torch.Generator().manual_seed(seed)
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


def grads_after_step(learner, x, y) -> list[torch.Tensor]:
    """The gradients a rule's step leaves on the net's parameters, the update itself skipped."""
    for optimizer in learner.optimizers().values():
        optimizer.step = lambda *a, **k: None  # keep the gradients, skip the update
    learner.train_step(x, y)
    return [p.grad.clone() for p in learner.net.parameters()]


def bp_grads(net, x, y) -> list[torch.Tensor]:
    """Backprop's gradients of the cross-entropy, for the identities rules are checked by."""
    net.zero_grad()
    F.cross_entropy(net(x), y).backward()
    return [p.grad.clone() for p in net.parameters()]


def resnet64(seed: int = 0):
    """ResNet-20 at the digits' 8x8 in float64, its BN scales and shifts away from 1 and 0 so
    that a mix-up of the two cannot hide."""
    torch.manual_seed(seed)
    net = build_network("resnet20", DataInfo("digits", (1, 8, 8), 10)).double()
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.2, 0.2)
    return net

"""Backprop: the baseline every other learning rule is measured against.

On a `conv` network this is the paper's BP-ConvNet; on `resnet20`, biotorch's BP baseline. The
code is the same: autograd through whatever network it is given.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from biobench.learners.base import OPTIMIZER, Learner, make_optimizer
from biobench.registry import ALGORITHMS


@ALGORITHMS.register("bp", aliases=("backprop",), label="BP", family="backprop", order=70)
class Backprop(Learner):
    hparams = OPTIMIZER
    networks = "any"  # plain autograd

    def __init__(self, net: nn.Module, hp: Mapping[str, Any]) -> None:
        super().__init__(net, hp)
        self.optimizer = make_optimizer(net.parameters(), self.hp)

    def train_step(self, x: Tensor, y: Tensor) -> dict[str, Tensor]:
        loss = F.cross_entropy(self.net(x), y)
        self.clock.lap("forward")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()  # exact gradients: delta_l = W_{l+1}^T delta_{l+1} * tanh'(a_l)
        self.clock.lap("signal")
        self.optimizer.step()
        self.clock.lap("update")
        return {"loss": loss.detach()}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"forward": self.optimizer}

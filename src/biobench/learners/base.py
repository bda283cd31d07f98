"""The Learner protocol, and the typed hyperparameters a learner declares.

A learner owns a network (a Stack) and everything needed to train it with one learning rule:
optimisers, and later feedback matrices and inverse networks. The training loop only calls the
methods below and never asks which algorithm it is driving.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, ClassVar

import torch
from torch import Tensor

from biobench.archs.stack import Stack
from biobench.params import HParam

# Adam, the paper's optimiser for every method (Table 4 gives its search space).
ADAM: dict[str, HParam] = {
    "lr": HParam(float, "Adam learning rate", low=0.0, low_open=True),
    "beta1": HParam(float, "Adam beta1", low=0.0, high=1.0, high_open=True),
    "beta2": HParam(float, "Adam beta2", low=0.0, high=1.0, high_open=True),
    "eps": HParam(float, "Adam epsilon", low=0.0, low_open=True),
}


def adam(parameters: Any, hp: Mapping[str, Any], prefix: str = "") -> torch.optim.Adam:
    """An Adam optimiser from hyperparameters named `{prefix}lr`, `{prefix}beta1`, ..."""
    return torch.optim.Adam(
        parameters,
        lr=hp[f"{prefix}lr"],
        betas=(hp[f"{prefix}beta1"], hp[f"{prefix}beta2"]),
        eps=hp[f"{prefix}eps"],
    )


class Learner(ABC):
    """One learning rule applied to one network.

    Subclasses declare `hparams` (name -> HParam) and implement `train_step`. Every
    hyperparameter they declare arrives in `hp`, validated; none other does.
    """

    hparams: ClassVar[dict[str, HParam]] = {}

    def __init__(self, net: Stack, hp: Mapping[str, Any]) -> None:
        self.net = net
        self.hp = dict(hp)

    @abstractmethod
    def train_step(self, x: Tensor, y: Tensor) -> dict[str, Tensor]:
        """Update the network on one minibatch; return detached scalars, at least "loss"."""

    @torch.no_grad()
    def logits(self, x: Tensor) -> Tensor:
        """The network's output for evaluation (no learning-rule machinery involved)."""
        return self.net(x)

    def on_epoch_start(self, epoch: int) -> None:  # noqa: B027 - optional hook
        """Called before each epoch (1-based); alternating target propagation switches here."""

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {}

    def state_dict(self) -> dict[str, Any]:
        return {
            "net": self.net.state_dict(),
            "optimizers": {k: o.state_dict() for k, o in self.optimizers().items()},
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.net.load_state_dict(state["net"])
        for key, optimizer in self.optimizers().items():
            optimizer.load_state_dict(state["optimizers"][key])

"""The Learner protocol, and the layer-local machinery the bio-motivated learners share.

A learner owns a network (a Stack) and everything needed to train it with one learning rule:
optimisers, feedback matrices, inverse networks. The training loop only calls the methods of
`Learner` and never asks which algorithm it is driving.

Weight transport is ruled out by construction: the non-backprop learners run the network one
layer at a time on detached inputs (`local_forward`), so no autograd graph spans two layers, and
every gradient they take goes through `local_backward`/`local_grad`, which refuse a graph that
reaches any parameter outside the set the rule allows (a layer's own weights, say).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor

from biobench.archs.stack import Stack
from biobench.spec.params import HParam

# Adam, the paper's optimiser for every method (Table 4 gives its search space).
# The defaults are what a run takes where neither a preset nor --set gives a value.
ADAM: dict[str, HParam] = {
    "lr": HParam(float, "Adam learning rate", low=0.0, low_open=True, default=1e-3),
    "beta1": HParam(float, "Adam beta1", low=0.0, high=1.0, high_open=True, default=0.9),
    "beta2": HParam(float, "Adam beta2", low=0.0, high=1.0, high_open=True, default=0.999),
    "eps": HParam(float, "Adam epsilon", low=0.0, low_open=True, default=1e-8),
}


def adam(parameters: Any, hp: Mapping[str, Any], prefix: str = "") -> torch.optim.Adam:
    """An Adam optimiser from hyperparameters named `{prefix}lr`, `{prefix}beta1`, ...

    The fused implementation: one kernel over all parameters instead of a loop of small ops,
    about twice as fast a training step for the 50 M-parameter CIFAR-10 LC net on a CPU.
    """
    return torch.optim.Adam(
        parameters,
        lr=hp[f"{prefix}lr"],
        betas=(hp[f"{prefix}beta1"], hp[f"{prefix}beta2"]),
        eps=hp[f"{prefix}eps"],
        fused=True,
    )


class Learner(ABC):
    """One learning rule applied to one network.

    Subclasses declare `hparams` (name -> HParam, each with its default) and implement
    `train_step` and `optimizers`. Every hyperparameter they declare arrives in `hp`,
    validated; none other does. `label`, `family` and `order` describe the rule in tables; a
    registration (decorator or entry point) reads them when it does not give its own.
    """

    hparams: ClassVar[dict[str, HParam]] = {}
    label: ClassVar[str] = ""  # how tables name the rule (default: its registered name)
    family: ClassVar[str] = "other"  # backprop, feedback, target-propagation or other
    order: ClassVar[int] = 1000  # position in tables (BP is 70, the paper's rules below it)

    def __init__(self, net: Stack, hp: Mapping[str, Any]) -> None:
        self.net = net
        self.hp = dict(hp)

    @abstractmethod
    def train_step(self, x: Tensor, y: Tensor) -> dict[str, Tensor]:
        """Update the network on one minibatch; return detached scalars of what the step
        computed (e.g. "loss"). The loop does not read them: they are for callers and tests."""

    @torch.no_grad()
    def logits(self, x: Tensor) -> Tensor:
        """The network's output for evaluation (no learning-rule machinery involved)."""
        return self.net(x)

    def epoch_phases(self, epoch: int) -> tuple[str, ...]:
        """The passes over the training set that make up one reported epoch (1-based).

        One pass by default; alternating target propagation makes two (inverse, forward).
        """
        return ("train",)

    def start_phase(self, phase: str) -> None:  # noqa: B027 - optional hook
        """Called before each pass with one of the names `epoch_phases` returned."""

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


class WeightTransportError(RuntimeError):
    """A learning rule tried to send a gradient through weights it must not use."""


def reachable_parameters(output: Tensor) -> set[int]:
    """ids of the leaf tensors that `output`'s autograd graph reaches."""
    leaves: set[int] = set()
    seen: set[Any] = set()
    pending = [output.grad_fn]
    while pending:
        node = pending.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        variable = getattr(node, "variable", None)  # AccumulateGrad nodes hold their leaf
        if variable is not None:
            leaves.add(id(variable))
        pending.extend(child for child, _ in node.next_functions)
    return leaves


def _check_local(output: Tensor, allowed: Iterable[Tensor], what: str) -> list[Tensor]:
    allowed = list(allowed)
    extra = reachable_parameters(output) - {id(p) for p in allowed}
    if extra:
        raise WeightTransportError(
            f"{what}: the graph reaches {len(extra)} tensor(s) outside the allowed parameters"
        )
    return allowed


def local_backward(output: Tensor, grad: Tensor | None, params: Iterable[Tensor]) -> None:
    """Accumulate d(output)/d(params) into `params`' .grad; no other parameter may be reached."""
    params = _check_local(output, params, "local_backward")
    torch.autograd.backward(output, grad, inputs=params)


def local_grad(output: Tensor, wrt: Tensor, allowed: Iterable[Tensor]) -> Tensor:
    """d(output)/d(wrt) through a graph that may reach only `allowed` parameters (and `wrt`)."""
    _check_local(output, [*allowed, wrt], "local_grad")
    (grad,) = torch.autograd.grad(output, wrt)
    return grad


@dataclass
class Trace:
    """One forward pass, layer by layer: h_{l-1} (detached), a_l and h_l (local graphs)."""

    inputs: list[Tensor]
    pre: list[Tensor]
    out: list[Tensor]


def local_forward(net: Stack, x: Tensor) -> Trace:
    """Run the net with every layer's input detached, so each graph spans one layer only."""
    trace = Trace([], [], [])
    h = x
    for layer in net.layers:
        h_in = h.detach()
        a = layer.preactivation(h_in)
        h = layer.activation(a)
        trace.inputs.append(h_in)
        trace.pre.append(a)
        trace.out.append(h)
    return trace


def output_error(logits: Tensor, y: Tensor) -> Tensor:
    """e = dL/dlogits for the batch-mean cross-entropy: (softmax(logits) - onehot(y)) / N."""
    probabilities = torch.softmax(logits.detach(), dim=1)
    onehot = torch.nn.functional.one_hot(y, logits.shape[1]).to(probabilities.dtype)
    return (probabilities - onehot) / len(y)

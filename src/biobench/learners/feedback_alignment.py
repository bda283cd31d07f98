"""Feedback alignment (FA) and direct feedback alignment (DFA).

Both keep backprop's local weight update, dW_l = delta_l h_{l-1}^T, but replace how the error
reaches a hidden layer. With e = dL/dlogits (the output layer's delta) and f_l layer l's
activation (tanh in the paper's nets):

    BP:   delta_{l-1} = (W_l^T delta_l) * f_{l-1}'(a_{l-1})
    FA:   delta_{l-1} = (B_l^T delta_l) * f_{l-1}'(a_{l-1})    B_l fixed random, W_l's shape
    DFA:  delta_l     = (D_l e)         * f_l'(a_l)            D_l fixed random, units_l x classes

"B_l^T delta" is the layer op's own transpose with B_l in place of W_l: a matrix product for a
dense layer, a transposed convolution for a conv layer, the transposed LC op for a
locally-connected layer, so the feedback has the forward layer's own sparsity. f' comes from the
layer's activation. B and D are drawn once with the forward weights' Glorot initialisation and
never trained (paper-notes §2).
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from biobench.archs.stack import Stack
from biobench.learners.base import (
    ADAM,
    Learner,
    Trace,
    adam,
    local_backward,
    local_forward,
    output_error,
)
from biobench.nn import glorot_like, glorot_uniform_
from biobench.nn.ops import transpose
from biobench.registry import ALGORITHMS


class _FeedbackLearner(Learner):
    """A backward sweep in which each layer's delta comes from `delta_below`, never from W."""

    hparams = ADAM

    def __init__(self, net: Stack, hp: Mapping[str, Any]) -> None:
        super().__init__(net, hp)
        self.optimizer = adam(net.parameters(), self.hp)
        self.feedback: list[Tensor] = []

    @abstractmethod
    def delta_below(self, l: int, delta: Tensor, e: Tensor, trace: Trace) -> Tensor:
        """The delta of layer l-1 (0-based) from layer l's delta and the output error e."""

    def through_activation(self, l: int, signal: Tensor, trace: Trace) -> Tensor:
        """delta_l = signal * f_l'(a_l) for a signal arriving at layer l's output."""
        layer = self.net.layers[l]
        slope = layer.activation.derivative(trace.pre[l].detach(), trace.out[l].detach())
        return signal.reshape(-1, *layer.output_shape) * slope

    def train_step(self, x: Tensor, y: Tensor) -> dict[str, Tensor]:
        trace = local_forward(self.net, x)
        logits = trace.pre[-1]
        e = output_error(logits, y)
        self.optimizer.zero_grad(set_to_none=True)
        delta = e
        for l in reversed(range(len(self.net.layers))):
            # dW_l = delta_l h_{l-1}^T (and db_l = sum delta_l): autograd of the layer's own op.
            local_backward(trace.pre[l], delta, self.net.layers[l].parameters())
            if l > 0:
                delta = self.delta_below(l, delta, e, trace)
        self.optimizer.step()
        return {"loss": F.cross_entropy(logits.detach(), y)}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"forward": self.optimizer}

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "feedback": [b.clone() for b in self.feedback]}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_state_dict(state)
        for mine, saved in zip(self.feedback, state["feedback"], strict=True):
            mine.copy_(saved)


@ALGORITHMS.register(
    "fa", aliases=("feedback-alignment",), label="FA", family="feedback", order=50
)
class FeedbackAlignment(_FeedbackLearner):
    def __init__(self, net: Stack, hp: Mapping[str, Any]) -> None:
        super().__init__(net, hp)
        # B_l for every layer but the first (nothing is sent below the input): feedback[l - 1].
        self.feedback = [glorot_like(layer.op) for layer in net.layers[1:]]

    def delta_below(self, l: int, delta: Tensor, e: Tensor, trace: Trace) -> Tensor:
        signal = transpose(self.net.layers[l].op, delta, self.feedback[l - 1])
        return self.through_activation(l - 1, signal, trace)


@ALGORITHMS.register(
    "dfa", aliases=("direct-feedback-alignment",), label="DFA", family="feedback", order=60
)
class DirectFeedbackAlignment(_FeedbackLearner):
    def __init__(self, net: Stack, hp: Mapping[str, Any]) -> None:
        super().__init__(net, hp)
        classes = net.layers[-1].units
        weight = net.layers[-1].op.weight
        # D_l (units_l x classes) for every hidden layer, Glorot with fans (classes, units_l).
        self.feedback = [
            glorot_uniform_(weight.new_empty(layer.units, classes), classes, layer.units)
            for layer in net.layers[:-1]
        ]

    def delta_below(self, l: int, delta: Tensor, e: Tensor, trace: Trace) -> Tensor:
        signal = e @ self.feedback[l - 1].T  # straight from the output error, skipping layer l
        return self.through_activation(l - 1, signal, trace)

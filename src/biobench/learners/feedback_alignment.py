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

On a network that is not a Stack (resnet20) the whole net runs under autograd and each conv and
dense op's input gradient is rerouted (biobench.nn.feedback), as biotorch does: op l sends
op_l^T(g_l; B_l) below instead of op_l^T(g_l; W_l), g_l being the gradient arriving at its
output, while batch norm, ReLU and the skip connections keep their exact backward. Every rule
of this family only says which B_l (`feedback_weight`). DFA there is biotorch's: op l sends
op_l^T(e; B_l) below, the output error e (N x classes) broadcast over op l's output positions
and B_l of W_l's shape with `classes` output channels, so each op's input receives a fixed
random projection of e directly (which then passes the exact backward of the batch norm and
ReLU below it, and the skip connections add the signal arriving from above).
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Mapping
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from biobench.archs.stack import Stack
from biobench.learners.base import (
    OPTIMIZER,
    Learner,
    Trace,
    direct_layers,
    layer_grads,
    local_forward,
    make_optimizer,
    output_error,
    weighted_ops,
)
from biobench.nn import glorot_like, glorot_uniform_
from biobench.nn.feedback import Port
from biobench.nn.ops import transpose
from biobench.registry import ALGORITHMS


class _FeedbackLearner(Learner):
    """A backward sweep in which each layer's delta comes from `delta_below`, never from W."""

    hparams = OPTIMIZER
    networks = "any"  # a non-Stack net trains with each op's backward rerouted (below)

    def __init__(self, net: nn.Module, hp: Mapping[str, Any]) -> None:
        super().__init__(net, hp)
        self.optimizer = make_optimizer(net.parameters(), self.hp)
        self.feedback: list[Tensor] = []
        self.ops = weighted_ops(net)
        self.stacked = isinstance(net, Stack)
        if not self.stacked:
            # Every op's backward is rerouted, so none keeps W for it; the first op's port
            # stays empty (its input is the data: nothing is sent below it).
            self.ops[0].port = Port()
            self.ports = [Port() for _ in self.ops[1:]]
            for op, port in zip(self.ops[1:], self.ports, strict=True):
                op.port = port

    @abstractmethod
    def feedback_weight(self, l: int) -> Tensor:
        """B_l, which op l (0-based, l >= 1) sends its signal below through."""

    def feedback_weights(self) -> dict[int, Tensor]:
        return {l: self.feedback_weight(l) for l in range(1, len(self.ops))}

    def direct_signal(self, e: Tensor) -> Tensor | None:
        """What every op sends below on a non-Stack net, for the direct rules (DFA, DRTP);
        None: the gradient arriving at the op's output (FA and its variants)."""
        return None

    def delta_below(self, l: int, delta: Tensor, e: Tensor, trace: Trace) -> Tensor:
        """The delta of layer l-1 (0-based) from layer l's delta and the output error e."""
        signal = transpose(self.ops[l], delta, self.feedback_weight(l))
        return self.through_activation(l - 1, signal, trace)

    def through_activation(self, l: int, signal: Tensor, trace: Trace) -> Tensor:
        """delta_l = signal * f_l'(a_l) for a signal arriving at layer l's output."""
        layer = self.net.layers[l]
        slope = layer.activation.derivative(trace.pre[l].detach(), trace.out[l].detach())
        return signal.reshape(-1, *layer.output_shape) * slope

    def train_step(self, x: Tensor, y: Tensor) -> dict[str, Tensor]:
        if not self.stacked:
            return self.rerouted_step(x, y)
        direct = direct_layers(self.net)
        trace = local_forward(self.net, x, graphs=[not d for d in direct])
        logits = trace.pre[-1]
        e = output_error(logits, y)
        self.clock.lap("forward")
        self.optimizer.zero_grad(set_to_none=True)
        deltas = [e]
        for l in range(len(self.net.layers) - 1, 0, -1):
            deltas.insert(0, self.delta_below(l, deltas[0], e, trace))
        # dW_l = delta_l h_{l-1}^T (and db_l = sum delta_l): each layer's own op computes it
        # (dense), or autograd of that op alone, every such layer in one backward call.
        layer_grads(self.net, trace, deltas, direct)
        self.clock.lap("signal")
        self.optimizer.step()
        self.clock.lap("update")
        return {"loss": F.cross_entropy(logits.detach(), y)}

    def rerouted_step(self, x: Tensor, y: Tensor) -> dict[str, Tensor]:
        """One step on a non-Stack net: autograd with every op's input gradient rerouted."""
        logits = self.net(x)
        e = output_error(logits, y)
        signal = self.direct_signal(e)
        for l, port in enumerate(self.ports, start=1):
            port.weight, port.signal = self.feedback_weight(l), signal
        self.clock.lap("forward")
        self.optimizer.zero_grad(set_to_none=True)
        torch.autograd.backward(logits, e)  # e = dL/dlogits for the batch-mean loss
        self.clock.lap("signal")
        self.optimizer.step()
        self.clock.lap("update")
        for port in self.ports:  # nothing of this step's is kept beyond it
            port.weight = port.signal = None
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
    def __init__(self, net: nn.Module, hp: Mapping[str, Any]) -> None:
        super().__init__(net, hp)
        # B_l for every layer but the first (nothing is sent below the input): feedback[l - 1].
        self.feedback = [glorot_like(op) for op in self.ops[1:]]

    def feedback_weight(self, l: int) -> Tensor:
        return self.feedback[l - 1]


def direct_feedback(op: nn.Module, classes: int) -> Tensor:
    """B_l for DFA on a non-Stack net: W_l's shape with `classes` output channels, Glorot
    with the fans of that shape (biotorch's xavier_uniform_ of its weight_backward)."""
    weight = op.weight
    area = weight[0, 0].numel()
    shape = (classes, *weight.shape[1:])
    fans = (weight.shape[1] * area, classes * area)
    return glorot_uniform_(weight.new_empty(shape), *fans)


class _DirectLearner(_FeedbackLearner):
    """DFA and DRTP: a fixed random projection per hidden layer of one signal from the top."""

    def __init__(self, net: nn.Module, hp: Mapping[str, Any]) -> None:
        super().__init__(net, hp)
        classes = self.ops[-1].weight.shape[0]
        if self.stacked:
            weight = self.ops[-1].weight
            # D_l (units_l x classes) for every hidden layer, Glorot with fans (classes, units_l).
            self.feedback = [
                glorot_uniform_(weight.new_empty(layer.units, classes), classes, layer.units)
                for layer in net.layers[:-1]
            ]
        else:
            self.feedback = [direct_feedback(op, classes) for op in self.ops[1:]]

    def feedback_weight(self, l: int) -> Tensor:
        return self.feedback[l - 1]

    def feedback_weights(self) -> dict[int, Tensor]:
        return {}  # D_l projects the output error, not op l's signal: nothing to set beside W_l


@ALGORITHMS.register(
    "dfa", aliases=("direct-feedback-alignment",), label="DFA", family="feedback", order=60
)
class DirectFeedbackAlignment(_DirectLearner):
    constructions: ClassVar[dict[str, str]] = {
        "resnet20": "biotorch's construction (Sanfiz & Akrout 2021): every conv's input gradient "
        "is a fixed random projection of the output error"
    }

    def delta_below(self, l: int, delta: Tensor, e: Tensor, trace: Trace) -> Tensor:
        signal = e @ self.feedback[l - 1].T  # straight from the output error, skipping layer l
        return self.through_activation(l - 1, signal, trace)

    def direct_signal(self, e: Tensor) -> Tensor:
        return e

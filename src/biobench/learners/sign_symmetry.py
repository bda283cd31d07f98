"""Sign-concordant feedback: uSF, brSF and frSF (Liao, Leibo & Poggio 2016; Xiao et al. 2018),
as biotorch defines them (Sanfiz & Akrout 2021).

Feedback alignment's backward sweep (see feedback_alignment.py) with a feedback weight that
shares the forward weight's signs, and FA's local update dW_l = delta_l h_{l-1}^T:

    delta_{l-1} = (B_l^T delta_l) * f_{l-1}'(a_{l-1}),    B_l = M_l o sign(W_l)
    uSF  (uniform):                  M_l = sqrt(2 / (fan_in + fan_out)), one scalar per layer
    brSF (batchwise random magnitude): M_l = |R_l|, R_l Glorot-uniform, redrawn every minibatch
    frSF (fixed random magnitude):     M_l = |R_l|, R_l Glorot-uniform, drawn once and fixed

What biotorch does and biobench matches (biotorch/layers/fa_constructor/linear.py and conv.py,
commit 1c6599f): uSF's B is `scaling_factor * sign(W)` with scaling_factor the standard
deviation of the Xavier initialisation, sqrt(2 / (fan_in + fan_out)); brSF's is
`|xavier_uniform_(R)| * sign(W)` with R drawn afresh in every forward pass, i.e. once per
minibatch; frSF's is `|R| * sign(W)` with R drawn by xavier_uniform_ once, at construction. The
sign is taken from W as it is when the minibatch arrives, before that minibatch's update. The
fans are each layer's own Glorot fans (channels x kernel area for conv and LC layers,
biobench.nn.init), as biotorch's for Linear and Conv2d; "B_l^T delta" is the layer op's own
transpose with B_l in place of W_l, so on an LC layer the feedback keeps its sparsity.

These rules are defined with W: they read its signs, not its values. That read is the one
exception to "no weight transport" here, and it is confined: B_l is built from
sign(W_l.detach()), a constant tensor for the step, so no autograd graph reaches W_l, and each
layer's update still goes through local_backward's guard with that layer's own parameters only
(on resnet20, through biobench.nn.feedback's guard, which refuses W itself as feedback).
"""

from __future__ import annotations

import math
from abc import abstractmethod
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from biobench.learners.feedback_alignment import _FeedbackLearner
from biobench.nn import glorot_fans, glorot_like
from biobench.registry import ALGORITHMS


class _SignConcordant(_FeedbackLearner):
    """FA with B_l = M_l o sign(W_l); subclasses give the magnitude M_l."""

    @abstractmethod
    def magnitude(self, l: int) -> Tensor | float:
        """M_l for layer l (0-based, l >= 1): a scalar or a tensor of W_l's shape."""

    def feedback_weight(self, l: int) -> Tensor:
        # The rule's only read of W: its sign, detached, a constant for this step.
        return self.magnitude(l) * torch.sign(self.ops[l].weight.detach())


@ALGORITHMS.register(
    "usf", aliases=("uniform-sign-feedback",), label="uSF", family="feedback", order=51
)
class UniformSignFeedback(_SignConcordant):
    """Sign symmetry: B = sign(W) scaled by the layer's Glorot standard deviation."""

    def __init__(self, net: nn.Module, hp: Mapping[str, Any]) -> None:
        super().__init__(net, hp)
        # sqrt(2 / (fan_in + fan_out)): the std of W's Glorot-uniform draw (biotorch's
        # scaling_factor), so B starts at the size of W rather than +-1, which would explode.
        self.scales = [math.sqrt(2.0 / sum(glorot_fans(op))) for op in self.ops[1:]]

    def magnitude(self, l: int) -> float:
        return self.scales[l - 1]


@ALGORITHMS.register(
    "brsf", aliases=("batchwise-random-sign-feedback",), label="brSF", family="feedback", order=52
)
class BatchwiseRandomSignFeedback(_SignConcordant):
    """Sign-concordant feedback with Glorot random magnitudes redrawn for every minibatch."""

    def magnitude(self, l: int) -> Tensor:
        return glorot_like(self.ops[l]).abs_()


@ALGORITHMS.register(
    "frsf", aliases=("fixed-random-sign-feedback",), label="frSF", family="feedback", order=53
)
class FixedRandomSignFeedback(_SignConcordant):
    """Sign-concordant feedback with Glorot random magnitudes drawn once and fixed."""

    def __init__(self, net: nn.Module, hp: Mapping[str, Any]) -> None:
        super().__init__(net, hp)
        # |R_l| for every layer but the first: fixed, so listed in `feedback` (checkpointed,
        # and what the tests check never changes).
        self.feedback = [glorot_like(op).abs_() for op in self.ops[1:]]

    def magnitude(self, l: int) -> Tensor:
        return self.feedback[l - 1]

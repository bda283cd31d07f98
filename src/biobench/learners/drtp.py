"""Direct random target projection (DRTP; Frenkel, Lefebvre & Bol 2021, "Learning without
feedback: fixed random learning signals allow for feedforward training of deep neural
networks", Frontiers in Neuroscience 15:629892).

Direct feedback alignment with the error replaced by the target. In a classification task the
one-hot target y* already carries the sign of the output error (negative at the true class,
positive elsewhere), so a fixed random projection of y* can stand in for DFA's projection of e:

    DFA:   delta_l = (D_l e)           * f_l'(a_l)
    DRTP:  delta_l = (D_l y* / N)      * f_l'(a_l)       every hidden layer l, D_l fixed random
    output layer: delta_L = e = dL/dlogits, its own error, as in FA and DFA
    every layer:  dW_l = delta_l h_{l-1}^T, the update the optimiser descends (W <- W - ...)

This is the paper's sign convention (delta y_k = B_k^T y* o f'(y_k), dW_k = -eta delta y_k
y_{k-1}^T), and the authors' code's (function.py sets a hidden layer's output gradient to
labels.mm(B)). The signal needs neither the output nor a feedback pass: a hidden layer could
update as soon as its own forward step is done. biobench choices: D_l (units_l x classes) is
drawn once with DFA's Glorot initialisation and never trained; y* is divided by the batch size N
like e (the batch-mean loss's error), which with Adam changes only how eps compares.

On resnet20 DRTP is DFA's rerouted backward (feedback_alignment.py) with y* / N in place of e:
every conv and the dense op send op_l^T(y* / N; B_l) below, broadcast over their outputs.

Default learning rate 5e-3, tuned once on the digits (6 epochs, seed 0): Adam's usual 1e-3
leaves the fc net at chance for three epochs and at 18.6% test error after six (DRTP's hidden
layers are pushed toward fixed class codes from the start, and first saturate). 5e-3 gives
6.9% on fc (5.8 and 7.8 with seeds 1 and 2), 5.6% on conv and 8.1% on lc; 1e-2 stalls again.
"""

from __future__ import annotations

from typing import ClassVar

import torch.nn.functional as F
from torch import Tensor

from biobench.learners.base import OPTIMIZER, Trace
from biobench.learners.feedback_alignment import _DirectLearner
from biobench.registry import ALGORITHMS
from biobench.spec.params import with_defaults


@ALGORITHMS.register(
    "drtp",
    aliases=("direct-random-target-projection",),
    label="DRTP",
    family="feedback",
    order=62,
)
class DirectRandomTargetProjection(_DirectLearner):
    """DFA with the one-hot target in place of the error: no feedback of the output at all."""

    constructions: ClassVar[dict[str, str]] = {
        "resnet20": "biobench's own construction (DFA's on resnet20, projecting the one-hot "
        "target): no published counterpart"
    }

    hparams = with_defaults(OPTIMIZER, lr=5e-3)

    def train_step(self, x: Tensor, y: Tensor) -> dict[str, Tensor]:
        # y* / N for this minibatch, which the hidden layers' deltas project (delta_below).
        weight = self.ops[-1].weight
        self.target = F.one_hot(y, weight.shape[0]).to(weight.dtype) / len(y)
        return super().train_step(x, y)

    def direct_signal(self, e: Tensor) -> Tensor:
        return self.target

    def delta_below(self, l: int, delta: Tensor, e: Tensor, trace: Trace) -> Tensor:
        signal = self.target @ self.feedback[l - 1].T  # from the target, not from layer l
        return self.through_activation(l - 1, signal, trace)

"""Kolen-Pollack (KP): feedback weights that learn the forward weights' own update
(Kolen & Pollack 1994, as revived by Akrout et al. 2019, eqs. 16-17).

The backward sweep is feedback alignment's through B_l (learned_feedback.py) and W_l keeps FA's
update. B_l receives the same update as W_l, with the same weight decay on both. In the
paper's notation, with B_l of W_l^T's shape,

    dW_l = -eta delta_l h_{l-1}^T - lambda W_l,      dB_l = -eta h_{l-1} delta_l^T - lambda B_l,

so dB_l = dW_l^T: both are built from the layer's own local quantities, delta_l (at its
output) and h_{l-1} (at its input), which the feedback synapses see as well. W_l - B_l^T then
shrinks by (1 - lambda) every step whatever the gradients are, and B_l -> W_l^T without W_l
being sent anywhere. biobench stores B_l in W_l's layout (it enters the layer op's transpose in
W_l's place), so here the two updates are literally equal: dB_l = dW_l.

biobench choices: the gradient delta_l h_{l-1}^T (what local_backward leaves in W_l.grad, a
product of delta_l and h_{l-1} that never reads W_l's values) goes to two optimisers of the
declared kind (Adam by default, or SGD) with the same hyperparameters, one for the forward
weights and one for the B's. Both start with empty state and see the same gradients, so their
steps are equal too. The decay is applied by biobench, not by the optimiser, right before each
step, to every W_l and B_l (biases have no feedback twin and are not decayed):

    W_l <- (1 - kp_decay s_t) W_l,   B_l <- (1 - kp_decay s_t) B_l,   then the optimiser's step,

with s_t = the scheduled learning rate over the initial one (1 without a schedule). So exactly
    W_l - B_l  <-  (1 - kp_decay s_t) (W_l - B_l)   every minibatch,
*whatever the optimiser and its rate*: kp_decay is a fraction per step. It used to be AdamW's
decoupled coefficient (a fraction lr * kp_decay per step) and, under SGD, an L2 term that the
momentum buffer amplified: the default 1.0 tuned for Adam's lr 1e-3 then shrank a ResNet-20's
weights by about 5% a step under SGD's lr 0.1 (momentum 0.9) and it trained to chance (issue 22:
89% test error where BP had 9%). With Adam at lr 1e-3 the default, 1e-3, is the old 1.0 exactly.
The default is a compromise measured on the digits (fc, lr 1e-3, 6 epochs): B_l's angle to W_l
falls from 90 degrees to 63-79 at 5.3% test error; 1e-2 brings it to 14-22 degrees but the decay
of W then costs accuracy (14.7%). Over the paper's 500 MNIST epochs (about 230,000 steps) the
default aligns B fully. Biases and batch-norm parameters take `weight_decay` (the optimiser's
own); on resnet20, the ops' B_l are those of every conv and the dense op (biobench.nn.feedback).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from biobench.learners.base import OPTIMIZER, make_optimizer
from biobench.learners.learned_feedback import LearnedFeedback
from biobench.registry import ALGORITHMS
from biobench.spec.params import HParam

KP_DECAY = HParam(
    float,
    "fraction W and B shrink by a step, whatever the optimiser (times the lr schedule's factor):"
    " W - B shrinks by 1 - kp_decay a step",
    low=0.0,
    high=1.0,
    high_open=True,
    default=1e-3,
)


@ALGORITHMS.register("kp", aliases=("kolen-pollack",), label="KP", family="feedback", order=54)
class KolenPollack(LearnedFeedback):
    """FA whose feedback B gets W's own update, with weight decay on both: B -> W^T."""

    hparams = {**OPTIMIZER, "kp_decay": KP_DECAY}

    def __init__(self, net: nn.Module, hp: Mapping[str, Any]) -> None:
        super().__init__(net, hp)
        decay, others_decay = self.hp["kp_decay"], self.hp["weight_decay"]
        weights = [op.weight for op in self.ops]
        others = [p for p in net.parameters() if all(p is not w for w in weights)]
        groups = [
            {"params": weights, "weight_decay": 0.0},
            {"params": others, "weight_decay": others_decay},
        ]
        self.optimizer = make_optimizer(groups, self.hp)
        self.feedback_optimizer = make_optimizer(
            [{"params": self.learned, "weight_decay": 0.0}], self.hp
        )
        # The decay, before each optimiser's step: W_l by the forward one's, B_l by its twin's.
        for optimizer, decayed in (
            (self.optimizer, weights),
            (self.feedback_optimizer, self.learned),
        ):
            optimizer.register_step_pre_hook(self._decay_hook(decayed, decay))

    def _decay_hook(self, tensors: list[Tensor], decay: float) -> Any:
        def hook(optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
            if decay == 0.0:
                return
            factor = 1 - decay * optimizer.param_groups[0]["lr"] / self.hp["lr"]
            with torch.no_grad():
                for tensor in tensors:
                    tensor.mul_(factor)

        return hook

    def train_step(self, x: Tensor, y: Tensor) -> dict[str, Tensor]:
        self.feedback_optimizer.zero_grad(set_to_none=True)  # last step's, shared with W's
        metrics = super().train_step(x, y)  # FA's sweep and W's step (W.grad is kept)
        # dB_l = dW_l: the gradient W_l just stepped on, delta_l h_{l-1}^T, given to B_l's own
        # AdamW, whose moments therefore equal W_l's.
        for feedback, op in zip(self.learned, self.ops[1:], strict=True):
            feedback.grad = op.weight.grad
        self.feedback_optimizer.step()
        self.clock.lap("update")  # B's step, W's twin, is part of the update
        return metrics

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"forward": self.optimizer, "feedback": self.feedback_optimizer}

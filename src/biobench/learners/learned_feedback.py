"""Feedback alignment whose feedback weights learn: the machinery Kolen-Pollack and weight
mirrors share (Akrout et al. 2019, "Deep learning without weight transport").

The backward sweep is FA's, delta_{l-1} = (B_l^T delta_l) * f_{l-1}'(a_{l-1}), with B_l of W_l's
shape used in the layer op's own transpose (so "B_l -> W_l" here is the paper's "B -> W^T").
What differs is that B_l changes during training, by a rule of each subclass that reads only
quantities the feedback synapses could see, never W_l itself. A learned B is kept in `learned`,
not in `feedback` (which holds what must never change), and saved with the learner's state so
a resumed run continues with the B it had.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import Tensor, nn

from biobench.learners.feedback_alignment import _FeedbackLearner
from biobench.nn import glorot_like


class LearnedFeedback(_FeedbackLearner):
    """FA through feedback weights B_l (W_l's Glorot initialisation, drawn independently)."""

    def __init__(self, net: nn.Module, hp: Mapping[str, Any]) -> None:
        super().__init__(net, hp)
        # B_l for every layer but the first (nothing is sent below the input): learned[l - 1].
        self.learned = [glorot_like(op) for op in self.ops[1:]]

    def feedback_weight(self, l: int) -> Tensor:
        return self.learned[l - 1]

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "learned_feedback": [b.clone() for b in self.learned]}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_state_dict(state)
        for mine, saved in zip(self.learned, state["learned_feedback"], strict=True):
            mine.copy_(saved)

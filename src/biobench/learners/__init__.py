"""Learning rules. Each module registers its Learner classes in ALGORITHMS."""

from __future__ import annotations

from biobench.learners import bp, feedback_alignment, target_prop
from biobench.learners.base import ADAM, Learner
from biobench.registry import ALGORITHMS
from biobench.spec.params import HParam

__all__ = ["ADAM", "ALGORITHMS", "HParam", "Learner", "bp", "feedback_alignment", "target_prop"]

"""Learning rules. Each module registers its Learner classes in ALGORITHMS."""

from __future__ import annotations

from biobench.learners import (
    bp,
    drtp,
    dtp_drl,
    feedback_alignment,
    kolen_pollack,
    predictive_coding,
    sign_symmetry,
    target_prop,
    weight_mirror,
)
from biobench.learners.base import ADAM, Learner
from biobench.registry import ALGORITHMS
from biobench.spec.params import HParam

__all__ = [
    "ADAM",
    "ALGORITHMS",
    "HParam",
    "Learner",
    "bp",
    "drtp",
    "dtp_drl",
    "feedback_alignment",
    "kolen_pollack",
    "predictive_coding",
    "sign_symmetry",
    "target_prop",
    "weight_mirror",
]

"""Ops shared by every learner: initialisation and the locally-connected op."""

from __future__ import annotations

from biobench.nn.functional import (
    locally_connected2d,
    locally_connected2d_transpose,
    locally_connected2d_weight_grad,
    same_output_size,
)
from biobench.nn.init import glorot_, glorot_fans, glorot_like, glorot_uniform_
from biobench.nn.locally_connected import LocallyConnected2d

__all__ = [
    "LocallyConnected2d",
    "glorot_",
    "glorot_fans",
    "glorot_like",
    "glorot_uniform_",
    "locally_connected2d",
    "locally_connected2d_transpose",
    "locally_connected2d_weight_grad",
    "same_output_size",
]

"""What every learner builds networks from: ops that bring their transpose, activations that
bring their derivative, Glorot initialisation, the locally-connected op and max pooling."""

from __future__ import annotations

from biobench.nn.activations import GELU, Activation, Identity, ReLU, Tanh
from biobench.nn.conv import SameConv2d
from biobench.nn.dense import Dense
from biobench.nn.functional import (
    locally_connected2d,
    locally_connected2d_transpose,
    locally_connected2d_weight_grad,
    same_output_size,
)
from biobench.nn.init import glorot_, glorot_fans, glorot_like, glorot_uniform_
from biobench.nn.locally_connected import LocallyConnected2d
from biobench.nn.ops import transport, transpose
from biobench.nn.pool import MaxPooled

__all__ = [
    "Activation",
    "Dense",
    "GELU",
    "Identity",
    "LocallyConnected2d",
    "MaxPooled",
    "ReLU",
    "SameConv2d",
    "Tanh",
    "glorot_",
    "glorot_fans",
    "glorot_like",
    "glorot_uniform_",
    "locally_connected2d",
    "locally_connected2d_transpose",
    "locally_connected2d_weight_grad",
    "same_output_size",
    "transport",
    "transpose",
]

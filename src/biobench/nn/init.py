"""Initialisation, as in the paper: Glorot (Xavier) uniform weights, zero biases."""

from __future__ import annotations

import torch
from torch import nn


@torch.no_grad()
def glorot_(module: nn.Module) -> nn.Module:
    """Glorot-uniform every weight of `module` (in place) and zero every bias; returns it."""
    for name, parameter in module.named_parameters():
        if name.endswith("bias"):
            parameter.zero_()
        elif parameter.ndim >= 2:
            nn.init.xavier_uniform_(parameter)
    return module

"""The one operation every non-backprop learner needs from a layer's op: its transpose.

`transpose(op, signal, weight)` maps an output-space signal back to the op's input space through
`weight` (any tensor of the op's weight shape), as the vector-Jacobian product of the op would
with that weight. With the op's own weight it is backprop's input gradient; with a fixed random
B it is feedback alignment's feedback; with a learned V it is a target-propagation inverse.
"""

from __future__ import annotations

from torch import Tensor, nn


def transpose(op: nn.Module, signal: Tensor, weight: Tensor) -> Tensor:
    if isinstance(op, nn.Linear):
        return signal @ weight  # (N, out) @ (out, in): W^T applied to each row
    if hasattr(op, "transpose"):
        return op.transpose(signal, weight)
    raise TypeError(f"{type(op).__name__} has no transpose")

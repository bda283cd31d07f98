"""The one operation every non-backprop learner needs from a layer's op: its transpose.

`transpose(op, signal, weight)` maps an output-space signal back to the op's input space through
`weight` (any tensor of the op's weight shape), as the vector-Jacobian product of the op would
with that weight. With the op's own weight it is backprop's input gradient; with a fixed random
B it is feedback alignment's feedback; with a learned V it is a target-propagation inverse.

Each op brings its own as a method `transpose(signal, weight)`: `Dense` (a matrix product),
`SameConv2d` (a transposed convolution), `LocallyConnected2d` (the transposed LC op). A new op
does the same; backprop alone trains a network whose ops lack it.

A `weight` in the op's own weight's memory (W, `W.detach()`, a view of it) is refused with
WeightTransportError: that is backprop's transport, not feedback. A copy of W's values
(`W.detach().clone()`, `1.0 * W.detach()`) is not memory this check can see
(tests/behaviour/test_guards.py shows that boundary). A rule whose backward path reads W by
definition (predictive coding) says so by calling `transport(op, signal)`.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from biobench.nn.feedback import WeightTransportError


def transpose(op: nn.Module, signal: Tensor, weight: Tensor) -> Tensor:
    own = getattr(op, "weight", None)
    if isinstance(own, Tensor) and _same_memory(own, weight):
        raise WeightTransportError(
            f"transpose: the weight given for {type(op).__name__} is its forward weight (W, or "
            "a view of it): weight transport; give a feedback weight of the rule's own"
        )
    return _method(op)(signal, weight)


def transport(op: nn.Module, signal: Tensor) -> Tensor:
    """op^T(signal; W): the transpose with the op's own weight, backprop's input gradient.

    For the rules whose backward path reads W by definition (predictive coding's top-down
    errors: the symmetric connections of Whittington & Bogacz 2017). A function of its own, so
    that every such read is named, and `transpose`, which refuses W, keeps guarding the rules
    that must not.
    """
    return _method(op)(signal, op.weight)


def _method(op: nn.Module) -> Any:
    method = getattr(op, "transpose", None)
    if not callable(method):
        raise TypeError(
            f"{type(op).__name__} has no transposed op, which this learning rule needs: give it "
            "a method transpose(signal, weight) returning the op's vector-Jacobian product for "
            "the output-space signal with `weight` in place of its own (see biobench.nn.ops)"
        )
    return method


def _same_memory(a: Tensor, b: Tensor) -> bool:
    return a.untyped_storage().data_ptr() == b.untyped_storage().data_ptr()

"""Convolutions and dense ops whose backward can be rerouted through feedback weights.

A network that is not a `Stack` (a residual net, whose skip connections join layers that are
not neighbours) cannot be walked layer by layer, so the feedback-family rules train it the way
biotorch does (Sanfiz & Akrout 2021): the whole net runs under autograd, and only the backward
of each weighted op is replaced. Batch norm, ReLU, pooling and the skip connections keep their
exact backward; each conv and dense op computes

    dW = exact weight gradient from its input x and the gradient g arriving at its output
    dx = op^T(s; B)      instead of op^T(g; W)

where B is the feedback weight the learning rule installs on the op's `port` before the
backward pass, and the signal s is g itself (FA, uSF, brSF, frSF, KP, WM) or, for the direct
rules (DFA, DRTP), the output error e (or the target) broadcast over the op's output positions.
With no port (`port is None`, backprop) or outside autograd (evaluation) an op is the plain
PyTorch op.

Weight transport is ruled out in the backward itself: the op's weight is not saved for it (the
weight gradient needs x and g only), and a feedback weight that shares the forward weight's
memory is refused with WeightTransportError. tests/archs/test_resnet.py checks both: overwriting W
between forward and backward changes no input gradient, and B = W is refused.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class WeightTransportError(RuntimeError):
    """A learning rule tried to send a gradient through weights it must not use."""


@dataclass
class Port:
    """What a learning rule installs on an op before each backward pass."""

    weight: Tensor | None = None  # B: W's shape, or (classes, in, ...) for a direct signal
    signal: Tensor | None = None  # (N, classes) for DFA/DRTP; None: the op's output gradient


class _FeedbackOp(ABC):
    """The part Conv2d and Linear share: the port and the rerouted forward. Each op says how
    it computes itself, its input's gradient and its weight's gradient."""

    port: Port | None = None
    input_shape: tuple[int, ...] = ()  # per sample; filled in by the network that holds the op

    @abstractmethod
    def plain(self, x: Tensor) -> Tensor:
        """The op with its exact backward (no feedback)."""

    @abstractmethod
    def input_grad(self, signal: Tensor, weight: Tensor, shape: torch.Size) -> Tensor:
        """op^T(signal; weight) for an input of `shape`."""

    @abstractmethod
    def weight_grad(self, x: Tensor, grad: Tensor) -> Tensor:
        """dL/dW from the op's input and its output's gradient."""

    def forward(self, x: Tensor) -> Tensor:
        if self.port is None or not torch.is_grad_enabled():
            return self.plain(x)
        return _Feedback.apply(x, self.weight, self.bias, self)  # type: ignore[attr-defined]


class _Feedback(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor | None, op: _FeedbackOp) -> Tensor:
        with torch.no_grad():
            out = op.plain(x)
        _, need_w, _, _ = ctx.needs_input_grad
        ctx.save_for_backward(x if need_w else None)  # x only: W is never saved
        ctx.op, ctx.memory = op, weight.untyped_storage().data_ptr()
        ctx.input_shape, ctx.output_shape = x.shape, out.shape
        return out

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, ...]:
        (x,) = ctx.saved_tensors
        op: _FeedbackOp = ctx.op
        need_x, need_w, need_b, _ = ctx.needs_input_grad
        grad_x = grad_w = grad_b = None
        if need_x:
            port = op.port
            if port is None or port.weight is None:
                raise RuntimeError("no feedback weight installed on the op before its backward")
            if port.weight.untyped_storage().data_ptr() == ctx.memory:
                raise WeightTransportError(
                    f"the feedback weight of {type(op).__name__} is its forward weight"
                )
            signal = grad if port.signal is None else _broadcast(port.signal, ctx.output_shape)
            # Under autocast the forward ran in its dtype and the gradient arrives in it: the
            # feedback product runs in that dtype too (autograd casts the result to x's).
            feedback = port.weight.to(signal.dtype)
            grad_x = op.input_grad(signal, feedback, ctx.input_shape)
        if need_w:
            grad_w = op.weight_grad(x.to(grad.dtype), grad)
        if need_b:
            grad_b = grad.sum(0) if grad.dim() == 2 else grad.sum((0, 2, 3))
        return grad_x, grad_w, grad_b, None


def _broadcast(signal: Tensor, output_shape: torch.Size) -> Tensor:
    """(N, classes) -> the same value at every output position of a conv: (N, classes, H, W)."""
    if len(output_shape) == 2:
        return signal
    return signal[:, :, None, None].expand(-1, -1, *output_shape[2:])


class FeedbackConv2d(_FeedbackOp, nn.Conv2d):
    """nn.Conv2d (symmetric zero padding) whose input gradient a learning rule may reroute."""

    def plain(self, x: Tensor) -> Tensor:
        return F.conv2d(x, self.weight, self.bias, self.stride, self.padding)

    def input_grad(self, signal: Tensor, weight: Tensor, shape: torch.Size) -> Tensor:
        shape = torch.Size((shape[0], weight.shape[1], *shape[2:]))
        return torch.nn.grad.conv2d_input(shape, weight, signal, self.stride, self.padding)

    def weight_grad(self, x: Tensor, grad: Tensor) -> Tensor:
        return torch.nn.grad.conv2d_weight(x, self.weight.shape, grad, self.stride, self.padding)

    def transpose(self, signal: Tensor, weight: Tensor) -> Tensor:
        """The op's VJP with `weight` in place of W (biobench.nn.ops)."""
        return self.input_grad(signal, weight, torch.Size((len(signal), *self.input_shape)))


class FeedbackLinear(_FeedbackOp, nn.Linear):
    """nn.Linear whose input gradient a learning rule may reroute."""

    def plain(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight, self.bias)

    def input_grad(self, signal: Tensor, weight: Tensor, shape: torch.Size) -> Tensor:
        return signal @ weight

    def weight_grad(self, x: Tensor, grad: Tensor) -> Tensor:
        return grad.T @ x

    def transpose(self, signal: Tensor, weight: Tensor) -> Tensor:
        return signal @ weight


def feedback_ops(module: nn.Module) -> list[nn.Module]:
    """The module's reroutable ops in the order they were registered (input to output)."""
    return [m for m in module.modules() if isinstance(m, _FeedbackOp)]

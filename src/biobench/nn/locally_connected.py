"""The locally-connected layer as a module: untied filters, zero "same" padding.

The op itself, its weight layout and its transposed op live in `biobench.nn.functional`.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from biobench.nn.functional import (
    IntPair,
    _pair,
    locally_connected2d,
    locally_connected2d_transpose,
    same_output_size,
)
from biobench.nn.init import glorot_uniform_


class LocallyConnected2d(nn.Module):
    """A conv-shaped layer with a separate filter at every output position.

    NCHW in, NCHW out. `input_size` is fixed at construction because the number of filters
    depends on it. Parameters: `weight` of shape (out_h, out_w, k_h, k_w, in_channels,
    out_channels) and `bias` of shape (out_channels, out_h, out_w), one per output unit.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: IntPair,
        stride: IntPair = 1,
        *,
        input_size: IntPair,
        bias: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        if in_channels < 1 or out_channels < 1:
            raise ValueError(
                f"channel counts must be positive, got in={in_channels}, out={out_channels}"
            )
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = _pair(kernel_size, "kernel_size")
        self.stride = _pair(stride, "stride")
        self.input_size = _pair(input_size, "input_size")
        self.output_size = same_output_size(self.input_size, self.kernel_size, self.stride)
        factory = {"device": device, "dtype": dtype}
        self.weight = nn.Parameter(
            torch.empty(*self.output_size, *self.kernel_size, in_channels, out_channels, **factory)
        )
        if bias:
            self.bias = nn.Parameter(torch.empty(out_channels, *self.output_size, **factory))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def glorot_fans(self) -> tuple[int, int]:
        """Per output position an LC filter is a conv filter: fans are channels x kernel area."""
        area = math.prod(self.kernel_size)
        return self.in_channels * area, self.out_channels * area

    def reset_parameters(self) -> None:
        glorot_uniform_(self.weight, *self.glorot_fans())
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def forward(self, x: Tensor) -> Tensor:
        self._check_size(tuple(x.shape[-2:]), self.input_size, "input")
        return locally_connected2d(x, self.weight, self.bias, self.stride)

    def transpose(self, signal: Tensor, weight: Tensor | None = None) -> Tensor:
        """LC^T(signal; weight): this layer's transposed op, with its own weight by default or
        with any tensor of the weight's shape (feedback weights, a target-propagation inverse)."""
        self._check_size(tuple(signal.shape[-2:]), self.output_size, "output")
        weight = self.weight if weight is None else weight
        return locally_connected2d_transpose(signal, weight, self.input_size, self.stride)

    def _check_size(self, got: tuple[int, ...], expected: tuple[int, int], what: str) -> None:
        if got != expected:
            raise ValueError(
                f"{type(self).__name__} was built for {what} size {expected}, got {got}"
            )

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}, input_size={self.input_size}, "
            f"output_size={self.output_size}, bias={self.bias is not None}"
        )

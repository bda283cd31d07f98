"""A shared-weight convolution with the LC layer's zero "same" padding (BP-ConvNet's op).

PyTorch's Conv2d pads symmetrically, but "same" padding with a stride needs
max((out - 1) * stride + k - in, 0) zeros split unevenly (TensorFlow's SAME: the extra one after),
so this op pads explicitly. Its transpose (input gradient for any weight of its shape) serves
backprop, feedback alignment and the target-propagation inverse alike.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from biobench.nn.functional import same_padding
from biobench.nn.init import glorot_uniform_


class SameConv2d(nn.Module):
    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        *,
        input_size: tuple[int, int],
    ) -> None:
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride = kernel_size, stride
        self.input_size = tuple(input_size)
        (oh, top, bottom), (ow, left, right) = (
            same_padding(n, kernel_size, stride) for n in self.input_size
        )
        self.output_size = (oh, ow)
        self.pad = (left, right, top, bottom)  # F.pad order: last dimension first
        self.weight = nn.Parameter(
            torch.empty(out_channels, in_channels, kernel_size, kernel_size)
        )
        self.bias = nn.Parameter(torch.empty(out_channels))
        self.reset_parameters()

    def glorot_fans(self) -> tuple[int, int]:
        area = self.kernel_size**2
        return self.in_channels * area, self.out_channels * area

    def reset_parameters(self) -> None:
        glorot_uniform_(self.weight, *self.glorot_fans())
        nn.init.zeros_(self.bias)

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(F.pad(x, self.pad), self.weight, self.bias, self.stride)

    def transpose(self, signal: Tensor, weight: Tensor) -> Tensor:
        """The input-space image of an output-space signal under `weight`: the op's VJP."""
        left, right, top, bottom = self.pad
        padded = (
            signal.shape[0],
            weight.shape[1],
            self.input_size[0] + top + bottom,
            self.input_size[1] + left + right,
        )
        if torch.is_autocast_enabled(signal.device.type):  # conv2d_input is not autocast's
            dtype = torch.get_autocast_dtype(signal.device.type)
            signal, weight = signal.to(dtype), weight.to(dtype)
        full = torch.nn.grad.conv2d_input(padded, weight, signal, self.stride)
        return full[:, :, top : top + self.input_size[0], left : left + self.input_size[1]]

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}, input_size={self.input_size}, "
            f"output_size={self.output_size}"
        )

"""The locally-connected (LC) op: forward, transposed op and weight gradient.

An LC layer has convolution-shaped receptive fields (kernel k_h x k_w, stride s_h x s_w) but a
separate, untied filter at every output position. Inputs get TensorFlow's zero "same" padding:
output size ceil(input / stride) per spatial dim, total padding max((out - 1) * s + k - in, 0)
split as pad_before = total // 2, pad_after = total - pad_before.

Weight layout, shared by every function here:

    weight.shape == (out_h, out_w, k_h, k_w, in_channels, out_channels)
    y[n, o, p, q] = bias[o, p, q]
        + sum_{i, j, c} weight[p, q, i, j, c, o] * x_pad[n, c, p * s_h + i, q * s_w + j]

Every size is recoverable from the shape. In contiguous memory this is one (k_h*k_w*C, O)
matrix per output position, i.e. a (P, K, O) stack with P = out_h*out_w and K = k_h*k_w*C. The
op is then a single batched matmul of gathered patches (P, N, K) against (P, K, O), with the
weight consumed in place (an LC layer is bound by streaming its weight, which is P times larger
than a convolution's). K is ordered (k_h, k_w, C) rather than unfold's (C, k_h, k_w) so that
the patches are gathered from an NHWC copy of the input in contiguous runs of k_w*C values.

The three ops are bilinear and each one's derivatives are the other two, so each is an
autograd Function whose backward calls the others: all three are differentiable any number
of times, and none keeps the (k^2 / s^2 times larger) unfolded patches alive for backward.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence

import torch
from torch import Tensor

IntPair = int | Sequence[int]


def _pair(value: IntPair, name: str) -> tuple[int, int]:
    pair = (value, value) if isinstance(value, int) else tuple(int(v) for v in value)
    if len(pair) != 2 or min(pair) < 1:
        raise ValueError(f"{name} must be a positive int or a pair of them, got {value!r}")
    return pair  # type: ignore[return-value]


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int, int]:
    """(output size, pad before, pad after) along one dim, TensorFlow's "same" convention."""
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return out, total // 2, total - total // 2


def same_output_size(
    input_size: IntPair, kernel_size: IntPair, stride: IntPair = 1
) -> tuple[int, int]:
    """(out_h, out_w) of a "same"-padded LC or conv layer: ceil(input / stride) per dim."""
    size = _pair(input_size, "input_size")
    kernel = _pair(kernel_size, "kernel_size")
    step = _pair(stride, "stride")
    return tuple(same_padding(n, k, s)[0] for n, k, s in zip(size, kernel, step, strict=True))


class _Geometry:
    """Sizes and paddings of one LC op, checked once, shared by the three kernels."""

    def __init__(
        self,
        input_size: tuple[int, int],
        kernel: tuple[int, int],
        stride: tuple[int, int],
        channels: int,
        out_channels: int,
    ) -> None:
        (self.h, self.w), (self.kh, self.kw), (self.sh, self.sw) = input_size, kernel, stride
        self.oh, self.top, bottom = same_padding(self.h, self.kh, self.sh)
        self.ow, self.left, right = same_padding(self.w, self.kw, self.sw)
        self.hp, self.wp = self.h + self.top + bottom, self.w + self.left + right
        self.c, self.o = channels, out_channels
        self.p, self.k = self.oh * self.ow, self.kh * self.kw * channels

    @property
    def weight_shape(self) -> tuple[int, int, int, int, int, int]:
        return (self.oh, self.ow, self.kh, self.kw, self.c, self.o)

    def check_weight(self, weight: Tensor) -> None:
        if tuple(weight.shape) != self.weight_shape:
            raise ValueError(
                f"LC weight of shape {tuple(weight.shape)} does not fit input "
                f"{self.c}x{self.h}x{self.w} with stride ({self.sh}, {self.sw}): expected "
                f"(out_h, out_w, k_h, k_w, in_channels, out_channels) = {self.weight_shape}"
            )

    def patches(self, x: Tensor) -> Tensor:
        """(P, N, K): row (p, n) holds sample n's zero-padded receptive field at position p."""
        n = x.shape[0]
        padded = torch.nn.functional.pad(
            x.permute(0, 2, 3, 1),
            (0, 0, self.left, self.wp - self.w - self.left, self.top, self.hp - self.h - self.top),
        ).contiguous()
        s_n, s_h, s_w, s_c = padded.stride()
        windows = padded.as_strided(
            (self.oh, self.ow, n, self.kh, self.kw, self.c),
            (self.sh * s_h, self.sw * s_w, s_n, s_h, s_w, s_c),
            padded.storage_offset(),
        )
        return windows.reshape(self.p, n, self.k)

    def fold(self, patches: Tensor) -> Tensor:
        """The adjoint of `patches`: sum every window back onto the (cropped) input, NCHW."""
        n = patches.shape[1]
        windows = patches.view(self.oh, self.ow, n, self.kh, self.kw, self.c)
        padded = patches.new_zeros(n, self.hp, self.wp, self.c)
        rows, cols = self.sh * (self.oh - 1) + 1, self.sw * (self.ow - 1) + 1
        # Overlapping windows (kernel > stride) hit the same pixel, so each kernel offset is
        # added separately: k_h*k_w strided adds, each contiguous over channels.
        for i in range(self.kh):
            for j in range(self.kw):
                padded[:, i : i + rows : self.sh, j : j + cols : self.sw] += windows[
                    :, :, :, i, j
                ].permute(2, 0, 1, 3)
        cropped = padded[:, self.top : self.top + self.h, self.left : self.left + self.w]
        return cropped.permute(0, 3, 1, 2).contiguous()

    def by_position(self, grad_output: Tensor) -> Tensor:
        """(N, O, out_h, out_w) -> contiguous (P, N, O), the layout the batched matmuls consume.

        A bare reshape can give a view with unit stride along P, which CPU bmm cannot hand to
        a batched BLAS call (it then multiplies position by position, ~10x slower)."""
        by_position = grad_output.permute(2, 3, 0, 1).reshape(self.p, grad_output.shape[0], self.o)
        return by_position.contiguous()

    def check_output(self, grad_output: Tensor) -> None:
        expected = (self.o, self.oh, self.ow)
        if grad_output.dim() != 4 or tuple(grad_output.shape[1:]) != expected:
            raise ValueError(
                f"LC output gradient of shape {tuple(grad_output.shape)} does not match "
                f"(N, out_channels, out_h, out_w) with (out_channels, out_h, out_w) = {expected}"
            )


def _geometry_of_weight(input_size: tuple[int, int], weight: Tensor, stride: IntPair) -> _Geometry:
    if weight.dim() != 6:
        raise ValueError(
            "LC weight must have shape (out_h, out_w, k_h, k_w, in_channels, out_channels), "
            f"got {tuple(weight.shape)}"
        )
    _, _, kh, kw, c, o = weight.shape
    geometry = _Geometry(input_size, (kh, kw), _pair(stride, "stride"), c, o)
    geometry.check_weight(weight)
    return geometry


def _check_input(x: Tensor, geometry: _Geometry) -> None:
    if x.dim() != 4 or x.shape[1] != geometry.c:
        raise ValueError(
            f"LC input must be NCHW with {geometry.c} channels, got shape {tuple(x.shape)}"
        )


def _forward(x: Tensor, weight: Tensor, bias: Tensor | None, g: _Geometry) -> Tensor:
    by_position = torch.bmm(g.patches(x), weight.reshape(g.p, g.k, g.o))
    nchw = by_position.view(g.oh, g.ow, x.shape[0], g.o).permute(2, 3, 0, 1)
    # The copy back to contiguous NCHW is needed anyway, so the bias add rides on it.
    out = x.new_empty(x.shape[0], g.o, g.oh, g.ow)
    return torch.add(nchw, bias, out=out) if bias is not None else out.copy_(nchw)


def _transpose(grad_output: Tensor, weight: Tensor, g: _Geometry) -> Tensor:
    weights = weight.reshape(g.p, g.k, g.o)
    return g.fold(torch.bmm(g.by_position(grad_output), weights.transpose(1, 2)))


def _weight_grad(x: Tensor, grad_output: Tensor, g: _Geometry) -> Tensor:
    grad = torch.bmm(g.patches(x).transpose(1, 2), g.by_position(grad_output))
    return grad.view(g.weight_shape)


def _autocast_on(device_type: str) -> bool:
    return torch.amp.is_autocast_available(device_type) and torch.is_autocast_enabled(device_type)


def _no_autocast(device_type: str) -> contextlib.AbstractContextManager:
    """The kernels run in the dtype their operands were given, whatever autocast says now."""
    if _autocast_on(device_type):
        return torch.autocast(device_type, enabled=False)
    return contextlib.nullcontext()


class LocallyConnected2dFunction(torch.autograd.Function):
    """y = LC(x; W) + b. Saves x only if W needs a gradient and W only if x does (the weight
    gradient re-gathers x's patches, far cheaper than keeping k^2 / s^2 copies of x alive)."""

    @staticmethod
    def forward(
        ctx, x: Tensor, weight: Tensor, bias: Tensor | None, geometry: _Geometry
    ) -> Tensor:
        need_x, need_w, _, _ = ctx.needs_input_grad
        ctx.save_for_backward(x if need_w else None, weight if need_x else None)
        ctx.geometry = geometry
        return _forward(x, weight, bias, geometry)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, ...]:
        x, weight = ctx.saved_tensors
        g = ctx.geometry
        need_x, need_w, need_b, _ = ctx.needs_input_grad
        with _no_autocast(grad.device.type):
            if need_x and need_w:  # one (P, N, O) copy of grad, viewed as NCHW, serves both
                grad = g.by_position(grad).view(g.oh, g.ow, -1, g.o).permute(2, 3, 0, 1)
            grad_x = TransposeFunction.apply(grad, weight, g) if need_x else None
            grad_w = WeightGradFunction.apply(x, grad, g) if need_w else None
            grad_b = grad.sum(0) if need_b else None
        return grad_x, grad_w, grad_b, None


class TransposeFunction(torch.autograd.Function):
    """LC^T(g; W): the input-gradient of the LC op. Linear in g (adjoint: the LC op) and in W
    (derivative: the weight gradient with the upstream gradient in the input's place)."""

    @staticmethod
    def forward(ctx, grad_output: Tensor, weight: Tensor, geometry: _Geometry) -> Tensor:
        need_g, need_w, _ = ctx.needs_input_grad
        ctx.save_for_backward(grad_output if need_w else None, weight if need_g else None)
        ctx.geometry = geometry
        return _transpose(grad_output, weight, geometry)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, ...]:
        grad_output, weight = ctx.saved_tensors
        g = ctx.geometry
        need_g, need_w, _ = ctx.needs_input_grad
        with _no_autocast(grad.device.type):
            d_g = LocallyConnected2dFunction.apply(grad, weight, None, g) if need_g else None
            d_w = WeightGradFunction.apply(grad, grad_output, g) if need_w else None
        return d_g, d_w, None


class WeightGradFunction(torch.autograd.Function):
    """dW(x, g), bilinear: <G, dW(x, g)> = <LC(x; G), g> = <x, LC^T(g; G)>."""

    @staticmethod
    def forward(ctx, x: Tensor, grad_output: Tensor, geometry: _Geometry) -> Tensor:
        need_x, need_g, _ = ctx.needs_input_grad
        ctx.save_for_backward(x if need_g else None, grad_output if need_x else None)
        ctx.geometry = geometry
        return _weight_grad(x, grad_output, geometry)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, ...]:
        x, grad_output = ctx.saved_tensors
        g = ctx.geometry
        need_x, need_g, _ = ctx.needs_input_grad
        with _no_autocast(grad.device.type):
            d_x = TransposeFunction.apply(grad_output, grad, g) if need_x else None
            d_g = LocallyConnected2dFunction.apply(x, grad, None, g) if need_g else None
        return d_x, d_g, None


def _autocast(*tensors: Tensor | None) -> tuple[Tensor | None, ...]:
    """Cast as autocast does for matmuls and convolutions: float32 to its lower precision."""
    device_type = tensors[0].device.type
    if not _autocast_on(device_type):
        return tensors
    dtype = torch.get_autocast_dtype(device_type)
    return tuple(t.to(dtype) if t is not None and t.dtype == torch.float32 else t for t in tensors)


def _run(function: type[torch.autograd.Function], *args: Tensor | _Geometry | None) -> Tensor:
    tensors = [a for a in args if isinstance(a, Tensor)]
    if len({(t.dtype, t.device) for t in tensors}) > 1:
        raise TypeError(
            "LC operands must share one dtype and device, got "
            + ", ".join(f"{t.dtype} on {t.device}" for t in tensors)
        )
    with _no_autocast(tensors[0].device.type):
        return function.apply(*args)


def locally_connected2d(
    x: Tensor, weight: Tensor, bias: Tensor | None = None, stride: IntPair = 1
) -> Tensor:
    """The LC layer's pre-activation. x: (N, C, H, W); returns (N, O, out_h, out_w), contiguous.

    weight: (out_h, out_w, k_h, k_w, C, O), see the module docstring for the exact formula.
    bias: (O, out_h, out_w), one per output unit, or None. Under autocast, float32 operands
    are cast to the autocast dtype (as for conv2d and matmul) and the result has that dtype.
    """
    if x.dim() != 4:
        raise ValueError(f"LC input must be NCHW, got shape {tuple(x.shape)}")
    geometry = _geometry_of_weight((x.shape[2], x.shape[3]), weight, stride)
    _check_input(x, geometry)
    if bias is not None and tuple(bias.shape) != (geometry.o, geometry.oh, geometry.ow):
        raise ValueError(
            f"LC bias must have shape (out_channels, out_h, out_w) = "
            f"{(geometry.o, geometry.oh, geometry.ow)}, got {tuple(bias.shape)}"
        )
    x, weight, bias = _autocast(x, weight, bias)
    return _run(LocallyConnected2dFunction, x, weight, bias, geometry)


def locally_connected2d_transpose(
    grad_output: Tensor, weight: Tensor, input_size: IntPair, stride: IntPair = 1
) -> Tensor:
    """LC^T(g; W): the vector-Jacobian product of `locally_connected2d` w.r.t. its input.

    grad_output: (N, O, out_h, out_w); weight: any tensor of the LC weight's shape (W for
    backprop, fixed random B for feedback alignment, a learned V for a TP inverse);
    input_size: the forward input's (H, W), needed because ceil(H / stride) forgets H.
    Returns (N, C, H, W), contiguous. Autocast applies as for `locally_connected2d`.
    """
    size = _pair(input_size, "input_size")
    geometry = _geometry_of_weight(size, weight, stride)
    geometry.check_output(grad_output)
    grad_output, weight = _autocast(grad_output, weight)
    return _run(TransposeFunction, grad_output, weight, geometry)


def locally_connected2d_weight_grad(
    x: Tensor, grad_output: Tensor, weight_shape_or_kernel: IntPair, stride: IntPair = 1
) -> Tensor:
    """dL/dW of `locally_connected2d` given x and g = dL/dy; shaped like the weight.

    weight_shape_or_kernel: the weight's full 6-dim shape (checked against x and g) or just
    the kernel size, an int or (k_h, k_w); everything else follows from x and grad_output.
    Autocast applies as for `locally_connected2d`.
    """
    if x.dim() != 4 or grad_output.dim() != 4:
        raise ValueError(
            f"LC input and output gradient must be NCHW, got {tuple(x.shape)} and "
            f"{tuple(grad_output.shape)}"
        )
    spec = weight_shape_or_kernel
    full_shape = not isinstance(spec, int) and len(spec) == 6
    geometry = _Geometry(
        (x.shape[2], x.shape[3]),
        _pair(tuple(spec[2:4]) if full_shape else spec, "kernel"),
        _pair(stride, "stride"),
        x.shape[1],
        grad_output.shape[1],
    )
    if full_shape and tuple(spec) != geometry.weight_shape:
        raise ValueError(
            f"weight shape {tuple(spec)} does not fit input {tuple(x.shape)} and output "
            f"gradient {tuple(grad_output.shape)}: expected {geometry.weight_shape}"
        )
    if grad_output.shape[0] != x.shape[0]:
        raise ValueError(
            f"LC input and output gradient disagree on the batch: {x.shape[0]} and "
            f"{grad_output.shape[0]}"
        )
    geometry.check_output(grad_output)
    x, grad_output = _autocast(x, grad_output)
    return _run(WeightGradFunction, x, grad_output, geometry)

"""Max pooling inside a layer: an op followed by k x k max pooling (stride k), with its transpose.

A VGG block is conv -> activation -> max pool, but a biobench layer is h = f(op(x)): every
rule reads the pre-activation a = op(x), the activation's derivative f'(a) and the op's
transpose. `MaxPooled(op, k, activation=f)` puts the pooling inside the op without changing
what the block computes: in each k x k window of op(x) it picks the position whose *activated*
value f(op(x)) is largest and passes that position's pre-activation on, so the layer's output
f(MaxPooled(x)) is exactly maxpool(f(op(x))) for any activation, GELU's dip below zero
included (picking by op(x) itself would agree only for a monotone f). The layer's units are
the pooled ones, as in PCX's VGG nets, whose value nodes sit after each pool.

The op is piecewise linear in op(x): within a region where the picked positions (the
switches) stay put, its vector-Jacobian product is op's transpose of the signal scattered back
to the switches (zero at the positions not picked). `transpose(signal, weight)` computes that
with the switches of the op's latest forward pass, which is the batch every rule transposes
right after its forward (FA's backward sweep, a TP inverse applied to a layer's output). One
case sees other switches: in DTP's parallel mode the inverses' training step runs each layer
on its noisy input last, so that step's targets go down through the noisy input's switches (a
nearby linear map, the same in both terms of DTP's difference correction); the default
alternating mode runs its forward epochs on the clean pass alone.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from biobench.nn.activations import Activation, Identity


class MaxPooled(nn.Module):
    """op(x), then in each k x k window (stride k, no padding, a remainder row/column dropped
    as torch's max_pool2d does) the value at the position where `activation` is largest."""

    def __init__(
        self, op: nn.Module, kernel_size: int = 2, *, activation: Activation | None = None
    ) -> None:
        super().__init__()
        height, width = op.output_size
        if min(height, width) < kernel_size:
            raise ValueError(
                f"a {kernel_size}x{kernel_size} pool needs a map at least that large; the op "
                f"makes {height}x{width}"
            )
        self.op = op
        self.kernel_size = kernel_size
        self.select_by = activation if activation is not None else Identity()
        self.input_size = op.input_size
        self.pooled_from = (height, width)
        self.output_size = (height // kernel_size, width // kernel_size)
        self.switches: Tensor | None = None

    # The op's parameters are the wrapped op's: rules give feedback to, mirror and invert
    # `weight` and Glorot's fans are its own.
    @property
    def weight(self) -> Tensor:
        return self.op.weight

    @property
    def bias(self) -> Tensor | None:
        return self.op.bias

    def glorot_fans(self) -> tuple[int, int]:
        return self.op.glorot_fans()

    def forward(self, x: Tensor) -> Tensor:
        a = self.op(x)
        with torch.no_grad():  # which position wins is a choice, not part of the gradient
            _, switches = F.max_pool2d(self.select_by(a), self.kernel_size, return_indices=True)
        self.switches = switches
        pooled = a.flatten(2).gather(2, switches.flatten(2))
        return pooled.view(switches.shape)

    def transpose(self, signal: Tensor, weight: Tensor) -> Tensor:
        """The input-space image of a pooled-output signal under `weight`: the op's VJP at its
        latest input (signal to the switches, then the wrapped op's transpose)."""
        switches = self.switches
        if switches is None or len(switches) != len(signal):
            raise RuntimeError(
                "MaxPooled.transpose needs the switches of a forward pass on the same batch: "
                f"run the op on {len(signal)} samples first"
            )
        # The forward's gather, transposed: each pooled value back to the position it came
        # from (windows do not overlap, so no position receives two), zeros elsewhere.
        n, channels = switches.shape[:2]
        full = signal.new_zeros(n, channels, self.pooled_from[0] * self.pooled_from[1])
        full.scatter_(2, switches.flatten(2), signal.reshape(n, channels, -1))
        return self.op.transpose(full.view(n, channels, *self.pooled_from), weight)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, output_size={self.output_size}"

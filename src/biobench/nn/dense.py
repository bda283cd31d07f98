"""The dense (fully-connected) op: nn.Linear that brings its own transposed op."""

from __future__ import annotations

from torch import Tensor, nn


class Dense(nn.Linear):
    """y = x W^T + b, with W of shape (out, in); parameters and state_dict keys as nn.Linear."""

    def transpose(self, signal: Tensor, weight: Tensor) -> Tensor:
        """The input-space image of an output-space signal under `weight`: signal @ weight.

        `weight` is (out, in) like W for the VJP, or any (rows, in) matrix whose rows match the
        signal's width (AO-SDTP's top inverse reads the logits and its auxiliary features).
        """
        return signal @ weight

    def weight_grads(self, inputs: Tensor, delta: Tensor) -> list[tuple[Tensor, Tensor]]:
        """[(W, dW), (b, db)] for the output gradient `delta` (N, out) at `inputs` (N, in):
        dW = delta^T inputs and db = sum_n delta_n, what autograd of this op computes (bit for
        bit), without a graph recorded in the forward pass."""
        weight, bias = self.weight, self.bias
        grads = [(weight, delta.T @ inputs)]
        if bias is not None:
            grads.append((bias, delta.sum(0)))
        return grads

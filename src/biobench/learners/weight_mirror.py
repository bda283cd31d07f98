"""Weight mirrors (WM): feedback weights learned from noise sent through the forward weights
(Akrout et al. 2019, "Deep learning without weight transport", section 3, eq. 7).

The network alternates two modes, minibatch by minibatch, as the authors' fcnn/FCNN_WM.py does:

  engaged mode: feedback alignment's sweep through the current B_l (learned_feedback.py) and
      FA's update of the forward weights with Adam;
  mirror mode: every layer l >= 1 (0-based) that sends a signal down gets its B_l updated from
      noise. The units of the layer below fire noise xi ~ N(0, sigma^2) (one draw per sample of
      the minibatch, independently for each layer), layer l answers through its forward
      weights, y = W_l xi (its pre-activation minus the bias, its answer to silence), and each
      feedback synapse changes by the product of the activity at its two ends, with decay:

          B_l <- (1 - mirror_decay) B_l + mirror_lr * mean_n( y_n xi_n^T )

Since E[y xi^T] = W_l E[xi xi^T] = sigma^2 W_l, B_l drifts to mirror_lr sigma^2 / mirror_decay
times W_l (the paper's B_l -> W_l^T, in W_l's layout here), a time constant of 1 / mirror_decay
minibatches, with noise that a smaller mirror_lr and mirror_decay average out. For a conv or LC
layer "y xi^T" is the correlation over each weight's own connections: the layer op's weight
gradient at input xi with output signal y, which reads xi and y, never W_l's values. A conv
weight is shared by every output position, so its product is a sum over the positions it serves;
dividing by that count (1 for dense and LC weights) averages it instead, and E[B_l] is the same
multiple of W_l for every op. The mirror update is plain Hebbian (no optimiser, as in the
paper); the forward weights' Adam is the only one.

A max-pooled layer (vgg5) mirrors its convolution without the pool (`layer_mirror`). On
resnet20 each conv and the dense op mirrors alone (its exact forward on noise of its input's
shape; the convs have no bias), while the engaged mode reroutes their backward through B_l.

biobench choices: Gaussian noise (the authors' code draws uniform noise); the linear response
W xi rather than the authors' code's sigmoid(W xi + b), as in the paper's derivation; decay
rather than the code's rescaling of B; no mirror-only warm-up before training.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from biobench.archs.stack import Layer, Stack
from biobench.learners.base import OPTIMIZER, local_grad
from biobench.learners.learned_feedback import LearnedFeedback
from biobench.nn import MaxPooled
from biobench.registry import ALGORITHMS
from biobench.spec.params import HParam

MIRROR = {
    "mirror_lr": HParam(
        float, "Hebbian rate of the mirror update of B", low=0.0, low_open=True, default=0.01
    ),
    "mirror_decay": HParam(
        float, "decay of B per mirror step", low=0.0, high=1.0, high_open=True, default=0.01
    ),
    "mirror_sigma": HParam(float, "std of the mirror noise", low=0.0, low_open=True, default=1.0),
}


@dataclass(frozen=True)
class Mirror:
    """What the mirror mode of layer l needs: its op, the op applied to an input of the
    layer's shape (a Stack layer's pre-activation, which flattens; a ResNet op's exact
    forward) and that input's per-sample shape."""

    op: nn.Module
    apply: Callable[[Tensor], Tensor]
    input_shape: tuple[int, ...]


def mirrors(net: nn.Module) -> list[Mirror]:
    """One Mirror per layer that sends a signal down (every one but the first)."""
    if isinstance(net, Stack):
        return [layer_mirror(layer) for layer in net.layers]
    return [Mirror(op, op.plain, op.input_shape) for op in net.ops]


def layer_mirror(layer: Layer) -> Mirror:
    """A Stack layer's op on noise of its input's shape. A max-pooled op (vgg5) mirrors its
    convolution alone: which unit the pool keeps depends on the noise itself, so mean(y xi^T)
    through the pool no longer averages to a multiple of W."""
    if isinstance(layer.op, MaxPooled):
        return Mirror(layer.op.op, layer.op.op, layer.input_shape)
    return Mirror(layer.op, layer.preactivation, layer.input_shape)


def connections(mirror: Mirror) -> Tensor | float:
    """How many (output position, input) pairs each weight of the layer's op connects for one
    sample: d sum(op(1)) / dW, at least 1 (LC weights that only ever meet the zero padding
    count 1). A plain 1 when every weight connects once (dense, LC), which saves an LC layer's
    weight-sized tensor; for a conv weight, the output positions it serves."""
    weight = mirror.op.weight
    ones = torch.ones(1, *mirror.input_shape, dtype=weight.dtype, device=weight.device)
    allowed = mirror.op.parameters()
    count = local_grad(mirror.apply(ones).sum(), weight, allowed).clamp_(min=1)
    return 1.0 if bool((count == 1).all()) else count


@ALGORITHMS.register("wm", aliases=("weight-mirror",), label="WM", family="feedback", order=55)
class WeightMirror(LearnedFeedback):
    """FA whose feedback B learns W (up to a scale) from noise sent through each layer."""

    hparams = {**OPTIMIZER, **MIRROR}

    def __init__(self, net: nn.Module, hp: Mapping[str, Any]) -> None:
        super().__init__(net, hp)
        self.mirrors = mirrors(net)[1:]
        self.connections = [connections(mirror) for mirror in self.mirrors]

    def train_step(self, x: Tensor, y: Tensor) -> dict[str, Tensor]:
        metrics = super().train_step(x, y)  # engaged mode: FA's update of the forward weights
        self.mirror(len(x))
        self.clock.lap("inverse")  # learning the feedback path, as TP's inverses
        return metrics

    def mirror(self, samples: int) -> None:
        """Mirror mode: B_l <- (1 - decay) B_l + lr mean(y xi^T) (per connection of a shared
        weight), y = W_l xi, for each layer l >= 1."""
        rate, decay, sigma = (self.hp[k] for k in ("mirror_lr", "mirror_decay", "mirror_sigma"))
        for feedback, mirror, count in zip(
            self.learned, self.mirrors, self.connections, strict=True
        ):
            shape = (samples, *mirror.input_shape)
            xi = sigma * torch.randn(shape, dtype=feedback.dtype, device=feedback.device)
            with torch.no_grad():  # the answer to silence: the bias, where there is one
                silence = mirror.apply(torch.zeros_like(xi[:1]))
            a = mirror.apply(xi)  # a graph of this layer's op alone
            y = a.detach() - silence
            # sum_n y_n xi_n^T in W_l's layout: d<a, y>/dW_l, a function of xi and y only.
            hebbian = local_grad((a * y).sum(), mirror.op.weight, mirror.op.parameters())
            feedback.mul_(1 - decay).add_(hebbian / count, alpha=rate / samples)

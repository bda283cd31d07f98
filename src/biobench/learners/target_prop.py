"""The target-propagation family: vanilla TP, DTP, SDTP and AO-SDTP (paper-notes §2).

Every hidden layer l (1-based) is trained to move its output toward a target:
    local loss_l = || f_l(h_{l-1}) - h^_l ||^2   (summed over units, averaged over the batch;
                                                  h_{l-1} and the target are constants)
and the output layer on the task loss. Targets travel down through learned inverses
    g_l(h_l) = f_{l-1}(V_l^T h_l + c_l),
where "V_l^T h" is the layer op's own transpose with V_l (W_l's shape) in place of W_l: the
transposed LC op for an LC layer, so the inverse has W_l^T's sparsity; f_{l-1} is the activation
of the space g_l maps into, layer l-1's (tanh in the paper's nets). Layer 1 has no inverse:
nothing needs a target below it.

Penultimate target h^_{L-1}, and the rule that carries targets down:
    TP:      h^_{L-1} = h_{L-1} - alpha dL/dh_{L-1};   h^_{l-1} = g_l(h^_l)
    DTP:     h^_{L-1} = h_{L-1} - alpha dL/dh_{L-1};   h^_{l-1} = h_{l-1} + g_l(h^_l) - g_l(h_l)
    SDTP:    h^_{L-1} = h_{L-1} - g_L(h_L) + g_L(onehot(y))      (h_L = softmax probabilities)
    AO-SDTP: h^_{L-1} = h_{L-1} - g_L(o, z) + g_L(onehot(y), z)  (z = tanh(R h_{L-1}), R fixed)
             then the DTP difference rule below L-1 for both.
The only gradient anywhere is TP/DTP's dL/dh_{L-1}, through the output layer alone.

Inverse losses, with noise eps ~ N(0, sigma^2):
    TP, DTP (noise-preserving):  || (h_{l-1} + eps) - g_l(f_l(h_{l-1} + eps)) ||^2
    SDTP, AO-SDTP (de-noising):  || h_{l-1} - g_l(f_l(h_{l-1} + eps)) ||^2,  also for g_L
Forward weights and inverses keep separate Adam optimisers. `mode=parallel` updates the
inverses, then the forward weights, on every minibatch; `mode=alternating` (default, the paper's
better mode) trains the inverses for a full pass over the training set, then the forward weights
for a full pass, and one reported epoch is both passes.

The paper does not say which loss alpha steps on; `alpha_scale` chooses (TP, DTP, DDTP):
    sample (default, biobench's choice): dL/dh_{L-1} is the gradient of each sample's own
        cross-entropy (the loss summed over the batch), so alpha is a per-sample step whatever
        the batch size;
    batch: the gradient of the batch-mean cross-entropy, as in Lee et al.'s code, so the step
        is alpha / N for a minibatch of N (with N = 128, 128 times smaller than `sample`'s).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from biobench.archs.stack import Layer, Stack
from biobench.learners.base import (
    ADAM,
    Learner,
    Trace,
    adam,
    local_backward,
    local_forward,
    local_grad,
)
from biobench.nn import Activation, glorot_like, glorot_uniform_
from biobench.nn.ops import transpose
from biobench.registry import ALGORITHMS
from biobench.spec.params import HParam, with_defaults

INVERSE_ADAM = {
    f"inverse_{name}": replace(param, help=f"inverses' {param.help}")
    for name, param in ADAM.items()
}
SIGMA = HParam(float, "std of the inverse loss's noise", low=0.0, default=0.1)
ALPHA = HParam(float, "step size of the penultimate target", low=0.0, low_open=True, default=0.1)
MODE = HParam(
    str,
    "when forward and inverse weights learn",
    choices=("parallel", "alternating"),
    default="alternating",
)
AUX_UNITS = HParam(int, "fixed random output features of AO-SDTP", low=1, default=512)
ALPHA_SCALE = HParam(
    str,
    "what alpha steps on: each sample's loss (sample) or the batch-mean loss (batch)",
    choices=("sample", "batch"),
    default="sample",
)


class Inverse(nn.Module):
    """g(h) = f(transpose(op, h, V) + c): maps a layer's output space back to its input, with
    f the activation of that input space (the activation of the layer below)."""

    def __init__(self, layer: Layer, weight: Tensor, activation: Activation) -> None:
        super().__init__()
        self.weight = nn.Parameter(weight)
        self.bias = nn.Parameter(weight.new_zeros(layer.input_shape))
        self.activation = activation

    def forward(self, h: Tensor, layer: Layer) -> Tensor:
        back = transpose(layer.op, h, self.weight)
        return self.activation(back.reshape(-1, *self.bias.shape) + self.bias)


def _sq_error(a: Tensor, b: Tensor) -> Tensor:
    """||a - b||^2 summed over units, averaged over the batch."""
    return (a - b).pow(2).flatten(1).sum(1).mean()


class _TargetProp(Learner):
    hparams: ClassVar[dict[str, HParam]] = {
        **with_defaults(ADAM, lr=3e-4),
        **INVERSE_ADAM,
        "sigma": SIGMA,
        "mode": MODE,
    }
    top_inverse: ClassVar[bool] = False  # does the output layer get an inverse g_L?
    noise_preserving: ClassVar[bool] = False  # inverse loss: DTP's if True, else de-noising

    def __init__(self, net: Stack, hp: Mapping[str, Any]) -> None:
        super().__init__(net, hp)
        layers = net.layers
        top = len(layers) - 1
        # inverses[i] inverts layers[i]; layers[0] never needs one.
        self.inverses = nn.ModuleDict(
            {
                str(i): Inverse(layers[i], self._inverse_weight(i), layers[i - 1].activation)
                for i in self._inverted(top)
            }
        )
        self.forward_optimizer = adam(net.parameters(), self.hp)
        self.inverse_optimizer = adam(self.inverses.parameters(), self.hp, "inverse_")
        self.phase = "train"

    def _inverted(self, top: int) -> range:
        return range(1, top + 1 if self.top_inverse else top)

    def _inverse_weight(self, i: int) -> Tensor:
        return glorot_like(self.net.layers[i].op)

    def g(self, i: int, h: Tensor) -> Tensor:
        return self.inverses[str(i)](h, self.net.layers[i])

    # -- phases ------------------------------------------------------------------------------

    def epoch_phases(self, epoch: int) -> tuple[str, ...]:
        return ("train",) if self.hp["mode"] == "parallel" else ("inverse", "forward")

    def start_phase(self, phase: str) -> None:
        self.phase = phase

    def train_step(self, x: Tensor, y: Tensor) -> dict[str, Tensor]:
        """One minibatch of the current phase. Returns the detached losses the step computed
        anyway: "inverse_loss" (the inverse losses' sum) when the inverses learned, "loss" (the
        task cross-entropy) when the forward weights did; nothing is computed only to report."""
        learns_forward = self.phase in ("train", "forward")
        # The inverse pass needs each layer's input, not the forward graphs: build none.
        with torch.set_grad_enabled(learns_forward):
            trace = local_forward(self.net, x)
        self.clock.lap("forward")
        metrics: dict[str, Tensor] = {}
        if self.phase in ("train", "inverse"):
            metrics["inverse_loss"] = self.inverse_step(trace)
            self.clock.lap("inverse")
        if learns_forward:
            metrics["loss"] = self.forward_step(trace, y)
        return metrics

    # -- inverses ----------------------------------------------------------------------------

    def top_features(self, h: Tensor) -> Tensor:
        """f_L(h): what g_L sees of the output layer (SDTP: the softmax probabilities)."""
        return torch.softmax(self.net.layers[-1].preactivation(h), dim=1)

    def inverse_losses(self, trace: Trace) -> dict[int, Tensor]:
        """Each inverse's loss on this batch (graph reaches that inverse's V and c only)."""
        losses = {}
        top = len(self.net.layers) - 1
        for i in self._inverted(top):
            h_in = trace.inputs[i]  # h_{l-1}: this layer's input, a constant
            noisy = h_in + self.hp["sigma"] * torch.randn_like(h_in)
            with torch.no_grad():
                layer = self.net.layers[i]
                forward = self.top_features(noisy) if i == top else layer(noisy)
            reconstruction = self.g(i, forward)
            target = noisy if self.noise_preserving else h_in
            losses[i] = _sq_error(reconstruction, target)
        return losses

    def inverse_step(self, trace: Trace) -> Tensor:
        self.inverse_optimizer.zero_grad(set_to_none=True)
        total = trace.pre[-1].new_zeros(())
        for i, loss in self.inverse_losses(trace).items():
            local_backward(loss, None, self.inverses[str(i)].parameters())
            total = total + loss.detach()
        self.inverse_optimizer.step()
        return total

    # -- forward weights ---------------------------------------------------------------------

    def penultimate_target(self, trace: Trace, y: Tensor) -> Tensor:
        """h^_{L-1} by one gradient step on the task loss (each sample's, or the batch mean's:
        alpha_scale), through the output layer only."""
        output_layer = self.net.layers[-1]
        h = trace.out[-2].detach().requires_grad_(True)
        # A learner built by hand without alpha_scale (an older caller) keeps `sample`.
        per_sample = self.hp.get("alpha_scale", ALPHA_SCALE.default) == "sample"
        loss = F.cross_entropy(
            output_layer.preactivation(h), y, reduction="sum" if per_sample else "mean"
        )
        grad = local_grad(loss, h, output_layer.parameters())
        return h.detach() - self.hp["alpha"] * grad

    @torch.no_grad()
    def propagate(self, i: int, target: Tensor, trace: Trace) -> Tensor:
        """h^_{i-1} from h^_i (0-based layer i): DTP's difference correction."""
        return trace.out[i - 1].detach() + self.g(i, target) - self.g(i, trace.out[i].detach())

    def targets(self, trace: Trace, y: Tensor) -> list[Tensor]:
        """Targets h^ for layers 0 .. L-2 (every layer but the output)."""
        top = len(self.net.layers) - 1
        targets = [self.penultimate_target(trace, y)]
        for i in range(top - 1, 0, -1):
            targets.insert(0, self.propagate(i, targets[0], trace))
        return targets

    def forward_step(self, trace: Trace, y: Tensor) -> Tensor:
        self.forward_optimizer.zero_grad(set_to_none=True)
        layers = self.net.layers
        loss = F.cross_entropy(trace.pre[-1], y)  # the output layer learns from the task loss
        local_backward(loss, None, layers[-1].parameters())
        for i, target in enumerate(self.targets(trace, y)):
            local_backward(_sq_error(trace.out[i], target), None, layers[i].parameters())
        self.clock.lap("signal")
        self.forward_optimizer.step()
        self.clock.lap("update")
        return loss.detach()

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"forward": self.forward_optimizer, "inverse": self.inverse_optimizer}

    def state_dict(self) -> dict[str, Any]:
        return {
            **super().state_dict(),
            "inverses": self.inverses.state_dict(),
            "phase": self.phase,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.inverses.load_state_dict(state["inverses"])
        super().load_state_dict(state)
        self.phase = state["phase"]


@ALGORITHMS.register(
    "dtp",
    aliases=("difference-target-propagation",),
    label="DTP",
    family="target-propagation",
    order=10,
)
class DifferenceTargetProp(_TargetProp):
    hparams = {**_TargetProp.hparams, "alpha": ALPHA, "alpha_scale": ALPHA_SCALE}
    noise_preserving = True


@ALGORITHMS.register(
    "tp", aliases=("target-propagation",), label="TP", family="target-propagation", order=40
)
class VanillaTargetProp(DifferenceTargetProp):
    """Described but not run in the paper: targets go down through the inverses alone."""

    @torch.no_grad()
    def propagate(self, i: int, target: Tensor, trace: Trace) -> Tensor:
        return self.g(i, target)


@ALGORITHMS.register(
    "sdtp", aliases=("simplified-dtp",), label="SDTP", family="target-propagation", order=20
)
class SimplifiedDTP(_TargetProp):
    top_inverse = True

    @torch.no_grad()
    def penultimate_target(self, trace: Trace, y: Tensor) -> Tensor:
        h = trace.out[-2].detach()
        top = len(self.net.layers) - 1
        onehot = F.one_hot(y, self.net.layers[-1].units).to(h.dtype)
        return h - self.g(top, self.top_features(h)) + self.g(top, self.top_output(onehot, h))

    def top_output(self, onehot: Tensor, h: Tensor) -> Tensor:
        """The output layer's target: the correct label distribution."""
        return onehot


@ALGORITHMS.register(
    "ao-sdtp", aliases=("aosdtp",), label="AO-SDTP", family="target-propagation", order=30
)
class AuxiliaryOutputSDTP(SimplifiedDTP):
    """SDTP with h_L = [o, z]: z = tanh(R h_{L-1}) are fixed random features of the
    penultimate layer (R Glorot, never trained) that give the targets more diversity."""

    hparams = {**SimplifiedDTP.hparams, "aux_units": AUX_UNITS}

    def __init__(self, net: Stack, hp: Mapping[str, Any]) -> None:
        output = net.layers[-1]
        n_in = output.op.weight.shape[1]
        aux = hp["aux_units"]
        self.features = glorot_uniform_(output.op.weight.new_empty(aux, n_in), n_in, aux)
        super().__init__(net, hp)

    def _inverse_weight(self, i: int) -> Tensor:
        if i < len(self.net.layers) - 1:
            return glorot_like(self.net.layers[i].op)
        # g_L reads [o, z]: a dense inverse from classes + aux_units back to h_{L-1}.
        classes, n_in = self.net.layers[i].op.weight.shape
        wide = classes + self.features.shape[0]
        return glorot_uniform_(self.features.new_empty(wide, n_in), wide, n_in)

    def aux(self, h: Tensor) -> Tensor:
        return torch.tanh(h.flatten(1) @ self.features.T)

    def top_features(self, h: Tensor) -> Tensor:
        return torch.cat([super().top_features(h), self.aux(h)], dim=1)

    def top_output(self, onehot: Tensor, h: Tensor) -> Tensor:
        return torch.cat([onehot, self.aux(h)], dim=1)

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "features": self.features.clone()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_state_dict(state)
        self.features.copy_(state["features"])

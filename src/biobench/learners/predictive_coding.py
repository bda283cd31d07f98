"""Predictive coding (PC), incremental PC (iPC) and the fixed-prediction assumption.

A PC network gives every hidden layer's output a value node v, a state of its own for each
sample that inference moves, and learns from the prediction errors between value nodes and
what the layer below predicts of them. With layers l = 0 .. L-1 (0-based, as `net.layers`),
v_0 = x the data (clamped) and layer l's prediction of the layer above

    a_l = op_l(v_l),   mu_l = f_l(a_l)                      (op_l, f_l: the layer's own)

each sample's energy is

    E_n = sum_{l < L-1} 1/2 || v_{l+1} - mu_l ||^2  +  E_out(mu_{L-1}, y)
    E_out = 1/2 || onehot(y) - mu_{L-1} ||^2          energy=se (default: the output clamped
                                                      to the one-hot target)
    E_out = CE(mu_{L-1}, y) = -log softmax(mu_{L-1})_y     energy=ce (PCX's ce_energy)

Write g_l = dE_n/dmu_l (= mu_l - v_{l+1} for a hidden layer, mu - onehot or softmax(mu) - onehot
for the output) and delta_l = g_l * f_l'(a_l) = dE_n/da_l. Then

    inference, T = inference_steps times:
        dE_n/dv_l = (v_l - mu_{l-1}) + op_l^T(delta_l)          l = 1 .. L-1
        v_l <- the value-node optimiser's step on it (sgd: v_l - inference_lr dE_n/dv_l)
    learning, once after inference (pc):
        dE/dtheta_l = d(a_l)/d(theta_l)^T delta_l / N      (E = mean_n E_n; theta_l = W_l, b_l)
        theta <- the weight optimiser's step (optimizer, lr, weight_decay, ...)

"op_l^T(delta)" is the layer op's VJP with its own weight (a matrix product, a transposed
convolution, the transposed LC op): PC's top-down error path reads W_l itself, the weight
transport of Whittington & Bogacz (2017), not a feedback matrix. Everything else is local: each
layer's weight gradient goes through that layer's own graph (`layer_grads`), as the other
layer-local rules'. Value nodes start at the forward pass (v_{l+1} = h_{l+1}; hidden errors 0)
and each sample relaxes on its own energy, so inference_lr does not depend on the batch size;
the value-node optimiser is made afresh for every minibatch (its state never outlives one).

    ipc (incremental PC, Salvatori et al. 2024): the weights take their step at every inference
        step t = 0 .. T-1, from the same state as the value nodes' (T weight steps a minibatch).
    fixed_prediction=true (pc; Millidge, Tschantz & Buckley 2020; Song et al. 2020's Z-IL):
        the predictions mu_l and slopes f_l'(a_l) stay at their forward values and the weights
        learn at the forward inputs: errors only propagate. With sgd, inference_lr = 1 and
        T >= L - 1 steps the errors are backprop's (v_l - mu_{l-1} = -dL_n/dh_l after the step
        that reaches l), so the update is exactly BP's gradient of the mean energy (CE's with
        energy=ce): PC's correctness check (tests/learners/test_predictive_coding.py).

Matched to the two public references (read through the code index):
    PCX (Pinchetti et al., ICLR 2025; github pcx-developers/pcx, liukidar/pcx): se_energy
        1/2 (h - u)^2 and ce_energy -(h log softmax(u)) with the output node frozen at the
        target (`vodes[-1].h.frozen`); forward initialisation (STATUS.INIT: h <- u); T
        inference steps of a value optimiser re-initialised per batch (optax sgd with
        momentum) on the batch-mean energy scaled back by the batch size (per-sample
        gradients, as here); then one weight step on the energy at the relaxed state (AdamW);
        iPC steps both optimisers from one gradient evaluation at each of its T steps. Its MLP
        configurations (examples/discriminative_experiments/MLP) take T 5 (PC) and 8 (iPC).
    pypc (Millidge; infer-actively/pypc `PCModel.train_updates`): mu_{l} += mu_dt (W^T(e f')
        - e) and errors recomputed, with `fixed_preds` keeping the predictions of the forward
        pass; weight gradient (e f') x^T at the layers' forward inputs.
Differences: biobench sums squared errors over units and averages the weight gradient over
the batch (PCX: the same; pypc: summed over the batch), and runs any Stack op (dense, conv,
LC) through its transpose, where pypc has dense layers only.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from biobench.archs.stack import Stack
from biobench.learners.base import (
    OPTIMIZER,
    Learner,
    Trace,
    direct_layers,
    layer_grads,
    local_forward,
    make_optimizer,
)
from biobench.nn.ops import transport
from biobench.registry import ALGORITHMS, register_family
from biobench.spec.params import Dist, HParam, with_defaults

register_family("predictive-coding", "predictive coding")

ENERGY = HParam(
    str,
    "output energy: se (1/2 |onehot - logits|^2) or ce (cross-entropy of the logits)",
    choices=("se", "ce"),
    default="se",
)
INFERENCE_STEPS = HParam(int, "T: value-node updates per minibatch", low=1, default=8)
INFERENCE_LR = HParam(
    float,
    "value-node step size (per sample)",
    low=0.0,
    low_open=True,
    default=0.1,
    search=Dist(0.01, 1.0, log=True),
)
INFERENCE_OPTIMIZER = HParam(
    str,
    "value-node optimiser: sgd (inference_momentum) or adam",
    choices=("sgd", "adam"),
    default="sgd",
)
INFERENCE_MOMENTUM = HParam(
    float,
    "value-node SGD momentum (inference_optimizer sgd only)",
    low=0.0,
    high=1.0,
    high_open=True,
    default=0.0,
    applies=("inference_optimizer", ("sgd",)),
)
FIXED_PREDICTION = HParam(
    bool,
    "hold predictions at their forward values (fixed-prediction assumption; BP at lr 1, T >= L)",
    default=False,
)


class _PredictiveCoding(Learner):
    """Inference on value nodes, then (pc) or during it (ipc) local weight updates."""

    hparams: ClassVar[dict[str, Any]] = {
        **with_defaults(OPTIMIZER, lr=3e-4),  # PCX's MLP runs' Adam(W) rate
        "energy": ENERGY,
        "inference_steps": INFERENCE_STEPS,
        "inference_lr": INFERENCE_LR,
        "inference_optimizer": INFERENCE_OPTIMIZER,
        "inference_momentum": INFERENCE_MOMENTUM,
    }
    family = "predictive-coding"
    incremental: ClassVar[bool] = False  # do the weights step at every inference step?

    def __init__(self, net: Stack, hp: Mapping[str, Any]) -> None:
        super().__init__(net, hp)
        self.optimizer = make_optimizer(net.parameters(), self.hp)

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"forward": self.optimizer}

    @property
    def fixed(self) -> bool:
        return bool(self.hp.get("fixed_prediction", False))

    def learns_at(self, t: int) -> bool:
        """Whether the weights step at state t (0: the forward pass, T: after inference)."""
        steps = self.hp["inference_steps"]
        return t < steps if self.incremental else t == steps

    # -- the energy and its gradients ---------------------------------------------------------

    def output_grad(self, mu: Tensor, y: Tensor) -> Tensor:
        """dE_out/dmu for each sample: mu - onehot (se) or softmax(mu) - onehot (ce)."""
        mu = mu.detach()
        onehot = F.one_hot(y, mu.shape[1]).to(mu.dtype)
        if self.hp["energy"] == "ce":
            wide = torch.promote_types(mu.dtype, torch.float32)  # bf16 logits: fp32 softmax
            return torch.softmax(mu, dim=1, dtype=wide).to(mu.dtype) - onehot
        return mu - onehot

    def deltas(self, values: list[Tensor], pred: Trace, y: Tensor) -> list[Tensor]:
        """delta_l = dE_n/da_l = g_l * f_l'(a_l) for every layer, per sample."""
        layers = self.net.layers
        out = []
        for l, layer in enumerate(layers):
            mu = pred.out[l].detach()
            g = self.output_grad(mu, y) if l == len(layers) - 1 else mu - values[l + 1]
            out.append(g * layer.activation.derivative(pred.pre[l].detach(), mu))
        return out

    def value_grads(self, values: list[Tensor], pred: Trace, deltas: list[Tensor]) -> list[Tensor]:
        """dE_n/dv_l = (v_l - mu_{l-1}) + op_l^T(delta_l) for the hidden value nodes l >= 1."""
        grads = []
        for l in range(1, len(self.net.layers)):
            # PC's top-down path reads W_l itself (module docstring): the op's own VJP.
            down = transport(self.net.layers[l].op, deltas[l]).reshape(values[l].shape)
            grads.append(values[l] - pred.out[l - 1].detach() + down)
        return grads

    def energy(self, values: list[Tensor], pred: Trace, y: Tensor) -> Tensor:
        """E = mean_n E_n at value nodes `values` with predictions `pred` (detached)."""
        mu = [m.detach().double() for m in pred.out]
        total = sum(
            0.5 * (values[l + 1].double() - mu[l]).pow(2).flatten(1).sum(1)
            for l in range(len(mu) - 1)
        )
        if self.hp["energy"] == "ce":
            top = F.cross_entropy(mu[-1], y, reduction="none")
        else:
            top = 0.5 * (F.one_hot(y, mu[-1].shape[1]).double() - mu[-1]).pow(2).sum(1)
        return (total + top).mean()

    # -- inference ----------------------------------------------------------------------------

    def predict(self, values: list[Tensor], graphs: list[bool] | None) -> Trace:
        """Every layer's prediction from its input value node, each graph one layer's own
        (recorded where graphs[l]; none with graphs None)."""
        trace = Trace([], [], [])
        for l, layer in enumerate(self.net.layers):
            with torch.set_grad_enabled(graphs is not None and graphs[l]):
                a = layer.preactivation(values[l])
                trace.inputs.append(values[l])
                trace.pre.append(a)
                trace.out.append(layer.activation(a))
        return trace

    def value_optimizer(self, nodes: list[Tensor]) -> torch.optim.Optimizer:
        lr = self.hp["inference_lr"]
        if self.hp["inference_optimizer"] == "adam":
            return torch.optim.Adam(nodes, lr=lr)
        return torch.optim.SGD(nodes, lr=lr, momentum=self.hp["inference_momentum"])

    def relaxation(
        self, x: Tensor, y: Tensor
    ) -> Iterator[tuple[list[Tensor], Trace, list[Tensor]]]:
        """The states of inference on (x, y): (values, predictions, deltas) after the forward
        pass (t = 0) and after each of the T value-node steps. The step from state t is taken
        when the next state is asked for, with the gradients computed before state t was
        handed out, so a caller that changes the weights at state t (iPC) leaves that step
        as it was. Predictions carry their layers' graphs at the states where weights learn."""
        direct = direct_layers(self.net)
        graphs = [not d for d in direct]
        steps = self.hp["inference_steps"]
        # The forward pass sets the value nodes; its graphs serve the fixed-prediction rule
        # (which learns at the forward values) and iPC's first step.
        first = self.fixed or self.learns_at(0)
        pred = local_forward(self.net, x, graphs=graphs if first else [False] * len(direct))
        values = [x, *(h.detach().clone() for h in pred.out[:-1])]
        self.clock.lap("forward")
        optimizer = self.value_optimizer(values[1:])
        for t in range(steps + 1):
            deltas = self.deltas(values, pred, y)
            grads = self.value_grads(values, pred, deltas) if t < steps else []
            yield values, pred, deltas
            if t == steps:
                return
            for node, grad in zip(values[1:], grads, strict=True):
                node.grad = grad
            optimizer.step()
            if not self.fixed:
                pred = self.predict(values, graphs if self.learns_at(t + 1) else None)

    # -- learning -----------------------------------------------------------------------------

    def weight_step(self, pred: Trace, deltas: list[Tensor]) -> None:
        """theta_l <- step on dE/dtheta_l, each through layer l's own op at its input."""
        self.optimizer.zero_grad(set_to_none=True)
        n = len(pred.inputs[0])
        # Under autograd_everywhere (alignment's probe) every layer's graph is recorded.
        layer_grads(self.net, pred, [d / n for d in deltas], direct_layers(self.net))
        self.clock.lap("signal")
        self.optimizer.step()
        self.clock.lap("update")

    def train_step(self, x: Tensor, y: Tensor) -> dict[str, Tensor]:
        """One minibatch; returns the forward pass's cross-entropy as "loss" (the energy is
        not computed only to report it)."""
        for t, (_, pred, deltas) in enumerate(self.relaxation(x, y)):
            if t == 0:
                logits = pred.pre[-1].detach()
            if self.learns_at(t):
                self.weight_step(pred, deltas)
        return {"loss": F.cross_entropy(logits, y)}


PC_HPARAMS = {**_PredictiveCoding.hparams, "fixed_prediction": FIXED_PREDICTION}


@ALGORITHMS.register(
    "pc", aliases=("predictive-coding",), label="PC", family="predictive-coding", order=80
)
class PredictiveCoding(_PredictiveCoding):
    """Predictive coding: T value-node steps on the energy, then one local weight step."""

    hparams = PC_HPARAMS


@ALGORITHMS.register(
    "ipc", aliases=("incremental-pc",), label="iPC", family="predictive-coding", order=81
)
class IncrementalPredictiveCoding(_PredictiveCoding):
    """Incremental predictive coding: a weight step at every value-node step."""

    incremental = True

"""Vanilla TP against a hand-written float64 reference of one update.

Vanilla target propagation carries targets down through the inverses alone,
    h^_{l-1} = g_l(h^_l),
from DTP's penultimate target h^_{L-1} = h_{L-1} - alpha dL/dh_{L-1}; its inverses learn DTP's
noise-preserving reconstruction loss. The reference spells this out with explicit matrices on
a tiny dense net (4 -> 5 -> 5 -> 4 -> 3 classes), independent of the learner's code, in the
style of test_target_prop.py. Adam's first step moves each parameter by lr * g / (|g| + eps).
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from biobench.learners.base import local_forward
from biobench.learners.target_prop import VanillaTargetProp
from biobench.registry import ALGORITHMS
from support.learners import tiny_tp_net

HP = {
    "lr": 0.01,
    "beta1": 0.9,
    "beta2": 0.999,
    "eps": 1e-8,
    "inverse_lr": 0.02,
    "inverse_beta1": 0.9,
    "inverse_beta2": 0.99,
    "inverse_eps": 1e-6,
    "sigma": 0.3,
    "alpha": 0.1,
}
Params = tuple[list[Tensor], list[Tensor], dict[int, Tensor], dict[int, Tensor]]


def make(mode: str) -> VanillaTargetProp:
    learner = ALGORITHMS.get("tp")(tiny_tp_net(), {**HP, "mode": mode})
    assert isinstance(learner, VanillaTargetProp)
    with torch.no_grad():
        for inverse in learner.inverses.values():
            inverse.bias.uniform_(-0.2, 0.2)
    return learner


def batch() -> tuple[Tensor, Tensor]:
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(6, 1, 2, 2, generator=generator, dtype=torch.float64)
    return x, torch.tensor([0, 1, 2, 0, 1, 2])


def adam_first_step(p: Tensor, g: Tensor, lr: float, eps: float) -> Tensor:
    return p - lr * g / (g.abs() + eps)


def reference(learner: VanillaTargetProp, phase: str, x: Tensor, y: Tensor, seed: int) -> Params:
    """The new forward weights/biases and inverse weights/biases after one step of `phase`."""
    W = [layer.op.weight.detach().clone() for layer in learner.net.layers]
    b = [layer.op.bias.detach().clone() for layer in learner.net.layers]
    V = {int(k): inv.weight.detach().clone() for k, inv in learner.inverses.items()}
    c = {int(k): inv.bias.detach().clone() for k, inv in learner.inverses.items()}
    assert sorted(V) == [1, 2]  # g_2 and g_3 in the paper's 1-based numbering; no g_L
    n, sigma, alpha = len(y), HP["sigma"], HP["alpha"]
    onehot = F.one_hot(y, 3).double()

    h = [x.flatten(1)]
    for i in range(3):
        h.append(torch.tanh(h[-1] @ W[i].T + b[i]))
    logits = h[3] @ W[3].T + b[3]

    torch.manual_seed(seed)
    V_new, c_new = dict(V), dict(c)
    if phase in ("train", "inverse"):  # noise-preserving: reconstruct the noisy input
        for i in (1, 2):  # the learner draws the noise layer by layer, upwards
            noisy = h[i] + sigma * torch.randn_like(h[i])
            f = torch.tanh(noisy @ W[i].T + b[i])
            v, cc = V[i].clone().requires_grad_(), c[i].clone().requires_grad_()
            loss = ((torch.tanh(f @ v + cc) - noisy) ** 2).sum() / n
            gv, gc = torch.autograd.grad(loss, [v, cc])
            V_new[i] = adam_first_step(V[i], gv, HP["inverse_lr"], HP["inverse_eps"])
            c_new[i] = adam_first_step(c[i], gc, HP["inverse_lr"], HP["inverse_eps"])

    def g(i: int, signal: Tensor) -> Tensor:  # with the inverses as they are after their step
        return torch.tanh(signal @ V_new[i] + c_new[i])

    W_new, b_new = list(W), list(b)
    if phase in ("train", "forward"):
        # d(sum of per-sample CE)/dh_3 = (softmax - onehot) W_4; then the inverses alone.
        target3 = h[3] - alpha * (torch.softmax(logits, 1) - onehot) @ W[3]
        target2 = g(2, target3)
        target1 = g(1, target2)
        for i, target in enumerate([target1, target2, target3]):
            w, bb = W[i].clone().requires_grad_(), b[i].clone().requires_grad_()
            loss = ((torch.tanh(h[i] @ w.T + bb) - target) ** 2).sum() / n
            gw, gb = torch.autograd.grad(loss, [w, bb])
            W_new[i] = adam_first_step(W[i], gw, HP["lr"], HP["eps"])
            b_new[i] = adam_first_step(b[i], gb, HP["lr"], HP["eps"])
        w, bb = W[3].clone().requires_grad_(), b[3].clone().requires_grad_()
        gw, gb = torch.autograd.grad(F.cross_entropy(h[3] @ w.T + bb, y), [w, bb])
        W_new[3] = adam_first_step(W[3], gw, HP["lr"], HP["eps"])
        b_new[3] = adam_first_step(b[3], gb, HP["lr"], HP["eps"])
    return W_new, b_new, V_new, c_new


@pytest.mark.parametrize(
    ("mode", "phase"),
    [("parallel", "train"), ("alternating", "inverse"), ("alternating", "forward")],
)
def test_one_vanilla_tp_update_matches_the_hand_computation(mode: str, phase: str) -> None:
    learner = make(mode)
    x, y = batch()
    W, b, V, c = reference(learner, phase, x, y, seed=5)
    learner.start_phase(phase)
    torch.manual_seed(5)
    learner.train_step(x, y)
    for i, layer in enumerate(learner.net.layers):
        torch.testing.assert_close(layer.op.weight.detach(), W[i], rtol=1e-9, atol=1e-12)
        torch.testing.assert_close(layer.op.bias.detach(), b[i], rtol=1e-9, atol=1e-12)
    for key, inverse in learner.inverses.items():
        torch.testing.assert_close(inverse.weight.detach(), V[int(key)], rtol=1e-9, atol=1e-12)
        torch.testing.assert_close(inverse.bias.detach(), c[int(key)], rtol=1e-9, atol=1e-12)


def test_vanilla_tp_targets_are_the_inverses_of_the_targets_above() -> None:
    """h^_1 = g_2(h^_2) = g_2(g_3(h^_3)): no difference correction, nothing of h_1 or h_2."""
    learner = make("parallel")
    x, y = batch()
    trace = local_forward(learner.net, x)
    target1, target2, target3 = learner.targets(trace, y)
    with torch.no_grad():
        torch.testing.assert_close(target2, learner.g(2, target3), rtol=0, atol=0)
        torch.testing.assert_close(target1, learner.g(1, learner.g(2, target3)), rtol=0, atol=0)
        assert not torch.allclose(target2, learner.g(2, trace.out[2]))  # g(h) would differ

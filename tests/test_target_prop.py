"""DTP, SDTP and AO-SDTP against a hand-written float64 reference of one update.

The reference below spells out the paper's equations with explicit matrices on a tiny dense
net (4 -> 5 -> 5 -> 4 -> 3 classes), independent of the learners' code: the inverse losses, one
Adam step of the inverses, the targets, the forward local losses and one Adam step of the
forward weights. Adam's first step moves each parameter by lr * g / (|g| + eps).
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from biobench.archs.stack import DataInfo, Layer, Stack
from biobench.learners.base import WeightTransportError, local_backward, local_forward
from biobench.nn import Dense, Identity, ReLU, Tanh, glorot_
from biobench.registry import ALGORITHMS

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
}
WIDTHS = [4, 5, 5, 4, 3]


def tiny_net() -> Stack:
    torch.manual_seed(0)
    layers = [
        Layer(Dense(a, b), Tanh() if i < 3 else Identity(), flatten=i == 0)
        for i, (a, b) in enumerate(zip(WIDTHS[:-1], WIDTHS[1:], strict=True))
    ]
    net = glorot_(Stack(layers, DataInfo("tiny", (1, 2, 2), 3))).double()
    with torch.no_grad():  # non-zero biases, so a bias mix-up cannot hide
        for layer in net.layers:
            layer.op.bias.uniform_(-0.3, 0.3)
    return net


def make(algorithm: str, mode: str):
    hp = {**HP, "mode": mode}
    if algorithm == "dtp":
        hp["alpha"] = 0.1
    if algorithm == "ao-sdtp":
        hp["aux_units"] = 2
    learner = ALGORITHMS.get(algorithm)(tiny_net(), hp)
    with torch.no_grad():
        for inverse in learner.inverses.values():
            inverse.bias.uniform_(-0.2, 0.2)
    return learner


def adam_first_step(p: torch.Tensor, g: torch.Tensor, lr: float, eps: float) -> torch.Tensor:
    return p - lr * g / (g.abs() + eps)


def reference(learner, algorithm: str, phase: str, x: torch.Tensor, y: torch.Tensor, seed: int):
    """The new forward weights/biases and inverse weights/biases after one step."""
    W = [layer.op.weight.detach().clone() for layer in learner.net.layers]
    b = [layer.op.bias.detach().clone() for layer in learner.net.layers]
    V = {int(k): inv.weight.detach().clone() for k, inv in learner.inverses.items()}
    c = {int(k): inv.bias.detach().clone() for k, inv in learner.inverses.items()}
    R = learner.features.clone() if algorithm == "ao-sdtp" else None
    n, sigma = len(y), HP["sigma"]
    onehot = F.one_hot(y, 3).double()

    h = [x.flatten(1)]
    for i in range(3):
        h.append(torch.tanh(h[-1] @ W[i].T + b[i]))
    logits = h[3] @ W[3].T + b[3]

    def top(hidden: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        o = torch.softmax(hidden @ W[3].T + b[3], 1) if out is None else out
        return o if R is None else torch.cat([o, torch.tanh(hidden @ R.T)], 1)

    def g(i: int, signal: torch.Tensor, V=V, c=c) -> torch.Tensor:
        return torch.tanh(signal @ V[i] + c[i])

    torch.manual_seed(seed)
    V_new, c_new = dict(V), dict(c)
    if phase in ("train", "inverse"):
        for i in sorted(V):  # the learner draws the noise layer by layer, upwards
            h_in = h[i]
            noisy = h_in + sigma * torch.randn_like(h_in)
            f = top(noisy) if i == 3 else torch.tanh(noisy @ W[i].T + b[i])
            v, cc = V[i].clone().requires_grad_(), c[i].clone().requires_grad_()
            rec = torch.tanh(f @ v + cc)
            goal = noisy if algorithm == "dtp" else h_in  # noise-preserving vs de-noising
            loss = ((rec - goal) ** 2).sum() / n
            gv, gc = torch.autograd.grad(loss, [v, cc])
            V_new[i] = adam_first_step(V[i], gv, HP["inverse_lr"], HP["inverse_eps"])
            c_new[i] = adam_first_step(c[i], gc, HP["inverse_lr"], HP["inverse_eps"])
    W_new, b_new = list(W), list(b)
    if phase in ("train", "forward"):
        if algorithm == "dtp":  # d(sum of per-sample CE)/dh_3 = (softmax - onehot) W_4
            target3 = h[3] - 0.1 * (torch.softmax(logits, 1) - onehot) @ W[3]
        else:
            target3 = h[3] - g(3, top(h[3]), V_new, c_new) + g(3, top(h[3], onehot), V_new, c_new)
        target2 = h[2] + g(2, target3, V_new, c_new) - g(2, h[3], V_new, c_new)
        target1 = h[1] + g(1, target2, V_new, c_new) - g(1, h[2], V_new, c_new)
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


def batch() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    return torch.randn(6, 1, 2, 2, generator=generator, dtype=torch.float64), torch.tensor(
        [0, 1, 2, 0, 1, 2]
    )


@pytest.mark.parametrize("algorithm", ["dtp", "sdtp", "ao-sdtp"])
@pytest.mark.parametrize(
    ("mode", "phase"),
    [("parallel", "train"), ("alternating", "inverse"), ("alternating", "forward")],
)
def test_one_update_matches_the_hand_computation(algorithm: str, mode: str, phase: str) -> None:
    learner = make(algorithm, mode)
    x, y = batch()
    assert learner.epoch_phases(1) == (
        ("train",) if mode == "parallel" else ("inverse", "forward")
    )
    W, b, V, c = reference(learner, algorithm, phase, x, y, seed=5)
    learner.start_phase(phase)
    torch.manual_seed(5)
    learner.train_step(x, y)
    for i, layer in enumerate(learner.net.layers):
        torch.testing.assert_close(layer.op.weight.detach(), W[i], rtol=1e-9, atol=1e-12)
        torch.testing.assert_close(layer.op.bias.detach(), b[i], rtol=1e-9, atol=1e-12)
    for key, inverse in learner.inverses.items():
        torch.testing.assert_close(inverse.weight.detach(), V[int(key)], rtol=1e-9, atol=1e-12)
        torch.testing.assert_close(inverse.bias.detach(), c[int(key)], rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("algorithm", ["tp", "dtp", "sdtp", "ao-sdtp"])
def test_alternating_mode_trains_one_side_per_pass(algorithm: str) -> None:
    learner = (
        make(algorithm, "alternating")
        if algorithm != "tp"
        else ALGORITHMS.get("tp")(tiny_net(), {**HP, "mode": "alternating", "alpha": 0.1})
    )
    x, y = batch()
    forward = [p.detach().clone() for p in learner.net.parameters()]
    inverse = [p.detach().clone() for p in learner.inverses.parameters()]
    learner.start_phase("inverse")
    learner.train_step(x, y)
    assert all(torch.equal(a, p) for a, p in zip(forward, learner.net.parameters(), strict=True))
    assert not any(
        torch.equal(a, p) for a, p in zip(inverse, learner.inverses.parameters(), strict=True)
    )
    inverse = [p.detach().clone() for p in learner.inverses.parameters()]
    learner.start_phase("forward")
    learner.train_step(x, y)
    assert all(
        torch.equal(a, p) for a, p in zip(inverse, learner.inverses.parameters(), strict=True)
    )
    assert not any(
        torch.equal(a, p) for a, p in zip(forward, learner.net.parameters(), strict=True)
    )


@pytest.mark.parametrize(("algorithm", "noise_preserving"), [("dtp", True), ("sdtp", False)])
def test_inverse_loss_kind(algorithm: str, noise_preserving: bool) -> None:
    learner = make(algorithm, "parallel")
    trace = local_forward(learner.net, batch()[0])
    torch.manual_seed(3)
    losses = learner.inverse_losses(trace)
    torch.manual_seed(3)
    noise = HP["sigma"] * torch.randn_like(trace.inputs[1])
    with torch.no_grad():
        noisy = trace.inputs[1] + noise
        rec = learner.g(1, learner.net.layers[1](noisy))
        goal = noisy if noise_preserving else trace.inputs[1]
        torch.testing.assert_close(losses[1].detach(), ((rec - goal) ** 2).sum(1).mean())


def test_a_gradient_spanning_two_layers_is_refused() -> None:
    net = tiny_net()
    x, _ = batch()
    two_layers = net.layers[1](net.layers[0](x)).sum()
    with pytest.raises(WeightTransportError):
        local_backward(two_layers, None, net.layers[1].parameters())


@pytest.mark.parametrize("algorithm", ["sdtp", "ao-sdtp"])
def test_simplified_dtp_takes_no_gradient_beyond_one_layer(
    algorithm: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import biobench.learners.target_prop as tp

    def forbidden(*args, **kwargs):
        raise AssertionError("SDTP must not differentiate through a layer to get a target")

    monkeypatch.setattr(tp, "local_grad", forbidden)
    learner = make(algorithm, "parallel")
    learner.train_step(*batch())


@pytest.mark.parametrize("algorithm", ["dtp", "sdtp"])
def test_an_inverse_ends_in_the_activation_of_the_space_it_maps_into(algorithm: str) -> None:
    torch.manual_seed(0)
    activations = [ReLU(), Tanh(), ReLU(), Identity()]
    layers = [
        Layer(Dense(a, b), activation, flatten=i == 0)
        for i, (a, b, activation) in enumerate(
            zip(WIDTHS[:-1], WIDTHS[1:], activations, strict=True)
        )
    ]
    net = glorot_(Stack(layers, DataInfo("tiny", (1, 2, 2), 3))).double()
    hp = {**HP, "mode": "parallel", "alpha": 0.1}
    learner = ALGORITHMS.get(algorithm)(net, hp)
    for key, inverse in learner.inverses.items():
        assert inverse.activation is net.layers[int(key) - 1].activation
    h = torch.randn(6, 5, dtype=torch.float64)
    assert (learner.g(1, h) >= 0).all()  # layers[1]'s inverse maps into layers[0]'s ReLU space
    learner.train_step(*batch())


@pytest.mark.parametrize(
    ("mode", "phase", "keys"),
    [
        ("parallel", "train", {"inverse_loss", "loss"}),
        ("alternating", "inverse", {"inverse_loss"}),
        ("alternating", "forward", {"loss"}),
    ],
)
def test_a_step_reports_only_the_losses_it_computed(mode: str, phase: str, keys: set) -> None:
    learner = make("dtp", mode)
    learner.start_phase(phase)
    metrics = learner.train_step(*batch())
    assert set(metrics) == keys
    assert all(not m.requires_grad and torch.isfinite(m) for m in metrics.values())

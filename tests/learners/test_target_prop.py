"""DTP, SDTP and AO-SDTP against a hand-written float64 reference of one update.

The reference below spells out the paper's equations with explicit matrices on a tiny dense
net (4 -> 5 -> 5 -> 4 -> 3 classes), independent of the learners' code: the inverse losses, one
Adam step of the inverses, the targets, the forward local losses and one Adam step of the
forward weights. Adam's first step moves each parameter by lr * g / (|g| + eps).
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from biobench.archs.stack import DataInfo, Layer, Stack
from biobench.errors import SpecError
from biobench.learners.base import WeightTransportError, local_backward, local_forward
from biobench.nn import Dense, Identity, ReLU, Tanh, glorot_
from biobench.registry import ALGORITHMS
from biobench.spec import resolve
from support.learners import WIDTHS, tiny_tp_net

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


def make(algorithm: str, mode: str):
    hp = {**HP, "mode": mode}
    if algorithm == "dtp":
        hp["alpha"] = 0.1
    if algorithm == "ao-sdtp":
        hp["aux_units"] = 2
    learner = ALGORITHMS.get(algorithm)(tiny_tp_net(), hp)
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
        else ALGORITHMS.get("tp")(tiny_tp_net(), {**HP, "mode": "alternating", "alpha": 0.1})
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
    net = tiny_tp_net()
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


# What a run with no --set and no preset trains with (`biobench list algorithms` states these).
DEFAULTS = {
    "lr": 3e-4,
    "beta1": 0.9,
    "beta2": 0.999,
    "eps": 1e-8,
    "inverse_lr": 1e-3,
    "inverse_beta1": 0.9,
    "inverse_beta2": 0.999,
    "inverse_eps": 1e-8,
    "sigma": 0.1,
    "mode": "alternating",
}


ALPHA = {"alpha": 0.1, "alpha_scale": "sample"}


EXTRA = {"tp": ALPHA, "dtp": ALPHA, "sdtp": {}, "ao-sdtp": {"aux_units": 512}}


@pytest.mark.parametrize("algorithm", list(EXTRA))
def test_a_run_without_settings_takes_the_documented_target_prop_defaults(algorithm: str) -> None:
    spec = resolve(algorithm=algorithm, architecture="fc", dataset="digits")
    assert spec.hparams == {**DEFAULTS, **EXTRA[algorithm]}


@pytest.mark.parametrize(
    ("algorithm", "settings"),
    [
        ("dtp", "sigma=0"),
        ("dtp", "alpha=1e-9"),
        ("dtp", "alpha_scale=batch"),
        ("dtp", "mode=parallel"),
        ("sdtp", "inverse_beta1=0 inverse_beta2=0.5 inverse_lr=1e-9 inverse_eps=1e-12"),
        ("ao-sdtp", "aux_units=1"),
    ],
)
def test_the_edges_of_each_target_prop_setting_are_accepted(algorithm: str, settings: str) -> None:
    overrides = settings.split()
    spec = resolve(algorithm=algorithm, architecture="fc", dataset="digits", overrides=overrides)
    for name, value in (item.split("=") for item in overrides):
        parsed = spec.hparams[name]
        assert str(parsed) == value or parsed == pytest.approx(float(value))


@pytest.mark.parametrize(
    ("algorithm", "setting", "problem"),
    [
        ("dtp", "sigma=-0.01", "is out of range"),
        ("dtp", "alpha=0", "is out of range"),
        ("dtp", "alpha_scale=mean", "is not allowed"),
        ("sdtp", "mode=sideways", "is not allowed"),
        ("sdtp", "inverse_beta1=1", "is out of range"),
        ("sdtp", "inverse_lr=0", "is out of range"),
        ("ao-sdtp", "aux_units=0", "is out of range"),
    ],
)
def test_just_past_each_target_prop_edge_is_refused(
    algorithm: str, setting: str, problem: str
) -> None:
    name, value = setting.split("=")
    with pytest.raises(SpecError, match=f"{name}='{value}' {problem}"):
        resolve(algorithm=algorithm, architecture="fc", dataset="digits", overrides=[setting])


def test_the_inverses_optimizer_settings_say_they_are_the_inverses() -> None:
    # `biobench list algorithms` shows each setting's meaning: inverse_lr must not read as the
    # forward weights' learning rate.
    hparams = ALGORITHMS.entry("dtp").hparams
    for name in ("lr", "beta1", "beta2", "eps"):
        assert hparams[f"inverse_{name}"].help == f"inverses' {hparams[name].help}"


def scramble(learner) -> None:
    """Other weights, inverses and (AO-SDTP) fixed features than the learner was built with."""
    with torch.no_grad():
        for p in [*learner.net.parameters(), *learner.inverses.parameters()]:
            p.normal_()
        if hasattr(learner, "features"):
            learner.features.normal_()


@pytest.mark.parametrize("algorithm", ["dtp", "ao-sdtp"])
def test_a_learner_restored_from_its_state_takes_the_same_next_step(algorithm: str) -> None:
    # A resumed run restores the weights, the inverses, both optimisers, the pass it was in
    # and AO-SDTP's fixed features: its next step must be the uninterrupted learner's.
    x, y = batch()
    learner = make(algorithm, "alternating")
    learner.start_phase("inverse")
    learner.train_step(x, y)
    learner.start_phase("forward")
    state = copy.deepcopy(learner.state_dict())
    resumed = make(algorithm, "alternating")
    scramble(resumed)
    resumed.load_state_dict(state)
    assert resumed.phase == "forward"
    for each in (learner, resumed):
        torch.manual_seed(7)
        each.train_step(x, y)
    after = [learner.state_dict(), resumed.state_dict()]
    assert after[0]["phase"] == after[1]["phase"] == "forward"
    for key in ("net", "inverses"):
        for name, tensor in after[0][key].items():
            assert torch.equal(tensor, after[1][key][name]), name
    if algorithm == "ao-sdtp":
        assert torch.equal(learner.features, resumed.features)
    assert set(state["optimizers"]) == {"forward", "inverse"}  # as older checkpoints name them


def test_an_inverse_pass_reports_the_sum_of_the_inverse_losses() -> None:
    # DTP's noise-preserving losses || (h + eps) - g(f(h + eps)) ||^2 of g_2 and g_3 (1-based),
    # by hand in float64, with the noise drawn as the learner draws it: layer by layer, upwards.
    learner = make("dtp", "alternating")
    x, y = batch()
    W = [layer.op.weight.detach() for layer in learner.net.layers]
    b = [layer.op.bias.detach() for layer in learner.net.layers]
    V = {int(k): inv.weight.detach().clone() for k, inv in learner.inverses.items()}
    c = {int(k): inv.bias.detach().clone() for k, inv in learner.inverses.items()}
    h = [x.flatten(1)]
    for i in range(2):
        h.append(torch.tanh(h[-1] @ W[i].T + b[i]))
    torch.manual_seed(5)
    expected = 0.0
    for i in (1, 2):
        noisy = h[i] + HP["sigma"] * torch.randn_like(h[i])
        rec = torch.tanh(torch.tanh(noisy @ W[i].T + b[i]) @ V[i] + c[i])
        expected += float(((rec - noisy) ** 2).sum()) / len(y)
    learner.start_phase("inverse")
    torch.manual_seed(5)
    reported = learner.train_step(x, y)["inverse_loss"]
    assert float(reported) == pytest.approx(expected, rel=1e-12)


def three_layer_net() -> Stack:
    torch.manual_seed(0)
    widths = [4, 5, 4, 3]
    layers = [
        Layer(Dense(a, b), Tanh() if i < 2 else Identity(), flatten=i == 0)
        for i, (a, b) in enumerate(zip(widths[:-1], widths[1:], strict=True))
    ]
    return glorot_(Stack(layers, DataInfo("tiny", (1, 2, 2), 3))).double()


@pytest.mark.parametrize("algorithm", ["dtp", "tp", "sdtp"])
def test_the_penultimate_target_of_a_three_layer_net_is_that_of_its_middle_layer(
    algorithm: str,
) -> None:
    # L-1 is the layer below the output at any depth (1-based L = 3 here):
    #   DTP, TP: h^_{L-1} = h_{L-1} - alpha dL/dh_{L-1};
    #   SDTP:    h^_{L-1} = h_{L-1} - g_L(softmax(a_L)) + g_L(onehot(y)).
    net = three_layer_net()
    learner = ALGORITHMS.get(algorithm)(net, {**HP, "mode": "parallel", "alpha": 0.1})
    x, y = batch()
    W = [layer.op.weight.detach() for layer in net.layers]
    b = [layer.op.bias.detach() for layer in net.layers]
    h1 = torch.tanh(torch.tanh(x.flatten(1) @ W[0].T + b[0]) @ W[1].T + b[1])
    probabilities, onehot = torch.softmax(h1 @ W[2].T + b[2], 1), F.one_hot(y, 3).double()
    if algorithm == "sdtp":
        V, c = learner.inverses["2"].weight.detach(), learner.inverses["2"].bias.detach()
        expected = h1 - torch.tanh(probabilities @ V + c) + torch.tanh(onehot @ V + c)
    else:
        expected = h1 - 0.1 * (probabilities - onehot) @ W[2]
    target = learner.penultimate_target(local_forward(net, x), y)
    torch.testing.assert_close(target, expected, rtol=1e-10, atol=1e-13)


def test_the_target_prop_rules_are_named_grouped_and_ordered_as_tables_show_them() -> None:
    # `--algo difference-target-propagation` etc. name them; tables label them as the paper
    # does, group them under target propagation and list them in the paper's order, then the
    # rules it does not run (DDTP, then TP, which it only describes).
    rules = {
        "dtp": ("difference-target-propagation", "DTP"),
        "sdtp": ("simplified-dtp", "SDTP"),
        "ao-sdtp": ("aosdtp", "AO-SDTP"),
        "dtp-drl": ("ddtp", "DTP-DRL"),
        "tp": ("target-propagation", "TP"),
    }
    for name, (alias, label) in rules.items():
        entry = ALGORITHMS.entry(alias)
        assert (entry.name, entry.label, entry.family) == (name, label, "target-propagation")
    family = [e.name for e in ALGORITHMS.entries() if e.family == "target-propagation"]
    assert family == list(rules)

"""What mutation testing of learners/target_prop.py found unguarded: the settings TP, DTP, SDTP
and AO-SDTP take without --set and the edges of what --set accepts; a learner restored from its
state (inverses, pass, AO-SDTP's features, the optimisers' names in a checkpoint); the inverse
loss an inverse pass reports; the penultimate target on a net that is not 4 layers deep (the
hand computations of test_target_prop.py use one where out[2] is out[-2]); and the rules'
names, labels, family and order in tables."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from biobench.archs.stack import DataInfo, Layer, Stack
from biobench.errors import SpecError
from biobench.learners.base import local_forward
from biobench.nn import Dense, Identity, Tanh, glorot_
from biobench.registry import ALGORITHMS
from biobench.spec import resolve
from test_target_prop import HP, batch, make

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

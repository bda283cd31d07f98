"""Alignment metrics (training/alignment.py) against hand computations and identities, in
float64: BP and FA with B = W^T align perfectly, a rule that negates the signal scores 180
degrees, DFA's signal cosine is the hand-computed cosine, and measuring changes nothing."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from biobench.archs import ARCHITECTURES, build_network
from biobench.learners.base import weighted_ops
from biobench.learners.bp import Backprop
from biobench.registry import ALGORITHMS
from biobench.training.alignment import Probe, angle, mean_cosine, measure
from support.learners import TINY, batch, hparams, net64

TP_RULES = [
    e.name
    for e in ALGORITHMS.entries()
    if e.family == "target-propagation" and "mode" in e.hparams
]


def probe(n: int = 6) -> Probe:
    return Probe(*batch(n))


def make(algorithm: str, arch: str = "fc", seed: int = 0):
    return ALGORITHMS.get(algorithm)(net64(arch, seed), hparams(algorithm))


def test_angle_and_cosine_by_hand() -> None:
    a = torch.tensor([1.0, 0.0], dtype=torch.float64)
    assert angle(a, torch.tensor([0.0, 2.0])) == pytest.approx(90.0)
    assert angle(a, torch.tensor([1.0, 1.0])) == pytest.approx(45.0)
    assert angle(a, -3 * a) == pytest.approx(180.0)
    assert angle(a, torch.tensor([1.0, 1e-9])) == pytest.approx(math.degrees(1e-9), rel=1e-6)
    assert angle(a, torch.zeros(2)) is None
    rows = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 0.0]])
    other = torch.tensor([[2.0, 0.0], [-1.0, -1.0], [1.0, 0.0]])
    assert mean_cosine(rows, other) == pytest.approx((1.0 - 1.0) / 2)  # the zero row is left out
    assert mean_cosine(torch.zeros(2, 2), other[:2]) is None


@pytest.mark.parametrize("arch", ["fc", "lc", "conv"])
def test_backprop_aligns_with_itself(arch: str) -> None:
    rows = measure(make("bp", arch), probe(), epoch=1)
    assert [row["layer"] for row in rows] == list(range(1, len(rows) + 1))
    for row in rows:
        assert row["update_angle"] == pytest.approx(0.0, abs=1e-5)
        assert row["weight_angle"] is None  # BP has no feedback weights
    assert all(row["signal_cosine"] == pytest.approx(1.0, abs=1e-12) for row in rows[:-1])
    assert rows[-1]["signal_cosine"] is None  # the output layer is not a hidden layer
    assert rows[0]["name"] == "layers.0.op.weight"


@pytest.mark.parametrize("algorithm", ["fa", "kp", "wm"])
def test_feedback_equal_to_the_forward_weights_aligns_exactly(algorithm: str) -> None:
    # WM's mirror mode sends noise through the same ops after the update: the signal measured
    # is the update's, not the mirror's.
    learner = make(algorithm)
    for l, feedback in learner.feedback_weights().items():
        feedback.copy_(learner.net.layers[l].op.weight.detach())
    rows = measure(learner, probe(), epoch=1)
    assert all(row["update_angle"] == pytest.approx(0.0, abs=1e-5) for row in rows)
    assert all(row["signal_cosine"] == pytest.approx(1.0, abs=1e-12) for row in rows[:-1])
    assert rows[0]["weight_angle"] is None  # nothing is sent below the first layer
    assert all(row["weight_angle"] == pytest.approx(0.0, abs=1e-5) for row in rows[1:])


def test_feedback_of_the_opposite_sign_scores_180_degrees() -> None:
    # B = -W^T on the top layer only: the penultimate layer's signal is exactly -delta, its
    # update exactly -dL/dW; the output layer's update stays BP's.
    learner = make("fa")
    for feedback, layer in zip(learner.feedback, learner.net.layers[1:], strict=True):
        feedback.copy_(layer.op.weight.detach())
    learner.feedback[-1].neg_()
    rows = measure(learner, probe(), epoch=1)
    assert rows[-1]["update_angle"] == pytest.approx(0.0, abs=1e-5)
    assert rows[-2]["update_angle"] == pytest.approx(180.0, abs=1e-5)
    assert rows[-2]["signal_cosine"] == pytest.approx(-1.0, abs=1e-12)
    assert rows[-1]["weight_angle"] == pytest.approx(180.0, abs=1e-5)


def test_random_feedback_matches_a_float64_hand_computation() -> None:
    x, y = batch(6)
    learner = make("dfa")
    W = [layer.op.weight.detach() for layer in learner.net.layers]
    b = [layer.op.bias.detach() for layer in learner.net.layers]
    h = [x.flatten(1)]
    for i in range(len(W) - 1):
        h.append(torch.tanh(h[-1] @ W[i].T + b[i]))
    logits = h[-1] @ W[-1].T + b[-1]
    e = (torch.softmax(logits, 1) - F.one_hot(y, 10).double()) / len(y)
    # BP: delta_{l-1} = (W_l^T delta_l) * tanh'; DFA: delta_l = (D_l e) * tanh'.
    bp = [e]
    for i in range(len(W) - 1, 0, -1):
        bp.insert(0, (bp[0] @ W[i]) * (1 - h[i] ** 2))
    dfa = [(e @ D.T) * (1 - hl**2) for D, hl in zip(learner.feedback, h[1:], strict=True)] + [e]
    rows = measure(learner, Probe(x, y), epoch=1)
    for l, row in enumerate(rows):
        want = torch.nn.functional.cosine_similarity(dfa[l], bp[l], dim=1).mean().item()
        if l < len(rows) - 1:
            assert row["signal_cosine"] == pytest.approx(want, abs=1e-12)
        u, v = dfa[l].T @ h[l], bp[l].T @ h[l]
        u, v = u / u.norm(), v / v.norm()  # the angle between unit vectors, stable near 0
        want = math.degrees(2 * math.atan2(float((u - v).norm()), float((u + v).norm())))
        assert row["update_angle"] == pytest.approx(want, abs=1e-9)
        assert row["weight_angle"] is None  # D_l is not W_l's shape


@pytest.mark.parametrize("algorithm", ALGORITHMS.names())
@pytest.mark.parametrize("arch", ARCHITECTURES.names())
def test_measuring_changes_nothing_of_the_run(algorithm: str, arch: str) -> None:
    if not ARCHITECTURES.entry(arch).supports(ALGORITHMS.entry(algorithm)):
        pytest.skip(f"{arch} does not take {algorithm}'s family")

    def two_steps(align: bool) -> tuple[list[torch.Tensor], list]:
        torch.manual_seed(0)
        learner = ALGORITHMS.get(algorithm)(build_network(arch, TINY), hparams(algorithm))
        x, y = (t.float() if t.is_floating_point() else t for t in batch(8))
        rows = []
        for epoch in (1, 2):
            learner.train_step(x, y)
            if align:
                rows = measure(learner, Probe(x[:4], y[:4]), epoch)
        learner.train_step(x, y)  # a random stream consumed by measuring would show here
        return [p.detach().clone() for p in learner.net.parameters()], rows

    plain, _ = two_steps(False)
    measured, rows = two_steps(True)
    assert all(torch.equal(a, b) for a, b in zip(plain, measured, strict=True))
    assert len(rows) == len(weighted_ops(build_network(arch, TINY)))
    assert all(row["update_angle"] is not None for row in rows), rows


@pytest.mark.parametrize("algorithm", TP_RULES)
def test_alternating_target_propagation_is_measured_on_its_forward_pass(algorithm: str) -> None:
    # After an epoch the loop leaves the rule in its last pass (forward); the probe's copy must
    # step that pass, which updates the forward weights, not the inverse pass before it.
    torch.manual_seed(0)
    learner = ALGORITHMS.get(algorithm)(
        build_network("fc", TINY), hparams(algorithm) | {"mode": "alternating"}
    )
    x, y = (t.float() if t.is_floating_point() else t for t in batch(8))
    for phase in learner.epoch_phases(1):
        learner.start_phase(phase)
        learner.train_step(x, y)
    rows = measure(learner, Probe(x[:4], y[:4]), epoch=2)
    assert all(row["update_angle"] is not None for row in rows), rows


def test_the_probe_is_fixed_by_the_seed() -> None:
    from biobench.data.base import TensorSplit

    split = TensorSplit(torch.arange(40.0).reshape(10, 1, 2, 2), torch.arange(10))
    first, again = Probe.draw(split, 4, seed=3), Probe.draw(split, 4, seed=3)
    assert torch.equal(first.y, again.y) and len(first.y) == 4
    assert not torch.equal(first.y, Probe.draw(split, 4, seed=4).y)
    assert len(Probe.draw(split, 64, seed=3).y) == 10  # never more than the split holds


def test_backprop_class_is_the_registered_bp() -> None:
    assert ALGORITHMS.get("bp") is Backprop

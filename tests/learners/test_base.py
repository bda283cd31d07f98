"""What mutation testing of learners/base.py found unguarded: the optimiser a rule built with
Adam's four settings alone gets, Adam's weight decay, the full wording of the optimiser and
milestone refusals, the transport guard (its walk past a constant's branch, what its
once-per-call-site record keys on, that the record goes with its parameters, --debug and
BIOBENCH_DEBUG), autograd_everywhere's restore when nested, and what a plugin rule gets without
declaring it."""

from __future__ import annotations

import gc

import pytest
import torch

from biobench.archs import build_network
from biobench.errors import SpecError
from biobench.learners import base
from biobench.learners.base import (
    OPTIMIZER,
    WeightTransportError,
    autograd_everywhere,
    direct_layers,
    local_backward,
    local_grad,
)
from biobench.registry import ALGORITHMS
from support.learners import TINY

ADAM_ONLY = {"lr": 0.01, "beta1": 0.8, "beta2": 0.99, "eps": 1e-6}


@pytest.mark.parametrize("algorithm", ["bp", "fa"])
def test_a_rule_given_only_adams_settings_trains_with_plain_adam_at_a_constant_rate(
    algorithm: str,
) -> None:
    # A learner built by hand with the paper's four Adam settings (as before the optimiser
    # settings existed) gets the paper's Adam: no weight decay, no schedule, no SGD.
    learner = ALGORITHMS.get(algorithm)(build_network("fc", TINY), ADAM_ONLY)
    (optimizer,) = learner.optimizers().values()
    assert type(optimizer) is torch.optim.Adam
    (group,) = optimizer.param_groups
    assert (group["lr"], group["betas"], group["eps"]) == (0.01, (0.8, 0.99), 1e-6)
    assert group["weight_decay"] == 0.0
    assert learner.epoch_phases(300) == ("train",)
    assert group["lr"] == 0.01


def settings(**given) -> dict:
    return {name: p.default for name, p in OPTIMIZER.items()} | given


@pytest.mark.parametrize(
    ("given", "message"),
    [
        (
            {"momentum": 0.9},
            "momentum=0.9 applies to optimizer=sgd only; add --set optimizer=sgd or drop momentum",
        ),
        (
            {"nesterov": True},
            "nesterov=True applies to optimizer=sgd only; add --set optimizer=sgd or drop "
            "nesterov",
        ),
        (
            {"optimizer": "sgd", "nesterov": True},
            "nesterov=true needs momentum > 0; add e.g. --set momentum=0.9",
        ),
    ],
)
def test_a_setting_of_another_optimizer_is_refused_saying_how_to_fix_it(
    given: dict, message: str
) -> None:
    with pytest.raises(SpecError) as refused:
        ALGORITHMS.get("bp")(build_network("fc", TINY), settings(**given))
    assert str(refused.value) == message


# -- the transport guard's record of call sites already checked ------------------------------


@pytest.fixture
def once_per_call_site():
    base.check_every_step(False)  # as a run without --debug sets it
    yield
    base.check_every_step(False)


def test_a_foreign_tensor_is_refused_at_a_call_site_that_passed_with_another_shape(
    once_per_call_site,
) -> None:
    w, foreign = torch.randn(3, requires_grad=True), torch.randn(3, requires_grad=True)
    local_backward((w * 2).sum(), None, [w])  # checked once: scalar output, SumBackward
    refusal = "local_backward: the graph reaches 1 tensor"
    with pytest.raises(WeightTransportError, match=refusal):
        local_backward(w * foreign, torch.ones(3), [w])  # another shape
    with pytest.raises(WeightTransportError, match=refusal):
        local_backward((w * foreign).mean(), None, [w])  # another head: MeanBackward


def test_a_foreign_tensor_is_refused_by_local_grad_where_local_backward_passed(
    once_per_call_site,
) -> None:
    w, h = torch.randn(3, requires_grad=True), torch.randn(3, requires_grad=True)
    local_backward((w * h).sum(), None, [w, h])
    foreign = torch.randn(3, requires_grad=True)
    with pytest.raises(WeightTransportError, match="local_grad: the graph reaches 1 tensor"):
        local_grad((w * h * foreign).sum(), h, [w])


def test_the_record_of_a_checked_call_site_goes_with_its_parameters(once_per_call_site) -> None:
    # Else a new parameter at a dead one's address would inherit its pass.
    w = torch.randn(3, requires_grad=True)
    local_backward((w * 2).sum(), None, [w])
    address = id(w)
    assert address in base._CHECKED
    del w
    gc.collect()
    assert address not in base._CHECKED


def test_under_debug_a_call_site_that_passed_is_walked_again(once_per_call_site) -> None:
    w, foreign = torch.randn(3, requires_grad=True), torch.randn(3, requires_grad=True)
    local_backward((w * 2).sum(), None, [w])
    base.check_every_step()  # as `biobench --debug run` sets it
    with pytest.raises(WeightTransportError, match="reaches 1 tensor"):
        local_backward((w * foreign).sum(), None, [w])  # same shape and head


@pytest.mark.parametrize(
    ("value", "walks"), [(None, False), ("", False), ("0", False), ("1", True), ("yes", True)]
)
def test_biobench_debug_in_the_environment_makes_a_run_walk_every_step(
    value: str | None, walks: bool, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # README: `biobench --debug run ...`, or BIOBENCH_DEBUG=1, walks every step's graphs.
    from typer.testing import CliRunner

    from biobench.cli.app import app
    from biobench.training import runner

    seen = []

    def run_request(*args, **kwargs):
        seen.append(base._EVERY_STEP["on"])
        raise KeyboardInterrupt

    monkeypatch.setattr(runner, "run_request", run_request)
    if value is None:
        monkeypatch.delenv("BIOBENCH_DEBUG", raising=False)
    else:
        monkeypatch.setenv("BIOBENCH_DEBUG", value)
    try:
        for debug in ([], ["--debug"]):
            command = [*debug, "run", "--algo", "fa", "--data", "synthetic", "--db", sqlite_url]
            CliRunner().invoke(app, command)
    finally:
        base.check_every_step(False)
    assert seen == [walks, True]


def test_autograd_everywhere_restores_what_it_found_when_nested() -> None:
    net = build_network("fc", TINY)
    assert all(direct_layers(net))  # dense ops take their own gradients
    with autograd_everywhere():
        with autograd_everywhere():
            assert not any(direct_layers(net))
        assert not any(direct_layers(net))  # the outer block still sends all through autograd
    assert all(direct_layers(net))


@pytest.mark.parametrize("milestones", ["5,5", "1,2,2"])
def test_a_milestone_given_twice_is_refused_saying_what_milestones_take(milestones: str) -> None:
    from biobench.spec import resolve

    with pytest.raises(SpecError) as refused:
        resolve(
            algorithm="bp",
            architecture="fc",
            dataset="digits",
            overrides=[f"lr_milestones={milestones}"],
        )
    assert str(refused.value) == (
        f"lr_milestones='{milestones}' is not increasing from 1; lr_milestones takes epochs >= 1, "
        "comma-separated and increasing (e.g. 100,150,200) (epochs after which step multiplies "
        "the lr by lr_gamma)"
    )


def test_adam_with_weight_decay_adds_the_l2_term_to_the_gradient() -> None:
    # --set weight_decay=0.5 under Adam: torch's L2 term, g + 0.5 w; Adam's first step moves
    # each weight by lr * g' / (|g'| + eps), so the second weight climbs against its gradient.
    from biobench.learners.base import make_optimizer

    w = torch.tensor([1.0, -2.0], dtype=torch.float64, requires_grad=True)
    optimizer = make_optimizer([w], settings(lr=0.1, eps=1e-8, weight_decay=0.5))
    w.grad = torch.tensor([0.1, 0.1], dtype=torch.float64)
    optimizer.step()
    g = torch.tensor([0.1 + 0.5 * 1.0, 0.1 + 0.5 * -2.0], dtype=torch.float64)
    expected = torch.tensor([1.0, -2.0], dtype=torch.float64) - 0.1 * g / (g.abs() + 1e-8)
    torch.testing.assert_close(w.detach(), expected, rtol=1e-12, atol=1e-12)


# -- what a plugin rule gets without declaring it ---------------------------------------------


class Minimal(base.Learner):
    """A rule that declares nothing but its step."""

    def train_step(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        return {}


def test_a_rule_that_declares_nothing_is_listed_under_its_name_among_other_rules_last() -> None:
    entry = ALGORITHMS.make_entry("minimal", Minimal)
    assert (entry.display, entry.family, dict(entry.hparams)) == ("minimal", "other", {})
    bp = ALGORITHMS.entry("bp")
    assert sorted([entry, bp], key=lambda e: (e.order, e.name)) == [bp, entry]


def test_a_rule_without_a_step_cannot_be_built() -> None:
    class NoStep(base.Learner):
        pass

    with pytest.raises(TypeError, match="train_step"):
        NoStep(build_network("fc", TINY), {})


def test_evaluating_a_learner_records_no_autograd_graph() -> None:
    learner = Minimal(build_network("fc", TINY), {})
    logits = learner.logits(torch.randn(2, *TINY.input_shape))
    assert logits.shape == (2, TINY.num_classes) and not logits.requires_grad


def test_a_foreign_tensor_is_found_behind_a_branch_with_a_constant(once_per_call_site) -> None:
    # The walk must go on past a constant's empty branch (and nodes seen already).
    w, foreign = torch.randn(3, requires_grad=True), torch.randn(3, requires_grad=True)
    constant = torch.randn(3)
    with pytest.raises(WeightTransportError, match="reaches 1 tensor"):
        local_backward((foreign * 3 + w * constant).sum(), None, [w])

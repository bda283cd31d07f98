"""The optimiser and learning-rate schedule as declared settings: SGD with momentum against a
float64 hand computation, Adam unchanged by default, the schedule's rate against its formula,
the rate set at every epoch and carried through a checkpoint, and bad values refused."""

from __future__ import annotations

import io
import math
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from biobench.archs import DataInfo, build_network
from biobench.cli.app import app
from biobench.data.base import DataOptions
from biobench.errors import SpecError
from biobench.learners.base import OPTIMIZER, adam, make_optimizer, scheduled_lr
from biobench.registry import ALGORITHMS, DATASETS
from biobench.spec import resolve
from biobench.training.loop import fit

TINY = DataInfo("synthetic", (1, 8, 8), 10)
USERS = [e.name for e in ALGORITHMS.entries() if e.family in ("backprop", "feedback")]


def settings(**given) -> dict:
    return {name: p.default for name, p in OPTIMIZER.items()} | given


def quadratic(w: torch.Tensor) -> torch.Tensor:
    """A loss whose gradient is known in closed form: 0.5 |A w - b|^2, dL/dw = A^T (A w - b)."""
    A = torch.tensor([[2.0, -1.0], [0.5, 3.0], [1.0, 1.0]], dtype=torch.float64)
    b = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    return A, b, 0.5 * (A @ w - b).square().sum()


@pytest.mark.parametrize("nesterov", [False, True])
def test_sgd_with_momentum_and_weight_decay_matches_two_hand_computed_steps(
    nesterov: bool,
) -> None:
    lr, momentum, decay = 0.1, 0.9, 0.01
    w = torch.tensor([0.3, -0.7], dtype=torch.float64, requires_grad=True)
    hp = settings(optimizer="sgd", lr=lr, momentum=momentum, nesterov=nesterov, weight_decay=decay)
    optimizer = make_optimizer([w], hp)
    expected, buffer = w.detach().clone(), None
    for _ in range(2):
        A, b, loss = quadratic(w)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        # By hand: g = A^T (A w - b) + decay w; v = momentum v + g (v = g at first);
        # w -= lr v, or with Nesterov w -= lr (g + momentum v).
        g = A.T @ (A @ expected - b) + decay * expected
        buffer = g if buffer is None else momentum * buffer + g
        expected = expected - lr * (g + momentum * buffer if nesterov else buffer)
        torch.testing.assert_close(w.detach(), expected, rtol=1e-14, atol=1e-15)


def test_the_default_optimizer_is_the_papers_adam_exactly() -> None:
    hp = settings(lr=3e-3, beta1=0.8, beta2=0.95, eps=1e-6)
    weights = []
    for build in (lambda p: make_optimizer(p, hp), lambda p: adam(p, hp)):
        w = torch.tensor([0.3, -0.7], dtype=torch.float64, requires_grad=True)
        optimizer = build([w])
        assert type(optimizer) is torch.optim.Adam and optimizer.defaults["fused"]
        for _ in range(3):
            optimizer.zero_grad()
            quadratic(w)[2].backward()
            optimizer.step()
        weights.append(w.detach())
    torch.testing.assert_close(weights[0], weights[1], rtol=0, atol=0)


@pytest.mark.parametrize("algorithm", USERS)
def test_backprop_and_every_feedback_rule_declare_the_optimizer_settings(algorithm: str) -> None:
    declared = ALGORITHMS.entry(algorithm).hparams
    assert set(OPTIMIZER) <= set(declared)
    assert declared["optimizer"].default == "adam"
    assert declared["lr_schedule"].default == "none"


@pytest.mark.parametrize(
    ("given", "epoch", "factor"),
    [
        ({"lr_schedule": "none"}, 300, 1.0),
        ({"lr_schedule": "step", "lr_milestones": "2,4", "lr_gamma": 0.5}, 1, 1.0),
        ({"lr_schedule": "step", "lr_milestones": "2,4", "lr_gamma": 0.5}, 2, 1.0),
        ({"lr_schedule": "step", "lr_milestones": "2,4", "lr_gamma": 0.5}, 3, 0.5),
        ({"lr_schedule": "step", "lr_milestones": "2,4", "lr_gamma": 0.5}, 5, 0.25),
        ({"lr_schedule": "step"}, 101, 0.1),  # biotorch's 100,150,200 by 0.1
        ({"lr_schedule": "step"}, 201, 0.1**3),
        ({"lr_schedule": "cosine", "lr_period": 4}, 1, 1.0),
        ({"lr_schedule": "cosine", "lr_period": 4}, 2, (1 + math.cos(math.pi / 4)) / 2),
        ({"lr_schedule": "cosine", "lr_period": 4}, 3, 0.5),
        ({"lr_schedule": "cosine", "lr_period": 4}, 5, 0.0),
        ({"lr_schedule": "cosine", "lr_period": 4}, 9, 0.0),  # stays at 0 after its period
    ],
)
def test_the_scheduled_rate_of_epoch_k_is_the_formula(given: dict, epoch: int, factor) -> None:
    assert scheduled_lr(settings(lr=0.2, **given), epoch) == pytest.approx(0.2 * factor, 1e-15)


def test_the_rate_agrees_with_torchs_multistep_and_cosine_schedulers() -> None:
    w = torch.zeros(1, requires_grad=True)
    for hp, make in (
        (
            settings(lr=0.3, lr_schedule="step", lr_milestones="3,7", lr_gamma=0.2),
            lambda o: torch.optim.lr_scheduler.MultiStepLR(o, [3, 7], 0.2),
        ),
        (
            settings(lr=0.3, lr_schedule="cosine", lr_period=6),
            lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, 6),
        ),
    ):
        optimizer = torch.optim.SGD([w], lr=0.3)
        scheduler = make(optimizer)
        for epoch in range(1, 7):
            assert scheduled_lr(hp, epoch) == pytest.approx(optimizer.param_groups[0]["lr"])
            optimizer.step()
            scheduler.step()


@pytest.mark.parametrize("algorithm", ["bp", "kp"])
def test_each_epoch_gives_every_optimizer_its_scheduled_rate(algorithm: str) -> None:
    hp = {n: p.default for n, p in ALGORITHMS.entry(algorithm).hparams.items()}
    hp |= {"optimizer": "sgd", "momentum": 0.9, "lr": 0.1, "lr_schedule": "step"}
    learner = ALGORITHMS.get(algorithm)(build_network("fc", TINY), hp | {"lr_milestones": "1"})
    assert len(learner.optimizers()) == (2 if algorithm == "kp" else 1)
    for epoch, lr in ((1, 0.1), (2, 0.1 * 0.1), (1, 0.1)):
        assert learner.epoch_phases(epoch) == ("train",)
        rates = [g["lr"] for o in learner.optimizers().values() for g in o.param_groups]
        assert rates == [pytest.approx(lr)] * len(rates)


def test_a_resumed_run_continues_on_the_same_schedule_exactly() -> None:
    data = DATASETS.get("synthetic")(DataOptions(root=Path("unused")))
    hp = {n: p.default for n, p in ALGORITHMS.entry("bp").hparams.items()}
    hp |= {"optimizer": "sgd", "momentum": 0.9, "lr": 0.05, "lr_schedule": "step"}
    hp |= {"lr_milestones": "1,2", "lr_gamma": 0.3}

    def learner():
        torch.manual_seed(0)
        return ALGORITHMS.get("bp")(build_network("fc", TINY), hp)

    def train(one, generator, start: int, epochs: int) -> None:
        fit(one, data, epochs=epochs, batch_size=50, generator=generator, on_epoch=lambda *a: 0,
            start_epoch=start)  # fmt: skip

    whole = learner()
    train(whole, torch.Generator().manual_seed(0), 1, 3)
    first = learner()
    generator = torch.Generator().manual_seed(0)
    train(first, generator, 1, 1)
    saved = io.BytesIO()  # what a checkpoint keeps of the learner, through bytes
    torch.save(first.state_dict(), saved)
    saved.seek(0)
    resumed = learner()
    resumed.load_state_dict(torch.load(saved, weights_only=True))
    train(resumed, generator, 2, 3)
    assert resumed.optimizer.param_groups[0]["lr"] == pytest.approx(0.05 * 0.3**2)
    for a, b in zip(whole.net.parameters(), resumed.net.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("optimizer=rmsprop", r"optimizer='rmsprop' is not allowed; optimizer takes one of adam"),
        ("lr_schedule=linear", r"lr_schedule='linear' is not allowed"),
        ("lr_milestones=150,100", r"lr_milestones='150,100' is not increasing from 1"),
        ("lr_milestones=0,10", r"is not increasing from 1"),
        ("lr_milestones=ten", r"lr_milestones='ten' is not a list of epochs"),
        ("momentum=1", r"momentum='1' is out of range; momentum takes a float in \[0, 1\)"),
        ("weight_decay=-1", r"weight_decay='-1' is out of range"),
        ("lr_gamma=0", r"lr_gamma='0' is out of range"),
        ("lr_period=0", r"lr_period='0' is out of range"),
    ],
)
def test_a_bad_value_is_refused_in_one_line_naming_what_it_takes(
    setting: str, message: str
) -> None:
    with pytest.raises(SpecError, match=message):
        resolve(algorithm="bp", architecture="fc", dataset="digits", overrides=[setting])


def test_milestones_are_kept_in_one_spelling() -> None:
    spec = resolve(
        algorithm="fa",
        architecture="fc",
        dataset="digits",
        overrides=["lr_schedule=step", "lr_milestones=5, 10"],
    )
    assert spec.hparams["lr_milestones"] == "5,10"


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"momentum": 0.9}, r"momentum=0.9 applies to optimizer=sgd only"),
        ({"nesterov": True}, r"nesterov=True applies to optimizer=sgd only"),
        ({"optimizer": "sgd", "nesterov": True}, r"nesterov=true needs momentum > 0"),
    ],
)
def test_settings_of_another_optimizer_are_refused_not_ignored(given: dict, message: str) -> None:
    with pytest.raises(SpecError, match=message):
        ALGORITHMS.get("bp")(build_network("fc", TINY), settings(**given))


def test_list_algorithms_shows_the_optimizer_settings() -> None:
    result = CliRunner().invoke(app, ["list", "algorithms"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    for name in ("optimizer", "momentum", "lr_schedule", "lr_milestones"):
        assert name in result.output

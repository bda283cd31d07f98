"""What mutation testing of learners/feedback_alignment.py found unguarded: the phases a rule's
step reports to the cost clock, the names tables give the paper's rules, and the scale of DFA's
feedback on a ResNet."""

from __future__ import annotations

import math

import pytest
import torch

from biobench.archs import ARCHITECTURES, DataInfo, build_network
from biobench.learners.base import PhaseClock
from biobench.learners.feedback_alignment import direct_feedback
from biobench.registry import ALGORITHMS
from biobench.store.models import PHASES
from support.learners import TINY, batch, hparams


class Laps(PhaseClock):
    def __init__(self) -> None:
        self.laps: list[str] = []

    def lap(self, phase: str) -> None:
        self.laps.append(phase)


@pytest.mark.parametrize("arch", ["fc", "resnet20"])
@pytest.mark.parametrize("algorithm", ALGORITHMS.names())
def test_every_step_reports_its_phases_by_the_names_compare_cost_reads(
    algorithm: str, arch: str
) -> None:
    # `compare --cost` and the epochs' step_ms_<phase> columns read these names: a misspelt
    # lap would leave a phase's time out of every table.
    if not ARCHITECTURES.entry(arch).supports(ALGORITHMS.entry(algorithm)):
        pytest.skip(f"{arch} does not take {algorithm}'s family")
    torch.manual_seed(0)
    learner = ALGORITHMS.get(algorithm)(build_network(arch, TINY), hparams(algorithm))
    learner.clock = clock = Laps()
    x, y = (t.float() if t.is_floating_point() else t for t in batch(8))
    learner.train_step(x, y)
    assert set(clock.laps) <= set(PHASES), clock.laps
    assert clock.laps[0] == "forward"
    assert {"forward", "signal", "update"} <= set(clock.laps)
    assert clock.laps.index("signal") < clock.laps.index("update")


PAPER = {"bp": "BP", "fa": "FA", "dfa": "DFA", "dtp": "DTP", "sdtp": "SDTP", "ao-sdtp": "AO-SDTP"}


def test_the_paper_rules_are_named_and_ordered_as_its_tables_do() -> None:
    # Table 1's rows, top to bottom; `--algo feedback-alignment` and
    # `--algo direct-feedback-alignment` name FA and DFA.
    assert {name: ALGORITHMS.entry(name).label for name in PAPER} == PAPER
    rows = sorted(PAPER, key=lambda name: ALGORITHMS.entry(name).order)
    assert rows == ["dtp", "sdtp", "ao-sdtp", "fa", "dfa", "bp"]
    assert ALGORITHMS.entry("feedback-alignment").name == "fa"
    assert ALGORITHMS.entry("direct-feedback-alignment").name == "dfa"
    assert {ALGORITHMS.entry(name).family for name in ("fa", "dfa")} == {"feedback"}


def test_dfas_resnet_feedback_is_glorot_uniform_over_its_own_fans() -> None:
    # B_l has W_l's shape with `classes` output channels: fan_in = C_in k k, fan_out =
    # classes k k, so draws fill (-bound, bound), bound = sqrt(6 / (fan_in + fan_out)).
    net = build_network("resnet20", DataInfo("cifar10", (3, 32, 32), 10))
    torch.manual_seed(0)
    for op in (net.ops[5], net.ops[-2]):
        b = direct_feedback(op, 10)
        c_in, k = op.weight.shape[1], op.weight.shape[2]
        assert b.shape == (10, *op.weight.shape[1:])
        bound = math.sqrt(6 / (c_in * k * k + 10 * k * k))
        assert 0.95 * bound < float(b.abs().max()) <= bound


# What a run with no --set trains with (the paper's Adam, constant rate; the schedule settings
# biotorch's protocol sets), and the edges of what --set accepts, as `biobench list` states them.
DEFAULTS = {
    "lr": 1e-3,
    "beta1": 0.9,
    "beta2": 0.999,
    "eps": 1e-8,
    "optimizer": "adam",
    "momentum": 0.0,
    "nesterov": False,
    "weight_decay": 0.0,
    "lr_schedule": "none",
    "lr_milestones": "100,150,200",
    "lr_gamma": 0.1,
    "lr_period": 200,
}


@pytest.mark.parametrize("algorithm", ["bp", "fa", "dfa"])
def test_a_run_without_settings_takes_the_documented_optimizer_defaults(algorithm: str) -> None:
    from biobench.spec import resolve

    spec = resolve(algorithm=algorithm, architecture="fc", dataset="digits")
    assert {k: spec.hparams[k] for k in DEFAULTS} == DEFAULTS


ACCEPTED = [
    "lr=1e-9",
    "beta1=0",
    "beta1=0.999",
    "beta2=0",
    "beta2=0.9999",
    "eps=1e-12",
    "weight_decay=0",
    "lr_schedule=none",
    "lr_schedule=step",
    "lr_schedule=cosine",
    "lr_schedule=step lr_milestones=1",
    "lr_schedule=step lr_milestones=1,2",
    "lr_schedule=step lr_gamma=1",
    "lr_schedule=step lr_gamma=1e-6",
    "lr_schedule=cosine lr_period=1",
    "optimizer=sgd momentum=0",
    "optimizer=sgd momentum=0.99 nesterov=true",
]


@pytest.mark.parametrize("settings", ACCEPTED)
def test_the_edges_of_each_optimizer_setting_are_accepted(settings: str) -> None:
    from biobench.spec import resolve

    overrides = settings.split()
    spec = resolve(algorithm="fa", architecture="fc", dataset="digits", overrides=overrides)
    for name, value in (item.split("=") for item in overrides):
        parsed = spec.hparams[name]
        assert str(parsed).lower() == value or parsed == pytest.approx(float(value))


@pytest.mark.parametrize(
    "setting", ["lr=0", "beta1=1", "beta2=1", "eps=0", "lr_gamma=1.5", "lr_period=0"]
)
def test_just_past_each_edge_is_refused(setting: str) -> None:
    from biobench.errors import SpecError
    from biobench.spec import resolve

    with pytest.raises(SpecError, match=f"{setting.replace('=', '=.')}.* is out of range"):
        resolve(algorithm="fa", architecture="fc", dataset="digits", overrides=[setting])

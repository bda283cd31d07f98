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
from test_learners import TINY, batch, hparams


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

"""compare groups a leaderboard by the learning rules' families, read from the registry: a rule
added by a plugin joins its family's group with no edit to compare."""

from __future__ import annotations

import pytest

from biobench.learners.base import Learner
from biobench.registry import ALGORITHMS
from biobench.results.compare import comparison, comparison_tables
from biobench.spec import RunSpec, load_presets, resolve
from test_guards import epoch_rows, record


class Hebbian(Learner):
    """A plugin's rule: the registry entry is all compare knows of it."""

    label, family, order = "Hebb", "feedback", 56

    def train_step(self, x, y):  # never trains here
        raise NotImplementedError


@pytest.fixture
def plugin(monkeypatch: pytest.MonkeyPatch) -> str:
    entry = ALGORITHMS.make_entry("hebb", Hebbian, origin="my-plugin")
    monkeypatch.setitem(ALGORITHMS._entries, "hebb", entry)
    return "hebb"


def spec(algorithm: str) -> RunSpec:
    if algorithm in ("bp", "fa", "dtp", "drtp"):
        return resolve(algorithm=algorithm, architecture="fc", dataset="digits")
    return RunSpec(algorithm, "fc", "digits", 30, 32, 0)


def test_a_leaderboard_groups_rules_by_family_in_the_registrys_order(plugin: str) -> None:
    names = ["dtp", plugin, "bp", "drtp", "fa"]
    runs = [record(i, spec(name)) for i, name in enumerate(names, start=1)]
    frame = comparison(runs, epoch_rows({i: [10.0 + i] for i in range(1, 6)}), load_presets())
    assert list(frame["method"]) == ["bp", "fa", plugin, "drtp", "dtp-alt"]
    assert list(frame["family"]) == ["backprop", *["feedback"] * 3, "target-propagation"]
    (_, header, rows), *_ = comparison_tables(frame)
    assert header[:2] == ["family", "method"]
    assert [row[:2] for row in rows] == [
        ["backprop", "BP"],
        ["feedback alignment", "FA"],
        ["", "Hebb"],
        ["", "DRTP"],
        ["target propagation", "DTP alternating"],
    ]

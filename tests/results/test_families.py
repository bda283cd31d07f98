"""compare groups a leaderboard by the learning rules' families, read from the registry: a rule
added by a plugin joins its family's group with no edit to compare. A rule's family says where
it sits; the networks it declares say what it can train."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from biobench.cli import app
from biobench.errors import SpecError
from biobench.learners.base import Learner
from biobench.registry import ALGORITHMS, ARCHITECTURES, _validate
from biobench.results.compare import comparison, comparison_tables
from biobench.spec import RunSpec, load_presets, resolve
from biobench.store import Store
from support.records import epoch_rows, run_record


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
    runs = [run_record(i, spec(name)) for i, name in enumerate(names, start=1)]
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


class AnyNetwork(Hebbian):
    """A plugin's rule that trains through autograd, as BP does: any network of ops."""

    networks = "any"


def test_a_rule_trains_only_the_networks_it_declares(
    plugin: str, monkeypatch: pytest.MonkeyPatch, sqlite_url: str
) -> None:
    # Hebb is of the feedback family, which resnet20 accepts, but walks net.layers, which
    # resnet20 has not: refused before data loads, where it used to fail in its first step
    # with "internal error: AttributeError: 'ResNet' object has no attribute 'layers'".
    assert resolve(algorithm=plugin, architecture="fc", dataset="digits").algorithm == plugin
    with pytest.raises(SpecError) as caught:
        resolve(algorithm=plugin, architecture="resnet20", dataset="digits")
    assert str(caught.value) == (
        "algorithm 'hebb' trains layered networks (a stack of layers: fc, lc, conv) only, and "
        "'resnet20' is not one; use one of: fa, usf, brsf, frsf, kp, wm, dfa, drtp, bp"
    )
    result = CliRunner().invoke(
        app, ["run", "--algo", plugin, "--arch", "resnet20", "--data", "digits",
              "--db", sqlite_url],
    )  # fmt: skip
    assert result.exit_code == 2 and result.stderr.count("\n") == 1, result.output
    assert "trains layered networks" in result.stderr and Store(sqlite_url).runs() == []
    entry = ALGORITHMS.make_entry("anynet", AnyNetwork, origin="my-plugin")
    monkeypatch.setitem(ALGORITHMS._entries, "anynet", entry)
    assert (ALGORITHMS.entry(plugin).networks, entry.networks) == ("layered", "any")
    assert resolve(algorithm="anynet", architecture="resnet20", dataset="digits").epochs > 0
    resnet = ARCHITECTURES.entry("resnet20")
    assert [resnet.supports(ALGORITHMS.entry(name)) for name in ("bp", "fa", "dtp", plugin)] == [
        True, True, False, False,
    ]  # fmt: skip


def test_a_plugin_declaring_networks_it_cannot_name_is_refused() -> None:
    class Vague(Hebbian):
        networks = "graphs"

    with pytest.raises(TypeError, match="networks 'graphs' is not one of layered, any"):
        _validate(ALGORITHMS, ALGORITHMS.make_entry("vague", Vague))

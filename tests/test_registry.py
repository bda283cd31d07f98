"""A learning rule and a dataset from another package, found through entry points.

The plugin (tests/support/plugin_example/my_plugin) is written only against biobench's public
API. A real distribution (a dist-info folder with entry_points.txt, what `pip install` leaves) puts
it on the path of `biobench` subprocesses, with one broken entry point beside it.
"""

from __future__ import annotations

import csv
import io
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from biobench.store import Store

PLUGIN = Path(__file__).parent / "support" / "plugin_example"
ENTRY_POINTS = """\
[biobench.learners]
my-rule = my_plugin.rules:MyRule
broken = my_plugin.missing:Nope

[biobench.datasets]
blobs = my_plugin.data:load_blobs
"""

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    site = tmp_path_factory.mktemp("site")
    info = site / "my_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: my-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(ENTRY_POINTS)
    home = tmp_path_factory.mktemp("home")
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(site), str(PLUGIN), os.environ.get("PYTHONPATH", "")]),
        "BIOBENCH_HOME": str(home),
        "BIOBENCH_DB": f"sqlite:///{home / 'results.db'}",
    }


def biobench(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "biobench", *args], env=env, capture_output=True, text=True
    )


def test_list_shows_the_plugin_rule_with_its_declared_defaults(env: dict[str, str]) -> None:
    listed = biobench(env, "list", "algorithms")
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    first = next(i for i, row in enumerate(lines) if row.startswith("my-rule "))
    assert "feedback [my-plugin]" in lines[first]
    gamma = next(row for row in lines[first:] if "gamma" in row).split()
    assert gamma[:2] == ["gamma", "0.5"]
    assert any(row.startswith("bp ") for row in lines)  # the built-ins keep working beside it


def test_a_broken_plugin_is_one_warning_and_named_when_asked_for(env: dict[str, str]) -> None:
    listed = biobench(env, "list", "algorithms")
    warnings = [line for line in listed.stderr.splitlines() if "broken" in line]
    assert len(warnings) == 1 and "failed to load" in warnings[0]
    asked = biobench(env, "run", "--algo", "broken")
    assert asked.returncode == 2
    assert "plugin that failed to load: my_plugin.missing:Nope" in asked.stderr


def test_the_plugin_rule_runs_with_its_defaults_and_set_values(env: dict[str, str]) -> None:
    ran = biobench(env, "run", "--algo", "my-rule", "--data", "digits", "--epochs", "2")
    assert ran.returncode == 0, ran.stderr
    tuned = biobench(
        env, "run", "--algo", "my-rule", "--data", "digits", "--epochs", "2", "--set", "gamma=0.7"
    )
    assert tuned.returncode == 0, tuned.stderr
    runs = Store(env["BIOBENCH_DB"]).runs(algorithm="my-rule")
    assert sorted(run.hparams["gamma"] for run in runs) == [0.5, 0.7]
    assert all(run.status == "finished" and run.epochs_done == 2 for run in runs)


def test_the_plugin_hparam_validates_set(env: dict[str, str]) -> None:
    refused = biobench(env, "run", "--algo", "my-rule", "--data", "digits", "--set", "gamma=2")
    assert refused.returncode == 2
    errors = [line for line in refused.stderr.splitlines() if not line.startswith("warning:")]
    assert len(errors) == 1 and "gamma='2' is out of range" in errors[0]


def test_the_plugin_rule_is_refused_on_a_network_it_does_not_declare(
    env: dict[str, str],
) -> None:
    refused = biobench(env, "run", "--algo", "my-rule", "--arch", "resnet20", "--data", "digits")
    assert refused.returncode == 2
    errors = [line for line in refused.stderr.splitlines() if not line.startswith("warning:")]
    assert errors == [
        "error: algorithm 'my-rule' trains layered networks (a stack of layers: fc, lc, conv) "
        "only, and 'resnet20' is not one; use one of: fa, usf, brsf, frsf, kp, wm, dfa, drtp, bp"
    ]


def test_compare_puts_the_plugin_rule_beside_bp(env: dict[str, str]) -> None:
    ran = biobench(env, "run", "--algo", "bp", "--data", "digits", "--epochs", "2")
    assert ran.returncode == 0, ran.stderr
    if not Store(env["BIOBENCH_DB"]).runs(algorithm="my-rule"):
        biobench(env, "run", "--algo", "my-rule", "--data", "digits", "--epochs", "2")
    shown = biobench(env, "compare", "--data", "digits", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(shown.stdout)))
    labels = [row["label"] for row in rows]
    assert labels == ["BP", "My rule"]  # backprop's family first, then its own (feedback)
    mine = rows[1]
    assert mine["family"] == "feedback" and float(mine["gap_to_bp"]) == pytest.approx(
        float(mine["test_top1"]) - float(rows[1]["test_top1"])
    )


def test_the_plugin_dataset_runs_with_its_declared_run_defaults(env: dict[str, str]) -> None:
    ran = biobench(env, "run", "--algo", "fa", "--arch", "lc", "--data", "blobs")
    assert ran.returncode == 0, ran.stderr
    (run,) = Store(env["BIOBENCH_DB"]).runs(dataset="blobs")
    assert (run.epochs, run.batch_size, run.epochs_done) == (2, 16, 2)
    assert run.status == "finished"


def test_the_suite_ignores_an_installed_plugin_and_an_inherited_ignored_sigint(
    env: dict[str, str],
) -> None:
    """The suite started as a user might: with a feedback-family plugin installed (my-rule, which
    cannot train resnet20) and SIGINT ignored (`pytest &` without job control). Tests that
    parametrise over every feedback rule, and those that interrupt a run by SIGINT, still pass:
    conftest hides the plugin from the test process and restores Python's SIGINT handler."""
    tests = Path(__file__).parent
    ran = subprocess.run(
        [sys.executable, "-m", "pytest", "-v", "-p", "no:cacheprovider",
         # test_properties loads the registries as it is collected, before test_resnet is
         str(tests / "behaviour" / "test_properties.py"), str(tests / "archs" / "test_resnet.py"),
         str(tests / "training" / "test_checkpoint.py"),
         "-k", "one_step_on_resnet20_moves or interrupt_during_a_checkpoint_write"],
        env=env, capture_output=True, text=True, cwd=tests.parent,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )  # fmt: skip
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "[fa]" in ran.stdout and "[2]" in ran.stdout  # the tests ran: FA, and SIGINT's
    assert "my-rule" not in ran.stdout  # no test of biobench's own rules is made for a plugin

"""Gaps a mutation run over results/check.py showed (tools/mutation.sh): the summary line of
`biobench check` counts every verdict, in its order, and a preset without a reference says
which runs its measured error comes from, or that it has none.
"""

from __future__ import annotations

import math
from dataclasses import replace

from typer.testing import CliRunner

from biobench.cli import app
from biobench.results.check import NO_REFERENCE, check, check_store, describe
from biobench.spec import load_presets, resolve
from biobench.store import Store
from support.store import add_finished

runner = CliRunner()
NO_REFERENCE_NOTE = "the preset has no reference number to check against"


def test_the_summary_line_counts_each_verdict_in_order_and_a_regression_exits_1(
    sqlite_url: str,
) -> None:
    store = Store(sqlite_url)
    add_finished(store, 1.5, "mnist-fc-bp")  # 1.48 ± 0.5: pass
    add_finished(store, 0.5, "mnist-fc-fa")  # 1.85 ± 0.5: improved
    add_finished(store, 9.0, "mnist-lc-fa")  # 1.26 ± 0.5: regressed
    add_finished(store, 12.0, "cifar10-resnet20-kp")  # no reference
    names = ["mnist-fc-bp", "mnist-fc-fa", "mnist-lc-fa", "cifar10-fc-bp", "cifar10-resnet20-kp"]
    args = [a for name in names for a in ("--preset", name)]
    result = runner.invoke(app, ["check", *args, "--db", sqlite_url])
    assert result.exit_code == 1, result.output
    lines = result.stdout.splitlines()
    assert [line.split()[0] for line in lines[:3]] == ["pass", "improved", "regressed"]
    assert lines[-1] == "1 pass, 1 improved, 1 regressed, 1 missing, 1 no reference"


def test_an_improvement_alone_passes_the_check_and_is_counted(sqlite_url: str) -> None:
    store = Store(sqlite_url)
    add_finished(store, 0.5, "mnist-fc-fa")
    result = runner.invoke(app, ["check", "--preset", "mnist-fc-fa", "--db", sqlite_url])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[-1] == "1 improved"


def test_a_preset_without_a_reference_names_every_run_its_mean_comes_from(
    sqlite_url: str,
) -> None:
    store = Store(sqlite_url)
    first = add_finished(store, 12.0, "cifar10-resnet20-kp", seed=0)
    second = add_finished(store, 14.0, "cifar10-resnet20-kp", seed=1)
    (verdict,) = check_store(store, ["cifar10-resnet20-kp"])
    assert (verdict.verdict, verdict.measured, verdict.runs) == (NO_REFERENCE, 13.0, 2)
    ran = f"run(s) {second}, {first}"  # newest first, as the store lists runs
    assert describe(verdict) == f"test top-1 13.00% ({ran}; {NO_REFERENCE_NOTE})"


def test_a_preset_without_a_reference_or_a_run_says_it_has_no_finished_run(
    sqlite_url: str,
) -> None:
    (verdict,) = check_store(Store(sqlite_url), ["cifar10-resnet20-kp"])
    assert (verdict.verdict, verdict.measured, verdict.runs) == (NO_REFERENCE, None, 0)
    assert describe(verdict) == f"no finished run; {NO_REFERENCE_NOTE}"


def test_a_tolerance_that_is_not_a_number_never_passes(sqlite_url: str) -> None:
    """The loader refuses such a tolerance; a Preset built in Python is held to the same: a
    comparison with NaN is false, so only a verdict that needs none (regressed) is left."""
    store = Store(sqlite_url)
    add_finished(store, 25.8, "mnist-fc-bp")
    preset = replace(load_presets().preset("mnist-fc-bp"), tolerance=math.nan)
    specs = {preset.name: resolve(preset=preset.name).to_dict()}
    [verdict] = check([preset], store.runs(), specs)
    assert verdict.verdict == "regressed"

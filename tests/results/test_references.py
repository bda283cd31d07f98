"""Reference numbers and their sources: presets without a reference in check, compare and the
bar chart; each source named in the chart's legend; a study's row measured against BP of its
own kind."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ElementTree
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from biobench.cli import app
from biobench.results import plot
from biobench.results.check import NO_REFERENCE, check_store, describe, junit_xml
from biobench.results.compare import comparison, load_comparison, render_markdown
from biobench.spec import load_presets
from biobench.store import Store
from support.store import add_finished

runner = CliRunner()


# -- check ------------------------------------------------------------------------------------


def test_a_preset_without_a_reference_is_neither_passed_nor_failed(sqlite_url: str) -> None:
    store = Store(sqlite_url)
    run_id = add_finished(store, 12.0, "cifar10-resnet20-kp")
    kp, wm, bp = check_store(store, ["cifar10-resnet20-kp", "cifar10-resnet20-wm", "mnist-fc-bp"])
    assert (kp.verdict, kp.reference, kp.tolerance, kp.measured) == (NO_REFERENCE, None, None, 12)
    assert describe(kp) == (
        f"test top-1 12.00% (run(s) {run_id}; the preset has no reference number to check against)"
    )
    assert (wm.verdict, wm.measured, wm.runs) == (NO_REFERENCE, None, 0)
    assert bp.verdict == "missing"
    suite = ElementTree.fromstring(junit_xml([kp, wm, bp], fail_missing=True))
    assert (suite.get("failures"), suite.get("skipped")) == ("1", "2")
    skipped = [case.find("skipped").get("message") for case in suite if case.find("skipped")]
    assert all(message.startswith("no reference: ") for message in skipped)
    # checking everything: a preset with a run is news, with or without a reference
    assert [v.preset for v in check_store(store, None)] == ["cifar10-resnet20-kp"]


def test_check_says_no_reference_and_exits_by_the_others(sqlite_url: str) -> None:
    store = Store(sqlite_url)
    add_finished(store, 12.0, "cifar10-resnet20-kp")
    add_finished(store, 9.0, "cifar10-resnet20-bp")
    args = ["check", "--preset", "cifar10-resnet20-kp", "--preset", "cifar10-resnet20-bp"]
    result = runner.invoke(app, [*args, "--db", sqlite_url])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("no reference  cifar10-resnet20-kp  test top-1 12.00% (run(s) 1")
    assert lines[1].startswith("        pass  cifar10-resnet20-bp  test top-1 9.00% vs reference")
    assert lines[2] == "1 pass, 1 no reference"
    suite = runner.invoke(app, ["check", "--suite", "biotorch-cifar10", "--db", sqlite_url])
    assert suite.exit_code == 1 and suite.stdout.splitlines()[-1] == (
        "1 pass, 5 missing, 3 no reference"
    )


# -- compare and the bar chart ----------------------------------------------------------------


def test_a_cell_its_source_has_no_number_for_sits_under_that_source(sqlite_url: str) -> None:
    store = Store(sqlite_url)
    add_finished(store, 9.0, "cifar10-resnet20-bp")
    add_finished(store, 12.0, "cifar10-resnet20-kp")
    text = render_markdown(load_comparison(store))
    assert "| resnet20 train | resnet20 test | resnet20 biotorch | resnet20 Δ |" in text
    assert "| BP | 4.50 | 9.00 | – / 8.63 | +0.37 | +0.00 |" in text
    assert "| KP | 6.00 | 12.00 | – / – | – | +3.00 |" in text


@pytest.fixture
def drawn(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """What comparison_bars drew, laid out as saved, instead of a file."""
    figure: dict[str, Any] = {}

    def save(made: Any, out: Path) -> None:
        made.canvas.draw()
        figure.update(figure=made, renderer=made.canvas.get_renderer())

    monkeypatch.setattr(plot, "_save", save)
    return figure


def test_the_legend_names_each_source_of_reference_marks(
    sqlite_url: str, tmp_path: Path, drawn: dict[str, Any]
) -> None:
    store = Store(sqlite_url)
    for preset, test in (("mnist-fc-bp", 1.6), ("cifar10-resnet20-bp", 9.0)):
        add_finished(store, test, preset)
    add_finished(store, 12.0, "cifar10-resnet20-kp")  # no biotorch number: no mark
    plot.comparison_bars(load_comparison(store), tmp_path / "bars.png")
    figure = drawn["figure"]
    (legend,) = figure.legends
    texts = [t.get_text() for t in legend.get_texts()]
    marks = dict(zip(texts, legend.legend_handles, strict=True))
    assert list(marks)[-2:] == [
        "paper (Bartunov et al., 2018)",
        "biotorch (Sanfiz & Akrout, 2021)",
    ]
    assert marks["paper (Bartunov et al., 2018)"].get_marker() == "D"
    assert marks["biotorch (Sanfiz & Akrout, 2021)"].get_marker() == "s"
    cifar, mnist = figure.axes
    drawn_marks = {
        axis: [(line.get_marker(), list(line.get_ydata())) for line in axis.lines]
        for axis in (cifar, mnist)
    }
    assert [m for m, ys in drawn_marks[cifar] if any(math.isfinite(y) for y in ys)] == ["s"]
    assert [m for m, ys in drawn_marks[mnist] if any(math.isfinite(y) for y in ys)] == ["D"]
    # "cifar10: 250 epochs, batch 128, augment=True" ends clear of the legend
    renderer = drawn["renderer"]
    assert cifar.get_title(loc="left").endswith("augment=True")
    assert cifar.get_tightbbox(renderer).x1 <= legend.get_window_extent(renderer).x0


def test_a_chart_of_the_papers_cells_alone_names_the_paper_alone(
    sqlite_url: str, tmp_path: Path, drawn: dict[str, Any]
) -> None:
    add_finished(Store(sqlite_url), 1.6, "mnist-fc-bp")
    plot.comparison_bars(load_comparison(Store(sqlite_url)), tmp_path / "bars.png")
    (legend,) = drawn["figure"].legends
    assert [t.get_text() for t in legend.get_texts()] == ["fc", "paper (Bartunov et al., 2018)"]


# -- a study's row ----------------------------------------------------------------------------

SPEC = {"architecture": "fc", "dataset": "synthetic", "epochs": 1}


@pytest.mark.parametrize(
    ("tuned_bp", "gaps"),
    [
        (True, {"BP": 0.0, "BP (study b)": 0.0, "FA": 10.0, "FA (study f)": 5.0}),
        (False, {"BP": 0.0, "FA": 10.0, "FA (study f)": -5.0}),
    ],
    ids=["to the tuned BP", "to the plain BP when BP was not searched"],
)
def test_a_studys_row_is_measured_against_bp_of_its_own_kind(
    sqlite_url: str, tuned_bp: bool, gaps: dict[str, float]
) -> None:
    store = Store(sqlite_url)
    add_finished(store, 50.0, algorithm="bp", **SPEC)
    add_finished(store, 60.0, algorithm="fa", **SPEC)
    studies = {add_finished(store, 45.0, algorithm="fa", **SPEC, overrides=["lr=1e-4"]): "f"}
    if tuned_bp:
        studies[add_finished(store, 40.0, algorithm="bp", **SPEC, overrides=["lr=1e-4"])] = "b"
    runs = store.runs()
    frame = comparison(runs, store.epochs(), load_presets(), studies=studies)
    assert list(zip(frame["label"], frame["gap_to_bp"], strict=True)) == list(gaps.items())
    studied = [name if isinstance(name, str) else None for name in frame["study"]]
    assert studied == [label[-2] if "study" in label else None for label in gaps]
    assert list(frame.columns[-2:]) == ["study", "reference"]

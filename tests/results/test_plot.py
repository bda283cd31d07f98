"""Tests for results/plot.py beyond "a PNG was written": each was checked against one-line bugs
planted by hand (no mutmut run yet), asserting what a reader of a figure relies on: which line
is which run and split, one colour per architecture across figures, each source of reference
numbers named and marked in its own way, and the format a file name asks for.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from matplotlib import pyplot

from biobench.results import plot
from biobench.spec import resolve
from biobench.store import RunStatus
from support.records import run_record


def test_learning_curves_draw_test_solid_train_dashed_and_imagenets_top5_dotted(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    saved: list[Any] = []
    monkeypatch.setattr(plot, "_save", lambda figure, out: saved.append(figure))
    runs = [
        run_record(n, resolve(algorithm=a, architecture="fc", dataset=d), status=s, epochs_done=2)
        for n, a, d, s in (
            (1, "bp", "mnist", RunStatus.finished),
            (2, "fa", "mnist", RunStatus.running),  # no epoch yet: no line
            (3, "dfa", "imagenet32", RunStatus.finished),
        )
    ]
    rows = [
        {"run_id": run_id, "epoch": e, "test_top1": t, "train_top1": t / 2, "test_top5": t / 4}
        for run_id in (1, 3)
        for e, t in ((1, 40.0 + run_id), (2, 20.0 + run_id))
    ]
    plot.learning_curves(runs, rows, tmp_path / "curves.png")
    (figure,) = saved
    (axis,) = figure.axes
    drawn = {
        line.get_label(): (line.get_color(), line.get_linestyle(), list(line.get_ydata()))
        for line in axis.get_lines()
    }
    assert drawn == {
        "#1 bp / fc / mnist test": ("C0", "-", [41.0, 21.0]),
        "#1 bp / fc / mnist train": ("C0", "--", [20.5, 10.5]),
        "#3 dfa / fc / imagenet32 test": ("C2", "-", [43.0, 23.0]),
        "#3 dfa / fc / imagenet32 train": ("C2", "--", [21.5, 11.5]),
        "#3 dfa / fc / imagenet32 test top-5": ("C2", ":", [10.75, 5.75]),
    }
    assert [list(line.get_xdata()) for line in axis.get_lines()] == [[1, 2]] * 5
    assert (axis.get_xlabel(), axis.get_ylabel()) == ("epoch", "error (%)")
    assert [t.get_text() for t in axis.get_legend().get_texts()] == list(drawn)
    assert not pyplot.fignum_exists(figure.number)  # closed: a long session keeps no figures


def test_each_source_of_reference_numbers_has_its_mark_and_its_citation() -> None:
    assert plot.reference_label("paper") == "paper (Bartunov et al., 2018)"
    assert plot.reference_label("biotorch") == "biotorch (Sanfiz & Akrout, 2021)"
    assert plot.reference_label("my-lab") == "my-lab"
    marks = {source: plot.reference_mark(source) for source in ("paper", "biotorch", "my-lab")}
    assert {source: mark["marker"] for source, mark in marks.items()} == {
        "paper": "D",
        "biotorch": "s",
        "my-lab": "o",
    }
    assert all(mark["markerfacecolor"] == "white" for mark in marks.values())  # hollow
    assert plot.PAPER_MARK["marker"] == "D"  # a mark never changes another's shape


def test_architectures_keep_their_colour_and_unknown_ones_follow_by_name() -> None:
    known = list(plot.architecture_colours([]))
    assert known[:3] == ["fc", "lc", "conv"]  # the registry's order
    colours = plot.architecture_colours(["zz-net", "aa-net", "fc"])
    assert list(colours) == [*known, "aa-net", "zz-net"]
    assert list(colours.values()) == list(plot.PALETTE[: len(colours)])
    many = plot.architecture_colours([f"net{i}" for i in range(10)])
    assert many["net9"] == plot.PALETTE[(len(many) - 1) % len(plot.PALETTE)]


@pytest.mark.parametrize(
    ("name", "kind"), [("a.png", "png"), ("a.PDF", "pdf"), ("b.c.Svg", "svg")]
)
def test_a_figures_format_is_its_suffix_in_any_case(tmp_path: Path, name: str, kind: str) -> None:
    assert plot.figure_format(tmp_path / name) == kind


# A study's name as a user may choose it: TeX matplotlib's mathtext cannot parse ($\bad_$),
# TeX it can ($x^2$, which it would draw as x²), and a lone backslash and underscore.
NAME = r"lr $x^2$ \ a_b $\bad_$"


def texts(figure: Any) -> list[str]:
    return [t.get_text() for t in figure.findobj(pyplot.Text)]


def test_user_named_strings_are_drawn_as_written_in_every_figure(tmp_path: Path) -> None:
    import pandas as pd

    from biobench.results import alignment

    run = run_record(
        1,
        resolve(algorithm="fa", architecture="fc", dataset="mnist"),
        status=RunStatus.interrupted,
        epochs_done=1,
    )
    named = replace(run, algorithm=NAME, dataset=NAME)  # a plugin's names, as shown
    rows = [{"run_id": 1, "epoch": 1, "test_top1": 9.0, "train_top1": 5.0, "test_top5": 1.0}]
    frame = pd.DataFrame(
        [
            {
                "dataset": NAME,
                "protocol": NAME,
                "label": f"FA (study {NAME})",
                "architecture": "fc",
                "test_top1": 9.0,
                "test_top1_std": 1.0,
                "paper_test_top1": 8.0,
                "reference": "paper",
            }
        ]
    )
    layers = [{"run_id": 1, "epoch": 1, "layer": 1, "name": "fc1", "update_angle": 3.0,
               "signal_cosine": None, "weight_angle": None}]  # fmt: skip
    made: list[Any] = []
    real_save = plot._save
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(
            plot, "_save", lambda figure, out: (made.append(figure), real_save(figure, out))
        )
        plot.learning_curves([named], rows, tmp_path / "curves.png")
        plot.comparison_bars(frame, tmp_path / "bars.svg")
        alignment.alignment_plot(named, layers, tmp_path / "alignment.pdf")
    curves, bars, angles = made
    assert f"#1 {NAME} / fc / {NAME} test" in texts(curves)
    assert f"FA (study {NAME})" in texts(bars) and f"{NAME}: {NAME}" in texts(bars)
    assert f"run 1: {NAME} / fc / {NAME}" in texts(angles)
    assert all(  # $x^2$ as written, not drawn as x²
        not text.get_parse_math() for figure in made for text in figure.findobj(pyplot.Text)
    )

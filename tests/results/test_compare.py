"""compare and check over runs written straight into a real store; golden text at a fixed width."""

from __future__ import annotations

import csv
import io
import json
import math
import xml.etree.ElementTree as ElementTree
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from matplotlib.colors import to_hex
from rich.console import Console
from typer.testing import CliRunner

from biobench.cli import app
from biobench.results import plot
from biobench.results.check import check_store
from biobench.results.compare import (
    comparison,
    comparison_tables,
    load_comparison,
    print_tables,
    render_csv,
    render_markdown,
)
from biobench.search import report
from biobench.spec import load_presets, resolve
from biobench.store import Store
from biobench.store.models import Run
from biobench.store.records import RunRecord
from support.records import bp_run, epoch_rows, run_record

runner = CliRunner()


def add_run(
    store: Store,
    benchmark: str | None,
    errors: list[tuple[float, float]],
    *,
    seed: int = 0,
    status: str = "finished",
    **spec_kw,
) -> int:
    """A run of `benchmark` (or of spec_kw) whose epochs have these (train, test) errors."""
    spec = (
        resolve(preset=benchmark, seed=seed, **spec_kw)
        if benchmark
        else resolve(seed=seed, **spec_kw)
    )
    run_id = store.create_run(**spec.run_fields(), device="cpu", environment={})
    for epoch, (train, test) in enumerate(errors, 1):
        store.write_epoch(
            run_id,
            epoch,
            {"train_top1": train, "test_top1": test, "train_top5": 0.0, "test_top5": test / 4},
        )
    store.set_status(run_id, status)
    return run_id


@pytest.fixture
def store(sqlite_url: str) -> Store:
    store = Store(sqlite_url)
    add_run(store, "mnist-fc-bp", [(3.0, 4.0), (0.5, 1.6), (0.0, 1.7)])
    add_run(store, "mnist-fc-bp", [(2.0, 3.0), (0.2, 1.4)], seed=1)
    add_run(store, "mnist-lc-bp", [(1.0, 1.3), (0.0, 1.2)])
    add_run(store, "mnist-conv-bp", [(1.0, 1.1)])
    add_run(store, "mnist-fc-dtp-alt", [(5.0, 6.0), (1.0, 2.5)])
    add_run(store, "mnist-fc-dtp-par", [(9.0, 9.5)], status="failed")  # never compared
    add_run(store, "mnist-lc-fa", [(4.0, 9.0)])
    return store


GOLDEN_MARKDOWN = """\
### mnist: 500 epochs, batch 128 (errors in %, best test epoch)

| family | method | fc train | fc test | fc paper | fc Δ | fc vs BP | lc train | lc test | lc paper | lc Δ | lc vs BP | conv train | conv test | conv paper | conv Δ | conv vs BP |
|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|
| backprop | BP | 0.35±0.21 | 1.50±0.14 (n=2) | 0.00 / 1.48 | +0.02 | +0.00 | 0.00 | 1.20 | 0.00 / 1.17 | +0.03 | +0.00 | 1.00 | 1.10 | 0.00 / 1.01 | +0.09 | +0.00 |
| feedback alignment | FA |  |  |  |  |  | 4.00 | 9.00 | 0.00 / 1.26 | +7.74 | +7.80 |  |  |  |  |  |
| target propagation | DTP alternating | 1.00 | 2.50 | 0.00 / 1.83 | +0.67 | +1.00 |  |  |  |  |  |  |  |  |  |  |
"""  # noqa: E501

# BP on the conv net sits under conv (the paper's BP-ConvNet cell is its reference there) and
# is compared with BP on conv, so its gap to BP is zero, not BP-LC's. Rules are grouped by
# family, in registry.FAMILIES order.
GOLDEN_TABLE = """\
mnist: 500 epochs, batch 128 (errors in %, best test epoch)
family              method            fc train          fc test     fc paper   fc Δ  fc vs BP  lc train  lc test     lc paper   lc Δ  lc vs BP  conv train  conv test   conv paper  conv Δ  conv vs BP
backprop            BP               0.35±0.21  1.50±0.14 (n=2)  0.00 / 1.48  +0.02     +0.00      0.00     1.20  0.00 / 1.17  +0.03     +0.00        1.00       1.10  0.00 / 1.01   +0.09       +0.00
feedback alignment  FA                                                                             4.00     9.00  0.00 / 1.26  +7.74     +7.80
target propagation  DTP alternating       1.00             2.50  0.00 / 1.83  +0.67     +1.00
"""  # noqa: E501


def test_comparison_matches_the_golden_markdown(store: Store) -> None:
    assert render_markdown(load_comparison(store)) == GOLDEN_MARKDOWN


def test_comparison_tables_are_never_cut_in_a_narrow_terminal(store: Store) -> None:
    console = Console(width=80, record=True, color_system=None, highlight=False)
    print_tables(console, load_comparison(store))
    text = "\n".join(line.rstrip() for line in console.export_text().splitlines()) + "\n"
    assert text == GOLDEN_TABLE


def test_best_epoch_is_the_default_and_final_epoch_on_request(store: Store) -> None:
    best = load_comparison(store).set_index(["method", "architecture"])
    final = load_comparison(store, final=True).set_index(["method", "architecture"])
    assert best.loc[("bp", "fc"), "test_top1"] == pytest.approx(1.5)  # mean of 1.6 and 1.4
    assert final.loc[("bp", "fc"), "test_top1"] == pytest.approx(1.55)  # mean of 1.7 and 1.4
    assert best.loc[("bp", "fc"), "runs"] == 2


def test_runs_of_another_protocol_are_not_compared_with_the_paper_cell(store: Store) -> None:
    add_run(
        store, None, [(0.0, 0.9)], algorithm="bp", architecture="fc", dataset="mnist", epochs=3
    )
    frame = load_comparison(store, datasets={"mnist"})
    assert set(frame["protocol"]) == {"500 epochs, batch 128", "3 epochs, batch 128"}
    short = frame[frame["protocol"] == "3 epochs, batch 128"]
    assert list(short["method"]) == ["bp"] and short["test_top1"].item() == pytest.approx(0.9)


def test_a_reference_measured_under_another_protocol_is_marked_and_named(store: Store) -> None:
    # A 3-epoch sanity run beside the paper's 500-epoch number: the Δ is not a reproduction
    # gap, and the table says so; the paper's own protocol keeps its table unmarked.
    add_run(
        store, None, [(0.0, 0.9)], algorithm="bp", architecture="fc", dataset="mnist", epochs=3
    )
    frame = load_comparison(store, datasets={"mnist"})
    short = frame[frame["protocol"] == "3 epochs, batch 128"]
    assert short["reference_protocol"].item() == "500 epochs, batch 128"
    assert set(frame.loc[frame["protocol"] != "3 epochs, batch 128", "reference_protocol"]) == {
        "500 epochs, batch 128"
    }
    (title, header, rows), *_ = [t for t in comparison_tables(frame) if "3 epochs" in t[0]]
    assert title == (
        "mnist: 3 epochs, batch 128 (errors in %, best test epoch; * paper: 500 epochs, batch 128)"
    )
    assert rows[0][header.index("fc paper")] == "0.00 / 1.48*"
    assert render_markdown(load_comparison(store, datasets={"mnist"})).count("*") == 2
    assert GOLDEN_MARKDOWN in render_markdown(frame)  # the paper's own protocol: no mark


def test_the_trials_of_a_search_stand_for_no_cell_unless_named(store: Store) -> None:
    cell = dict(algorithm="bp", architecture="fc", dataset="mnist", epochs=3)
    measured = add_run(store, None, [(0.0, 0.9)], **cell)
    trial_id = add_run(store, None, [(0.0, 40.0)], **cell)  # a bad configuration, run last
    with store._transaction(write=True) as connection:
        connection.execute(
            Run.__table__.update().where(Run.__table__.c.id == trial_id).values(study="s", trial=0)
        )
    frame = load_comparison(store, datasets={"mnist"})
    short = frame[frame["protocol"] == "3 epochs, batch 128"]
    assert short["test_top1"].item() == pytest.approx(0.9) and short["runs"].item() == 1
    named = load_comparison(store, run_ids=[trial_id])
    assert named["test_top1"].item() == pytest.approx(40.0)
    assert measured != trial_id


def test_check_verdicts(store: Store) -> None:
    verdicts = {
        v.preset: v
        for v in check_store(
            store,
            ["mnist-fc-bp", "mnist-lc-fa", "mnist-conv-bp", "mnist-fc-dtp-par", "cifar10-fc-bp"],
        )
    }
    assert verdicts["mnist-fc-bp"].verdict == "pass"  # 1.50 vs 1.48 ± 0.5
    assert verdicts["mnist-lc-fa"].verdict == "regressed"  # 9.00 vs 1.26 ± 0.5
    assert verdicts["mnist-conv-bp"].verdict == "pass"
    assert verdicts["mnist-fc-dtp-par"].verdict == "missing"  # its only run failed
    assert verdicts["cifar10-fc-bp"].verdict == "missing"


def test_check_improved_below_the_tolerance(store: Store) -> None:
    add_run(store, "mnist-fc-fa", [(0.0, 0.5)])
    (verdict,) = check_store(store, ["mnist-fc-fa"])
    assert verdict.verdict == "improved"


def test_check_ignores_runs_of_an_edited_preset(store: Store) -> None:
    add_run(store, "mnist-fc-fa", [(0.0, 1.9)], epochs=3)  # not the preset's spec any more
    (verdict,) = check_store(store, ["mnist-fc-fa"])
    assert verdict.verdict == "missing" and "current spec" in verdict.detail


def test_check_cli_exit_codes_and_junit(store: Store, tmp_path: Path) -> None:
    url = store.url.render_as_string(hide_password=False)
    ok = runner.invoke(app, ["check", "--bench", "mnist-fc-bp", "--db", url])
    assert ok.exit_code == 0 and "pass" in ok.stdout
    report = tmp_path / "junit.xml"
    bad = runner.invoke(app, ["check", "--db", url, "--junit", str(report)])
    assert bad.exit_code == 1 and "regressed" in bad.stdout
    suite = ElementTree.parse(report).getroot()
    assert suite.get("failures") == "2"  # DTP: 2.50 vs 1.83 ± 0.5; FA: 9.00 vs 1.26 ± 0.5
    failed = [case.get("name") for case in suite if case.find("failure") is not None]
    assert sorted(failed) == ["mnist-fc-dtp-alt", "mnist-lc-fa"]
    missing = runner.invoke(app, ["check", "--bench", "cifar10-fc-bp", "--db", url])
    assert missing.exit_code == 1 and "missing" in missing.stdout


@pytest.mark.parametrize("fmt", ["csv", "json", "markdown", "table"])
def test_compare_cli_formats(store: Store, fmt: str) -> None:
    url = store.url.render_as_string(hide_password=False)
    result = runner.invoke(app, ["compare", "--data", "mnist", "--format", fmt, "--db", url])
    assert result.exit_code == 0, result.output
    if fmt == "json":
        records = json.loads(result.stdout)
        assert {(r["method"], r["architecture"]) for r in records} == {
            ("dtp-alt", "fc"),
            ("fa", "lc"),
            ("bp", "fc"),
            ("bp", "lc"),
            ("bp", "conv"),
        }
    else:  # BP on conv is in the conv column, beside the paper's BP-ConvNet number
        assert "conv" in result.stdout and "1.01" in result.stdout


def test_compare_filters_by_architecture(store: Store) -> None:
    frame = load_comparison(store, architecture="fc")
    assert set(frame["architecture"]) == {"fc"}


@pytest.mark.parametrize(
    "what", ["benchmarks", "suites", "algorithms", "architectures", "datasets"]
)
def test_list(what: str) -> None:
    result = runner.invoke(app, ["list", what])
    assert result.exit_code == 0
    expected = {
        "benchmarks": "mnist-fc-dtp-alt",
        "suites": "paper-imagenet",
        "algorithms": "ao-sdtp",
        "architectures": "locally-connected",
        "datasets": "imagenet64",
    }[what]
    assert expected in result.stdout


def test_plot_learning_curves_and_bars(store: Store, tmp_path: Path) -> None:
    url = store.url.render_as_string(hide_password=False)
    curves, bars = tmp_path / "curves.png", tmp_path / "bars.png"
    assert runner.invoke(app, ["plot", "1", "2", "--out", str(curves), "--db", url]).exit_code == 0
    assert (
        runner.invoke(
            app, ["plot", "--compare", "mnist", "--out", str(bars), "--db", url]
        ).exit_code
        == 0
    )
    for path in (curves, bars):
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000


def test_imagenet_cells_show_top1_and_top5(sqlite_url: str) -> None:
    store = Store(sqlite_url)
    add_run(store, "imagenet-lc-bp", [(80.0, 72.0)])  # test top-5 is written as test / 4
    add_run(store, "imagenet-lc-fa", [(95.0, 93.0)])
    text = render_markdown(load_comparison(store, datasets={"imagenet"}))
    assert "lc test top-1/5" in text
    assert "| BP | 80.00 | 72.00 / 18.00 | 71.43 / 49.07 | +0.57 | +0.00 |" in text
    assert "| FA | 95.00 | 93.00 / 23.25 | 93.08 / 82.54 | -0.08 | +21.00 |" in text


@pytest.mark.parametrize(
    ("data", "how"),
    [
        ("mnist", "--suite paper-mnist"),
        ("digits", "--suite smoke"),
        ("synthetic", "--data synthetic"),
    ],
)
def test_compare_and_plot_say_the_same_when_no_run_matches(
    sqlite_url: str, tmp_path: Path, data: str, how: str
) -> None:
    line = f"no finished {data} runs to compare: run some with `biobench run {how}`"
    compared = runner.invoke(app, ["compare", "--data", data, "--db", sqlite_url])
    assert compared.exit_code == 0 and compared.stdout.strip() == line
    out = tmp_path / "bars.png"
    plotted = runner.invoke(
        app, ["plot", "--compare", data, "--out", str(out), "--db", sqlite_url]
    )
    assert plotted.exit_code == 0 and plotted.stdout.strip() == f"{line}; no figure written"
    assert not out.exists()


def test_plot_compare_all_with_no_runs_suggests_the_smoke_suite(sqlite_url: str) -> None:
    result = runner.invoke(app, ["plot", "--compare", "all", "--db", sqlite_url])
    assert result.exit_code == 0 and "`biobench run --suite smoke`; no figure written" in (
        result.stdout
    )


@pytest.mark.parametrize("name", ["curves.PDF", "curves.svg", "curves.png"])
def test_plot_writes_the_format_its_suffix_names(store: Store, tmp_path: Path, name: str) -> None:
    url = store.url.render_as_string(hide_password=False)
    out = tmp_path / name
    assert runner.invoke(app, ["plot", "1", "--out", str(out), "--db", url]).exit_code == 0
    magic = {"pdf": b"%PDF", "svg": b"<?xml", "png": b"\x89PNG"}[out.suffix[1:].lower()]
    assert out.read_bytes().startswith(magic)


@pytest.mark.parametrize("name", ["curves", "curves.jpg", "curves.png.tmp"])
def test_plot_refuses_an_out_of_no_figure_format_before_reading_runs(
    tmp_path: Path, name: str
) -> None:
    out = tmp_path / name
    db = tmp_path / "never.db"
    result = runner.invoke(app, ["plot", "1", "--out", str(out), "--db", f"sqlite:///{db}"])
    assert result.exit_code == 2
    assert result.stderr == (
        f"error: cannot write {out}: a figure's file name must end in .png, .pdf or .svg; "
        "choose another --out\n"
    )
    assert not out.exists() and not db.exists()


def test_what_plot_wrote_is_shown_with_control_characters_escaped(
    store: Store, tmp_path: Path
) -> None:
    url = store.url.render_as_string(hide_password=False)
    out = tmp_path / "\x1b[2Jcurves.png"
    result = runner.invoke(app, ["plot", "1", "--out", str(out), "--db", url])
    assert result.exit_code == 0 and out.exists()
    assert result.stdout == f"wrote {tmp_path}/\\x1b[2Jcurves.png\n"


def test_final_epoch_tables_say_final_epoch(store: Store) -> None:
    final = render_markdown(load_comparison(store, final=True), final=True)
    assert final.startswith("### mnist: 500 epochs, batch 128 (errors in %, final epoch)\n")
    url = store.url.render_as_string(hide_password=False)
    for fmt in ("table", "markdown"):
        shown = runner.invoke(app, ["compare", "--final", "--format", fmt, "--db", url]).stdout
        assert "(errors in %, final epoch)" in shown and "best test epoch" not in shown


def test_the_std_of_a_single_seed_is_empty_not_zero(store: Store) -> None:
    url = store.url.render_as_string(hide_password=False)
    text = runner.invoke(app, ["compare", "--format", "csv", "--db", url]).stdout
    rows = {(r["method"], r["architecture"]): r for r in csv.DictReader(io.StringIO(text))}
    assert rows[("bp", "fc")]["runs"] == "2" and float(rows[("bp", "fc")]["test_top1_std"]) > 0
    assert rows[("bp", "lc")]["runs"] == "1" and rows[("bp", "lc")]["test_top1_std"] == ""
    records = json.loads(runner.invoke(app, ["compare", "--format", "json", "--db", url]).stdout)
    lc = next(r for r in records if (r["method"], r["architecture"]) == ("bp", "lc"))
    assert lc["test_top1_std"] is None


def test_the_bar_chart_is_fit_for_a_paper(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One colour per architecture in every panel (conv keeps its colour where lc is absent),
    labels clear of the next panel, the legend outside the axes, paper marks unlike error
    bars."""
    for arch, test in (("fc", 1.0), ("conv", 0.9)):  # a second panel, without lc
        add_run(
            store,
            None,
            [(0.0, test)],
            algorithm="bp",
            architecture=arch,
            dataset="mnist",
            epochs=3,
        )
    drawn: dict[str, Any] = {}

    def save(figure: Any, out: Path) -> None:  # laid out as saved, kept to be measured
        figure.canvas.draw()
        drawn.update(figure=figure, renderer=figure.canvas.get_renderer())

    monkeypatch.setattr(plot, "_save", save)
    frame = load_comparison(store)
    plot.comparison_bars(frame, tmp_path / "bars.png")
    figure = drawn["figure"]
    colours = plot.architecture_colours([])
    assert [colours[a] for a in ("fc", "lc", "conv")] == list(plot.PALETTE[:3])
    titles = []
    for axis in figure.axes:
        titles.append(axis.get_title(loc="left"))
        protocol = titles[-1].split(": ", 1)[1]
        archs = set(frame[frame["protocol"] == protocol]["architecture"])
        assert {to_hex(bar.get_facecolor()) for bar in axis.patches} == {
            colours[a].lower() for a in archs
        }
        assert axis.get_legend() is None
    assert titles == ["mnist: 3 epochs, batch 128", "mnist: 500 epochs, batch 128"]
    (legend,) = figure.legends
    labels = [text.get_text() for text in legend.get_texts()]
    assert labels == ["fc", "lc", "conv", "±1 std over seeds", "paper (Bartunov et al., 2018)"]
    paper, spread = legend.legend_handles[-1], legend.legend_handles[-2]
    assert paper.get_marker() == "D" and paper.get_markerfacecolor() == "white"
    assert paper.get_linestyle() == "None" and spread.get_color() != "black"

    renderer = drawn["renderer"]
    upper, lower = figure.axes
    title_top = lower.title.get_window_extent(renderer).y1
    for label in upper.get_xticklabels():
        box = label.get_window_extent(renderer)
        assert box.y0 > title_top and box.x0 >= 0  # not into the next panel, not cut
    legend_box = legend.get_window_extent(renderer)
    for axis in figure.axes:
        assert legend_box.x0 >= axis.get_window_extent(renderer).x1  # beside, not on, the bars


# -- each reference scored the way it was selected (issue 22) --------------------------------


def add_val_run(store: Store, preset: str, epochs: list[tuple[float, float, float | None]]) -> int:
    """A finished run of `preset` whose epochs have these (train, test, val) top-1 errors."""
    spec = resolve(preset=preset)
    run_id = store.create_run(**spec.run_fields(), device="cpu", environment={})
    for epoch, (train, test, val) in enumerate(epochs, 1):
        row = {"train_top1": train, "test_top1": test, "train_top5": 0.0, "test_top5": test / 4}
        if val is not None:
            row["val_top1"] = val
        store.write_epoch(run_id, epoch, row)
    store.set_status(run_id, "finished")
    return run_id


# Epoch 2 is best on validation (test 12.0, train 3.0); epoch 3 best on test (11.0, train 2.0).
BIOTORCH_EPOCHS = [(9.0, 20.0, 21.0), (3.0, 12.0, 10.0), (2.0, 11.0, 14.0)]


@pytest.mark.parametrize(
    ("select", "train", "test", "words"),
    [
        (None, 3.0, 12.0, "best validation epoch"),  # biotorch's own protocol, by default
        ("best-val", 3.0, 12.0, "best validation epoch"),
        ("best-test", 2.0, 11.0, "best test epoch"),
        ("final", 2.0, 11.0, "final epoch"),
    ],
)
def test_a_biotorch_cell_is_scored_at_its_best_validation_epoch(
    sqlite_url: str, select: str | None, train: float, test: float, words: str
) -> None:
    store = Store(sqlite_url)
    add_val_run(store, "cifar10-resnet20-bp", BIOTORCH_EPOCHS)
    row = load_comparison(store, select=select).iloc[0]
    assert (row["train_top1"], row["test_top1"], row["selection"]) == (
        train,
        test,
        select or "best-val",
    )
    assert row["reference_selection"] == "best-val"
    assert row["delta_test_top1"] == pytest.approx(test - 8.63)  # biotorch's BP: 8.63
    (title, _, _), *_ = comparison_tables(load_comparison(store, select=select))
    assert f"(errors in %, {words})" in title


def test_every_column_of_a_row_comes_from_the_one_selected_epoch(sqlite_url: str) -> None:
    """Not each column's own minimum: train 0.0 at epoch 3 beside test 1.2 at epoch 2 would
    describe no network that ever existed."""
    store = Store(sqlite_url)
    add_run(store, "mnist-fc-bp", [(3.0, 4.0), (0.5, 1.2), (0.0, 1.7)])
    row = load_comparison(store).iloc[0]
    assert (row["train_top1"], row["test_top1"], row["test_top5"]) == (0.5, 1.2, 0.3)


def test_a_run_without_a_validation_split_is_shown_but_not_scored_against_biotorch(
    sqlite_url: str,
) -> None:
    store = Store(sqlite_url)
    run = add_val_run(store, "cifar10-resnet20-fa", [(t, v, None) for t, v, _ in BIOTORCH_EPOCHS])
    frame = load_comparison(store)
    row = frame.iloc[0]
    assert (row["test_top1"], row["selection"]) == (11.0, "best-test")  # shown, the paper's way
    assert math.isnan(row["delta_test_top1"])  # but not scored against biotorch's 32.16
    assert row["paper_test_top1"] == 32.16
    (title, _, rows), *_ = comparison_tables(frame)
    assert rows[0][4].endswith("†")  # the reference cell is marked
    note = title.splitlines()[1]
    assert note.startswith(f"† FA on resnet20: run(s) {run} have no validation split")
    assert note.endswith("run with --set val_split=5000")
    markdown = render_markdown(frame)
    assert "\n† FA on resnet20" in markdown and "### cifar10" in markdown
    result = runner.invoke(app, ["compare", "--db", sqlite_url])
    assert result.exit_code == 0, result.output
    assert "have no validation split" in result.stdout


def test_a_best_val_selection_is_refused_by_name_when_misspelt(sqlite_url: str) -> None:
    result = runner.invoke(app, ["compare", "--select", "best", "--db", sqlite_url])
    assert result.exit_code == 2
    assert "best-test" in result.output and "best-val" in result.output


@pytest.mark.parametrize(("select", "measured"), [(None, 12.0), ("best-test", 11.0)])
def test_check_scores_a_biotorch_preset_at_its_best_validation_epoch(
    sqlite_url: str, select: str | None, measured: float
) -> None:
    store = Store(sqlite_url)
    add_val_run(store, "cifar10-resnet20-bp", BIOTORCH_EPOCHS)
    (verdict,) = check_store(store, ["cifar10-resnet20-bp"], select)
    assert verdict.measured == measured
    args = ["check", "--preset", "cifar10-resnet20-bp", "--db", sqlite_url]
    shown = runner.invoke(app, [*args, *(["--select", select] if select else [])])
    assert f"test top-1 {measured:.2f}%" in shown.stdout


def test_a_rule_on_a_network_of_biobenchs_own_construction_is_marked(sqlite_url: str) -> None:
    store = Store(sqlite_url)
    add_val_run(store, "cifar10-resnet20-drtp", BIOTORCH_EPOCHS)
    add_val_run(store, "cifar10-resnet20-bp", BIOTORCH_EPOCHS)
    frame = load_comparison(store).set_index("method")
    assert "no published counterpart" in frame.loc["drtp", "construction"]
    assert not isinstance(frame.loc["bp", "construction"], str)
    (title, _, rows), *_ = comparison_tables(load_comparison(store))
    drtp = next(row for row in rows if row[1] == "DRTP")
    assert drtp[3].endswith("‡")
    assert "\n‡ DRTP on resnet20: biobench's own construction" in title
    listed = runner.invoke(app, ["list", "algorithms"]).stdout
    assert "drtp on resnet20: biobench's own construction" in listed
    assert "dfa on resnet20: biotorch's construction" in listed


def test_a_run_stored_as_ddtp_is_a_dtp_drl_run(sqlite_url: str) -> None:
    """`ddtp`, DTP-DRL's earlier name, is an alias: old runs join the rule's row."""
    store = Store(sqlite_url)
    spec = resolve(algorithm="ddtp", architecture="fc", dataset="digits")
    assert spec.algorithm == "dtp-drl"
    for algorithm in ("ddtp", "dtp-drl"):
        fields = {**spec.run_fields(), "algorithm": algorithm}
        run_id = store.create_run(**fields, device="cpu", environment={})
        store.write_epoch(run_id, 1, {"train_top1": 1.0, "test_top1": 2.0})
        store.set_status(run_id, "finished")
    frame = load_comparison(store)
    assert list(frame["method"]) == ["dtp-drl-alt"] and list(frame["runs"]) == [1]


def test_a_study_name_with_markup_and_control_characters_is_shown_as_written(
    sqlite_url: str,
) -> None:
    from biobench.results.compare import comparison

    store = Store(sqlite_url)
    run_id = add_run(store, "mnist-fc-bp", [(1.0, 2.0)])
    frame = comparison(
        store.runs(), store.epochs(), load_presets(), studies={run_id: "[red]x\x1b[2J"}
    )
    console = Console(width=300, record=True, color_system=None, highlight=False)
    print_tables(console, frame)
    shown = console.export_text()
    assert "BP (study [red]x\\x1b[2J)" in shown and "\x1b" not in shown


def test_seeds_that_agree_show_a_spread_of_zero(sqlite_url: str) -> None:
    """'4.17±0.00 (n=2)': two seeds measured the same, not one seed whose spread is unknown."""
    store = Store(sqlite_url)
    add_run(store, "mnist-fc-bp", [(1.0, 4.17)], seed=0)
    add_run(store, "mnist-fc-bp", [(1.0, 4.17)], seed=1)
    (_, _, rows), *_ = comparison_tables(load_comparison(store))
    assert rows[0][3] == "4.17±0.00 (n=2)" and rows[0][2] == "1.00±0.00"


def test_other_settings_of_a_rule_in_a_cell_are_counted_where_the_row_is_shown(
    sqlite_url: str,
) -> None:
    store = Store(sqlite_url)
    add_run(store, "mnist-fc-bp", [(1.0, 2.0)])
    add_run(
        store,
        None,
        [(1.0, 3.0)],
        algorithm="bp",
        architecture="fc",
        dataset="mnist",
        overrides=["lr=0.01"],
        epochs=500,
        batch_size=128,
    )
    (title, _, rows), *_ = comparison_tables(load_comparison(store))
    assert rows[0][3].endswith(" +1")
    assert "\n+N: N other settings of the rule ran in this cell and are not shown" in title
    result = runner.invoke(app, ["compare", "--db", sqlite_url])
    assert "+N: N other settings" in result.stdout


def test_a_studys_row_sits_right_below_its_rules_plain_row_whatever_the_studys_name() -> None:
    # "A" sorts before any placeholder in uppercase letters: the plain row's key must be ""
    runs = [bp_run(1, 0), bp_run(2, 0, lr="0.002")]
    frame = comparison(runs, epoch_rows({1: [1.0], 2: [2.0]}), load_presets(), studies={2: "A"})
    assert list(frame["label"]) == ["BP", "BP (study A)"]


def test_a_studys_gap_is_to_the_best_of_two_bp_studies_of_its_protocol() -> None:
    # BP searched twice (studies b1 and b2): a tuned FA row is measured against the lower BP
    runs = [bp_run(1, 0), bp_run(2, 0, lr="0.002"), bp_run(3, 0, lr="0.003")]
    runs.append(run_record(4, resolve(algorithm="fa", architecture="fc", dataset="mnist")))
    errors = epoch_rows({1: [50.0], 2: [40.0], 3: [44.0], 4: [45.0]})
    studies = {2: "b1", 3: "b2", 4: "f"}
    frame = comparison(runs, errors, load_presets(), studies=studies)
    gaps = dict(zip(frame["label"], frame["gap_to_bp"], strict=True))
    assert gaps == {"BP": 0.0, "BP (study b1)": 0.0, "BP (study b2)": 4.0, "FA (study f)": 5.0}


def header_and_rows(runs: list, errors: dict[int, list[float]]) -> tuple[list[str], list]:
    ((_, header, rows),) = comparison_tables(comparison(runs, epoch_rows(errors), load_presets()))
    return header, rows


def test_an_imagenet_table_shows_top5_even_where_no_reference_has_a_top5_number() -> None:
    # DFA, which the paper did not run on ImageNet: no reference, yet top-1 / top-5 errors
    spec = resolve(algorithm="dfa", architecture="lc", dataset="imagenet", epochs=3)
    header, rows = header_and_rows([run_record(1, spec)], {1: [72.0]})
    assert header[3] == "lc test top-1/5"
    assert rows == [["feedback alignment", "DFA", "36.00", "72.00 / 18.00", "– / –", "–", "–"]]


def test_a_table_with_no_reference_names_its_reference_column_paper() -> None:
    spec = resolve(algorithm="bp", architecture="fc", dataset="synthetic", epochs=1)
    header, rows = header_and_rows([run_record(1, spec)], {1: [2.0]})
    assert header == ["family", "method", "fc train", "fc test", "fc paper", "fc Δ", "fc vs BP"]
    assert rows == [["backprop", "BP", "1.00", "2.00", "– / –", "–", "+0.00"]]


def test_a_table_of_one_biotorch_cell_names_biotorch_as_its_source() -> None:
    header, _ = header_and_rows([run_record(1, resolve(preset="cifar10-resnet20-bp"))], {1: [9.0]})
    assert header[4] == "resnet20 biotorch"


def two_tables() -> pd.DataFrame:
    runs = [
        bp_run(1, 0),
        run_record(2, resolve(algorithm="bp", architecture="fc", dataset="synthetic")),
    ]
    return comparison(runs, epoch_rows({1: [1.0], 2: [2.0]}), load_presets())


def test_markdown_separates_two_tables_by_one_blank_line() -> None:
    text = render_markdown(two_tables())
    first, second = text.split("\n\n### ")
    assert first.startswith("### mnist: ") and first.endswith(" |")
    assert second.startswith("synthetic: ") and second.endswith(" |\n")


def test_the_csv_export_has_no_index_column() -> None:
    lines = render_csv(two_tables()).splitlines()
    assert lines[0].startswith("dataset,protocol,method,")
    assert [line.split(",")[0] for line in lines[1:]] == ["mnist", "synthetic"]


def test_compare_of_a_study_shows_only_its_tables_with_no_index_column(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = Store(sqlite_url)

    def add(test: float, **spec_kw: Any) -> RunRecord:
        spec = resolve(algorithm="bp", architecture="fc", **spec_kw)
        run_id = store.create_run(**spec.run_fields(), device="cpu", environment={})
        store.write_epoch(run_id, 1, {"train_top1": 0.0, "test_top1": test, "test_top5": 0.0})
        store.set_status(run_id, "finished")
        (run,) = store.runs([run_id])
        return run

    add(1.0, dataset="mnist")  # a table with no study: left out
    add(50.0, dataset="synthetic", epochs=1)
    best = add(40.0, dataset="synthetic", epochs=1, overrides=["lr=1e-4"])
    monkeypatch.setattr(report, "best_run", lambda name, _: ({}, best) if name == "s" else None)
    frame = load_comparison(store, studies=["s"])
    assert list(zip(frame["dataset"], frame["label"], strict=True)) == [
        ("synthetic", "BP"),
        ("synthetic", "BP (study s)"),
    ]
    assert "index" not in frame.columns and list(frame.columns[-2:]) == ["study", "reference"]
    assert list(frame.index) == [0, 1]

"""Tests for the gaps a mutation run (tools/mutation.sh) showed in results/render.py: each fails on
a plausible one-line bug there, asserting what a user reads: the `runs` table line by line, each
status in its colour, nothing cut in a narrow terminal or a pipe,
`show`'s header, error, resume hint, spec and epoch table, and what the exports hold (order,
sorted JSON settings, ISO dates, recorded_at, layer rows under their epoch, a header line).
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest
from rich.console import Console

from biobench.results import render
from biobench.spec import resolve
from biobench.store import RunRecord, RunStatus, Store
from support.records import run_record, shown_text
from support.store import ENDED, add_run, add_running, dead_pid

START = datetime(2026, 3, 4, 5, 6, tzinfo=timezone.utc)


def a_run(run_id: int, status: RunStatus, epochs_done: int, **changes: object) -> RunRecord:
    spec = resolve(algorithm="bp", architecture="fc", dataset="synthetic", epochs=10)
    return run_record(run_id, spec, status=status, epochs_done=epochs_done, **changes)


def lines(text: str) -> list[str]:
    return [line.rstrip() for line in text.splitlines() if line.strip()]


def test_the_runs_table_reads_line_by_line_as_printed() -> None:
    finished = run_record(
        7,
        resolve(preset="mnist-fc-bp"),
        epochs_done=3,
        started_at=START,
        finished_at=START + timedelta(seconds=125),
        best_test_top1=1.234,
    )
    running = a_run(12, RunStatus.running, 1, started_at=START, best_test_top1=50.0)
    lost = a_run(130, RunStatus.lost, 0, started_at=None, seed=4)
    table = render.runs_table([finished, running, lost], now=START + timedelta(seconds=3725))
    assert lines(shown_text(table)) == [
        "runs (best top-1: lowest test error, %)",
        "  id  algo  arch  data       seed  status    epochs  best top-1   time  started      "
        "preset",
        " " + "─" * 95,
        "   7  bp    fc    mnist         0  finished   3/500        1.23  2m05s  03-04 05:06  "
        "mnist-fc-bp",
        "  12  bp    fc    synthetic     0  running     1/10       50.00  1h02m  03-04 05:06  -",
        " 130  bp    fc    synthetic     4  lost        0/10           -      -  -            -",
    ]


@pytest.mark.parametrize(
    ("status", "colour"),
    [
        (RunStatus.running, "36"),  # cyan
        (RunStatus.finished, "32"),  # green
        (RunStatus.failed, "31"),  # red
        (RunStatus.interrupted, "33"),  # yellow
        (RunStatus.diverged, "35"),  # magenta
        (RunStatus.lost, "1;31"),  # bold red
    ],
)
def test_each_status_shows_in_its_colour_in_a_terminal(status: RunStatus, colour: str) -> None:
    for table in (render.runs_table, lambda runs: render.run_detail(runs[0], [])):
        console = Console(file=io.StringIO(), force_terminal=True, color_system="standard")
        console.print(table([a_run(1, status, 0)]))
        assert f"\x1b[{colour}m{status.value}" in console.file.getvalue()


def test_an_empty_runs_table_still_has_its_headers() -> None:
    assert lines(shown_text(render.runs_table([])))[1].split() == [
        "id", "algo", "arch", "data", "seed", "status", "epochs", "best", "top-1", "time",
        "started", "preset",
    ]  # fmt: skip


@pytest.mark.parametrize("width", [60, 80, 95, 97, 100])
def test_in_a_terminal_too_narrow_for_the_runs_table_nothing_is_cut(width: int) -> None:
    # Rich squeezes columns below their content to fit a terminal: at 95 columns the preset
    # lost letters ("mnist-f" / "-dtp-al"), at 80 the started column was cut and the preset
    # gone. `biobench runs` prints such a table whole: the terminal wraps its lines.
    runs = [
        a_run(3, RunStatus.finished, 2, preset="mnist-fc-dtp-alt", algorithm="dtp"),
        a_run(1234, RunStatus.interrupted, 2, preset="cifar10-conv-fa", dataset="cifar10"),
    ]
    runs = [replace(run, started_at=START, finished_at=START, best_test_top1=1.5) for run in runs]
    console = Console(width=width, record=True, file=io.StringIO(), force_terminal=True)
    render.print_fitted(console, render.runs_table(runs))  # as `biobench runs` prints
    assert [line.split() for line in lines(console.export_text())[3:]] == [
        ["3", "dtp", "fc", "synthetic", "0", "finished", "2/10", "1.50", "0s", "03-04", "05:06",
         "mnist-fc-dtp-alt"],
        ["1234", "bp", "fc", "cifar10", "0", "interrupted", "2/10", "1.50", "0s", "03-04",
         "05:06", "cifar10-conv-fa"],
    ]  # fmt: skip
    assert console.width == width


def test_a_terminal_that_holds_the_narrowest_layout_gets_lines_no_wider_than_itself() -> None:
    runs = [
        a_run(3, RunStatus.finished, 2, preset="mnist-fc-dtp-alt", algorithm="dtp"),
        a_run(1234, RunStatus.interrupted, 2, preset="cifar10-conv-fa", dataset="cifar10"),
    ]
    runs = [replace(run, started_at=START, finished_at=START, best_test_top1=1.5) for run in runs]
    table = render.runs_table(runs)
    console = Console(width=103, record=True, file=io.StringIO(), force_terminal=True)
    unbounded = console.options.update(max_width=1000)
    assert console.measure(table, options=unbounded).minimum <= 103 < 105  # fits, squeezed
    render.print_fitted(console, table)
    shown = lines(console.export_text())
    assert max(len(line) for line in shown) <= 103
    at = shown[1].index("preset")  # the preset may fold there, every letter kept
    presets: list[str] = []
    for line in shown[3:]:
        if line[:at].strip():
            presets.append("")
        presets[-1] += line[at:].strip()
    assert presets == ["mnist-fc-dtp-alt", "cifar10-conv-fa"]


def test_a_table_wider_than_the_terminal_is_printed_whole_at_its_own_width() -> None:
    preset = "a-preset-name-much-longer-than-a-narrow-terminal-is-wide"
    run = a_run(3, RunStatus.finished, 2, preset=preset, started_at=START, finished_at=START)
    console = Console(width=40, record=True, file=io.StringIO())
    render.print_natural(console, render.runs_table([run]))
    shown = lines(console.export_text())
    assert shown[-1].split() == ["3", "bp", "fc", "synthetic", "0", "finished", "2/10", "-"] + [
        "0s",
        "03-04",
        "05:06",
        preset,
    ]
    assert console.width == 40  # the console is left as it was


def test_show_heads_a_run_with_its_status_epochs_and_time_and_lists_its_spec_as_json() -> None:
    run = a_run(
        7,
        RunStatus.finished,
        3,
        started_at=START,
        finished_at=START + timedelta(seconds=125),
        environment={
            "argv": ["run", "--seed", "1"],
            "host": {"cpus": 4},
            "threads": 1,
            "cuda": None,
        },
    )
    shown = lines(shown_text(render.run_detail(run, [])))
    assert shown[0] == "run 7  finished  3/10 epochs, 2m05s"
    assert shown[1:3] == ["spec", " algorithm      bp"]  # the key-value tables have no header
    assert shown[shown.index("environment") + 1] == ' argv     ["run", "--seed", "1"]'
    assert ' argv     ["run", "--seed", "1"]' in shown
    assert ' host     {"cpus": 4}' in shown and " threads  1" in shown
    assert f" spec_hash      {run.spec_hash}" in shown
    assert " data_settings  {}" in shown and " seed           0" in shown
    assert " preset         -" in shown and " cuda     -" in shown  # none: not Python's None
    assert "continue it with" not in shown_text(render.run_detail(run, []))


def test_show_prints_why_a_run_failed_on_a_line_of_its_own_in_red_and_keys_in_bold() -> None:
    run = a_run(5, RunStatus.failed, 0, error="CUDA out of memory")
    shown = lines(shown_text(render.run_detail(run, [])))
    assert shown[1:3] == [
        "error: CUDA out of memory",
        "continue it with `biobench run --resume 5`",
    ]
    assert shown[-1] == "no epoch finished yet"
    console = Console(file=io.StringIO(), force_terminal=True, color_system="standard")
    console.print(render.run_detail(run, []))
    assert "\x1b[31merror: CUDA out of memory\x1b[0m" in console.file.getvalue()
    assert "\x1b[1mspec_hash" in console.file.getvalue()  # the spec's keys in bold


def test_show_lists_each_epoch_under_a_titled_column_per_metric() -> None:
    row = {"epoch": 1, "train_top1": 1.0, "train_top5": 0.5, "train_loss": 0.1, "test_top1": 2.0}
    row.update(test_top5=1.0, test_loss=0.2, wall_time=3.0, images_per_s=100.0)
    shown = lines(shown_text(render.run_detail(a_run(1, RunStatus.finished, 1), [row])))
    assert shown[-4:] == [
        "epochs (errors in %)",
        " epoch  train top-1  train top-5  train loss  test top-1  test top-5  test loss  wall s  "
        "img/s",
        " " + "─" * 93,
        "     1         1.00         0.50      0.1000        2.00        1.00     0.2000     3.0  "
        "  100",
    ]


def test_exports_list_runs_by_id_with_their_settings_as_sorted_json() -> None:
    first = a_run(1, RunStatus.finished, 1, hparams={"momentum": 0.9, "lr": 0.1})
    second = a_run(2, RunStatus.failed, 0, error="CUDA out of memory")
    recorded = datetime(2026, 3, 4, 5, 7, tzinfo=timezone.utc)
    epochs = [{"run_id": 1, "epoch": 1, "test_top1": 5.0, "recorded_at": recorded}]
    table = list(csv.DictReader(io.StringIO(render.export_csv([second, first], epochs))))
    assert list(table[0])[-1] == "recorded_at"  # when each epoch was written
    assert table[0]["recorded_at"] == "2026-03-04 05:07:00+00:00"
    assert [row["run_id"] for row in table] == ["1", "2"]
    assert list(table[0])[: len(render.RUN_EXPORT_COLUMNS)] == [
        "run_id",
        *render.RUN_EXPORT_COLUMNS[1:],
    ]
    assert table[0]["hparams"] == '{"lr": 0.1, "momentum": 0.9}'
    assert table[1]["error"] == "CUDA out of memory" and table[1]["status"] == "failed"
    exported = json.loads(render.export_json([second, first], epochs))["runs"]
    assert [run["id"] for run in exported] == [1, 2]
    assert exported[0]["hparams"] == {"lr": 0.1, "momentum": 0.9}
    assert exported[1]["status"] == "failed" and exported[1]["epoch_rows"] == []
    assert exported[0]["epoch_rows"][0]["recorded_at"] == "2026-03-04T05:07:00.000Z"
    assert exported[0]["created_at"] == "2026-01-01T00:00:00.000Z"  # dates as ISO text


def layer(run_id: int, epoch: int, number: int, angle: float) -> dict[str, object]:
    return {
        "run_id": run_id,
        "epoch": epoch,
        "layer": number,
        "name": f"fc{number}",
        "update_angle": angle,
        "signal_cosine": None,
        "weight_angle": None,
    }


def test_the_json_export_puts_each_layer_row_under_its_own_run_and_epoch() -> None:
    runs = [a_run(1, RunStatus.finished, 2), a_run(2, RunStatus.finished, 1)]
    epochs = [
        {"run_id": 1, "epoch": 1, "test_top1": 9.0},
        {"run_id": 1, "epoch": 2, "test_top1": 8.0},
        {"run_id": 2, "epoch": 1, "test_top1": 7.0},
    ]
    layers = [layer(1, 2, 1, 45.0), layer(1, 2, 2, 30.5), layer(2, 1, 1, 0.123456789012)]
    exported = json.loads(render.export_json(runs, epochs, layers))["runs"]
    first, second = (run["epoch_rows"] for run in exported)
    assert first[0]["layers"] == []
    assert [(row["layer"], row["name"], row["update_angle"]) for row in first[1]["layers"]] == [
        (1, "fc1", 45.0),
        (2, "fc2", 30.5),
    ]
    assert second[0]["layers"][0]["update_angle"] == 0.123456789012  # all its digits
    assert set(second[0]["layers"][0]) == {
        "layer", "name", "update_angle", "signal_cosine", "weight_angle"
    }  # fmt: skip


def test_the_layer_export_is_one_row_per_run_epoch_and_layer() -> None:
    table = list(csv.DictReader(io.StringIO(render.export_layers_csv([layer(3, 2, 1, 45.0)]))))
    assert table == [
        {
            "run_id": "3",
            "epoch": "2",
            "layer": "1",
            "name": "fc1",
            "update_angle": "45.0",
            "signal_cosine": "",
            "weight_angle": "",
        }
    ]


def test_the_layer_export_of_runs_without_alignment_rows_is_its_header_line() -> None:
    assert render.export_layers_csv([]) == (
        "run_id,epoch,layer,name,update_angle,signal_cosine,weight_angle\n"
    )


def test_printing_a_wide_table_leaves_the_console_following_the_terminal(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """print_natural widens the console for one table, then hands the width back to the
    terminal (COLUMNS here): it used to pin the width it had measured, so every later command
    in the process (a test suite's `list algorithms` at COLUMNS=250) printed folded."""
    import io

    from rich.console import Console
    from rich.table import Table

    from biobench.results.render import print_natural

    console = Console(file=io.StringIO())
    monkeypatch.setenv("COLUMNS", "100")
    assert console.width == 100
    table = Table()
    table.add_column("x")
    table.add_row("y" * 300)
    print_natural(console, table)
    assert "y" * 300 in console.file.getvalue()
    monkeypatch.setenv("COLUMNS", "250")
    assert console.width == 250


def test_show_offers_to_resume_exactly_the_runs_that_can_continue(sqlite_store: Store) -> None:
    ids = {status: add_run(sqlite_store, [5.0], status=status) for status in ENDED}
    ids["lost"] = add_running(sqlite_store, dead_pid())
    for status, run_id in ids.items():
        run = sqlite_store.run(run_id)
        assert run.status == status
        shown = shown_text(render.run_detail(run, sqlite_store.epochs([run_id])))
        offered = f"continue it with `biobench run --resume {run_id}`" in shown
        assert offered == (status in ("failed", "interrupted", "lost")), status


def test_durations_and_errors_read_to_the_digit() -> None:
    shown = [render.format_duration(s) for s in (None, 0, 59.4, 59.6, 125, 3599.6, 3725)]
    assert shown == ["-", "0s", "59s", "1m00s", "2m05s", "1h00m", "1h02m"]
    shown = [render.format_error(v) for v in (None, 7.126, 0.0, math.nan, math.inf)]
    assert shown == ["-", "7.13", "0.00", "nan", "inf"]


def test_the_epoch_table_shows_each_metric_to_its_digits() -> None:
    row = {
        "epoch": 4,
        "train_top1": 12.3456,
        "train_top5": 1.0,
        "train_loss": 0.123456,
        "test_top1": math.nan,
        "test_top5": None,
        "test_loss": math.inf,
        "wall_time": 12.34,
        "images_per_s": 12345.6,
    }
    (line,) = [x for x in shown_text(render.epochs_table([row])).splitlines() if "12,346" in x]
    assert line.split() == ["4", "12.35", "1.00", "0.1235", "nan", "-", "inf", "12.3", "12,346"]
    row.update(train_loss=None, wall_time=math.nan, images_per_s=0.4)
    (line,) = [x for x in shown_text(render.epochs_table([row])).splitlines() if "12.35" in x]
    assert line.split()[3:] == ["-", "nan", "-", "inf", "nan", "0"]


def test_show_says_why_a_run_failed_and_where_its_checkpoints_are(sqlite_store: Store) -> None:
    run_id = add_run(sqlite_store, [], status="failed")
    sqlite_store.set_status(run_id, "failed", "CUDA out of memory")
    run = replace(sqlite_store.run(run_id), checkpoint="/ckpt/run-1", environment={})
    shown = shown_text(render.run_detail(run, []))
    assert "error: CUDA out of memory" in shown and "no epoch finished yet" in shown
    assert "checkpoints: /ckpt/run-1\n" in shown  # kept: a failed run keeps its checkpoint
    finished = replace(run, status=RunStatus.finished, environment={"keep_checkpoint": "none"})
    assert "checkpoints: /ckpt/run-1 (deleted when the run finished: --keep-checkpoint none)" in (
        shown_text(render.run_detail(finished, []))
    )
    kept = replace(finished, environment={"keep_checkpoint": "last"})
    assert "checkpoints: /ckpt/run-1\n" in shown_text(render.run_detail(kept, []))

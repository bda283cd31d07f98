"""Tests for results/alignment.py, whose only other test (test_cost.py) trains runs through the
CLI and checks little of what they print; too slow to select for a mutation run, so each test
here was checked against one-line bugs planted by hand instead (no mutmut score yet). They assert
what a user reads: `show --alignment`'s tables to the digit, the panels `plot --alignment` draws,
and `compare --cost`'s medians, ratios to BP, grouping and order.
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from rich.text import Text

from biobench.results import alignment, plot
from biobench.spec import resolve
from biobench.store import RunRecord, RunStatus
from support.records import run_record, shown_text


def layer(run_id: int, epoch: int, number: int, **values: float | None) -> dict[str, Any]:
    row = {"update_angle": None, "signal_cosine": None, "weight_angle": None, **values}
    return {"run_id": run_id, "epoch": epoch, "layer": number, "name": f"fc{number}", **row}


def lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


# -- show --alignment ----------------------------------------------------------------------------


def test_a_run_without_alignment_rows_says_why_there_are_none() -> None:
    shown = alignment.alignment_tables([])
    assert isinstance(shown, Text) and shown.plain == (
        "no alignment rows (the run measured none: --set alignment=false, or none yet)"
    )


def test_alignment_tables_show_each_measured_metric_per_epoch_and_layer_to_its_digits() -> None:
    rows = [
        layer(1, 2, 2, update_angle=30.25, signal_cosine=0.98765),
        layer(1, 1, 1, update_angle=45.04, signal_cosine=math.nan),
        layer(1, 1, 2, update_angle=math.inf, signal_cosine=None),
        layer(1, 2, 1, update_angle=None, signal_cosine=0.5),
    ]
    text = shown_text(alignment.alignment_tables(rows))
    assert text.startswith("layers: 1 fc1, 2 fc2\n")
    words = " ".join(text.split())  # a title wraps to its table's width
    angle = words.index("update angle to BP's gradient (degrees)")
    cosine = words.index("learning signal's cosine with BP's delta (mean over the probe)")
    assert 0 < angle < cosine and "feedback B" not in words  # no layer measured weight angles
    headers = [line.split("┃")[1:-1] for line in text.splitlines() if "┃" in line]
    assert [[cell.strip() for cell in row] for row in headers] == [["epoch", "L1", "L2"]] * 2
    cells = [line.split("│")[1:-1] for line in text.splitlines() if "│" in line]
    assert [[cell.strip() for cell in row] for row in cells] == [
        ["1", "45.0", "inf"],
        ["2", "-", "30.2"],
        ["1", "nan", "-"],
        ["2", "0.500", "0.988"],
    ]
    assert cells[1][1] == "    - "  # numbers to the right


def test_the_alignment_plot_has_a_panel_per_measured_metric_and_a_line_per_layer(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    saved: list[Any] = []
    monkeypatch.setattr(plot, "_save", lambda figure, out: saved.append((figure, out)))
    run = run_record(
        4,
        resolve(algorithm="fa", architecture="fc", dataset="mnist"),
        status=RunStatus.interrupted,
        epochs_done=2,
    )
    rows = [  # as FA's: layer 1 has no feedback weight, so no weight angle
        layer(4, 1, 1, update_angle=40.0),
        layer(4, 2, 1, update_angle=30.0),
        layer(4, 1, 2, update_angle=50.0, weight_angle=80.0),
        layer(4, 2, 2, update_angle=45.0, weight_angle=70.0),
    ]
    alignment.alignment_plot(run, rows, tmp_path / "a.png")
    ((figure, out),) = saved
    assert out == tmp_path / "a.png"
    assert figure._suptitle.get_text() == "run 4: fa / fc / mnist"
    angle, weight = figure.axes
    assert angle.get_title() == "update angle to BP's gradient (degrees)"
    assert weight.get_title() == "angle between feedback B and W^T (degrees)"
    assert angle.get_xlabel() == "epoch"
    drawn = {line.get_label(): list(line.get_ydata()) for line in angle.get_lines()}
    assert drawn == {"L1": [40.0, 30.0], "L2": [50.0, 45.0]}
    assert [line.get_label() for line in weight.get_lines()] == ["L2"]  # L1 measured none
    assert [t.get_text() for t in angle.get_legend().get_texts()] == ["L1", "L2"]
    assert [t.get_text() for t in weight.get_legend().get_texts()] == ["L2"]
    colour = {line.get_label(): line.get_color() for line in angle.get_lines()}
    assert colour["L1"] != colour["L2"]
    assert [line.get_color() for line in weight.get_lines()] == [colour["L2"]]  # one per layer


# -- compare --cost ------------------------------------------------------------------------------


def test_the_mean_update_angle_is_over_the_layers_of_each_runs_last_measured_epoch() -> None:
    rows = [
        layer(1, 1, 1, update_angle=80.0),
        layer(1, 3, 1, update_angle=40.0),
        layer(1, 3, 2, update_angle=20.0),
        layer(1, 3, 3, update_angle=math.nan),
        layer(1, 3, 4, update_angle=None),
        layer(2, 1, 1, update_angle=10.0),
    ]
    assert alignment.last_mean_angle(rows) == {1: 30.0, 2: 10.0}


def cost_run(run_id: int, algorithm: str, **changes: Any) -> RunRecord:
    spec = resolve(algorithm=algorithm, architecture="fc", dataset="mnist")
    fields = {"status": RunStatus.finished, "flops_per_step": 2e9, **changes}
    return run_record(run_id, spec, epochs_done=1, **fields)


def epoch(run_id: int, step_ms: float | None, peak: float | None = 100.0) -> dict[str, Any]:
    return {"run_id": run_id, "step_ms": step_ms, "eval_ms": 7.0, "peak_memory_mb": peak}


def test_cost_is_the_median_over_a_rules_epochs_as_a_ratio_to_bp_in_the_same_conditions() -> None:
    runs = [
        cost_run(1, "fa", flops_per_step=None),
        cost_run(2, "bp", flops_per_step=1e9),
        cost_run(3, "fa", flops_per_step=3e9),
        cost_run(4, "fa"),
        cost_run(5, "dfa", batch_size=64),  # another batch size: no BP to compare with
        cost_run(6, "bp"),  # no epoch: left out
    ]
    epochs = [
        epoch(1, 30.0, 300.0),
        epoch(1, math.nan, None),
        epoch(3, 10.0, 100.0),
        epoch(4, 50.0, 500.0),
        epoch(4, None, math.inf),
        epoch(2, 10.0, 200.0),
        epoch(5, 4.0),
    ]
    layers = [layer(3, 1, 1, update_angle=40.0), layer(4, 1, 1, update_angle=50.0)]
    frame = alignment.cost_frame(runs, epochs, layers).set_index("algorithm")
    assert list(frame.index) == ["dfa", "bp", "fa"]  # batch 64, then 128: BP, then FA
    fa = frame.loc["fa"]
    assert (fa["label"], fa["runs"], fa["batch_size"], fa["precision"]) == ("FA", 3, 128, "fp32")
    assert (fa["step_ms"], fa["eval_ms"], fa["peak_memory_mb"]) == (30.0, 7.0, 300.0)
    assert (fa["step_vs_bp"], fa["memory_vs_bp"]) == (3.0, 1.5)
    assert fa["flops_per_step"] == 2.5e9 and fa["update_angle"] == 45.0
    bp = frame.loc["bp"]
    assert (bp["runs"], bp["step_vs_bp"], bp["memory_vs_bp"]) == (1, 1.0, 1.0)
    assert math.isnan(bp["update_angle"])
    assert math.isnan(frame.loc["dfa", "step_vs_bp"]) and frame.loc["dfa", "batch_size"] == 64


def test_a_warm_up_epoch_does_not_move_a_rules_cost() -> None:
    """The first epoch pays for warm-up (allocator, caches, a compile): the median of a rule's
    epochs ignores it, where a mean would not."""
    runs = [cost_run(1, "bp"), cost_run(2, "fa")]
    epochs = [
        epoch(1, 400.0, 900.0),
        epoch(1, 10.0, 100.0),
        epoch(1, 12.0, 100.0),
        epoch(2, 20.0, 200.0),
        epoch(2, 500.0, 200.0),
        epoch(2, 21.0, 200.0),
    ]
    frame = alignment.cost_frame(runs, epochs, []).set_index("algorithm")
    assert list(frame["step_ms"]) == [12.0, 21.0]
    assert list(frame["peak_memory_mb"]) == [100.0, 200.0]
    assert frame.loc["fa", "step_vs_bp"] == 1.75 and frame.loc["fa", "memory_vs_bp"] == 2.0


def test_cost_groups_runs_by_precision_and_puts_unknown_rules_last() -> None:
    half = {"settings": {"precision": "bf16"}}
    runs = [
        cost_run(1, "bp"),
        cost_run(2, "dtp"),
        cost_run(3, "bp", spec={**cost_run(3, "bp").spec, **half}),
        cost_run(4, "fa"),
        replace(cost_run(5, "fa"), algorithm="my-rule"),  # a plugin no longer installed
        cost_run(6, "fa", device="cuda"),
    ]
    frame = alignment.cost_frame(runs, [epoch(i, 10.0 * i) for i in range(1, 7)], [])
    assert list(zip(frame["device"], frame["precision"], frame["label"], strict=True)) == [
        ("cpu", "bf16", "BP"),
        ("cpu", "fp32", "BP"),
        ("cpu", "fp32", "FA"),
        ("cpu", "fp32", "DTP"),
        ("cpu", "fp32", "my-rule"),
        ("cuda", "fp32", "FA"),
    ]
    assert list(frame["step_vs_bp"][:5]) == [1.0, 1.0, 4.0, 2.0, 5.0]
    assert alignment.cost_frame([cost_run(1, "bp")], [], []).empty


def test_the_cost_table_prints_each_number_to_its_digits() -> None:
    runs = [cost_run(1, "bp", flops_per_step=1.23456e9), cost_run(2, "fa", flops_per_step=None)]
    epochs = [epoch(1, 12.345, 1234.5), epoch(2, 24.69, math.nan)]
    frame = alignment.cost_frame(runs, epochs, [layer(2, 1, 1, update_angle=33.33)])
    (table,) = alignment.cost_tables(frame)
    shown = lines(shown_text(table))
    assert shown[0] == "mnist / fc: cost on cpu, batch 128, fp32"
    headers = [cell.strip() for line in shown[1:4] if "┃" in line for cell in line.split("┃")]
    assert " ".join(h for h in headers if h) == (  # on the CPU: the process's memory
        "method runs ms/step IQR x BP eval ms peak RSS MB x BP GFLOP update° threads load"
    )
    cells = [line.split("│")[1:-1] for line in shown if "│" in line]
    assert [[cell.strip() for cell in row] for row in cells] == [
        ["BP", "1", "12.35", "-", "1.00", "7", "1234", "1.00", "1.235", "nan", "-", "nan"],
        ["FA", "1", "24.69", "-", "2.00", "7", "nan", "nan", "nan", "33.3", "-", "nan"],
    ]
    assert cells[0][0] == " BP     " and cells[0][1] == "    1 "  # names left, numbers right
    gpu = [replace(run, device="NVIDIA H100") for run in runs]
    (table,) = alignment.cost_tables(alignment.cost_frame(gpu, epochs, []))
    assert "peak MB" in shown_text(table) and "RSS" not in shown_text(table)


def test_cost_shows_the_spread_of_step_times_and_the_threads_and_load_runs_had() -> None:
    runs = [
        cost_run(1, "bp", environment={"threads": 2, "load": [6.7, 6.1, 4.4]}),
        cost_run(2, "bp", environment={"threads": 1, "load": [0.5, 0.4, 0.3]}),
        cost_run(3, "fa", environment={"threads": 1}),  # recorded before load was
        cost_run(4, "dfa"),  # recorded before threads were
    ]
    epochs = [*(epoch(1, ms) for ms in (10.0, 30.0)), *(epoch(2, ms) for ms in (20.0, 40.0))]
    epochs += [epoch(3, 5.0), epoch(3, math.nan), epoch(4, 8.0)]
    frame = alignment.cost_frame(runs, epochs, []).set_index("algorithm")
    bp, fa, dfa = frame.loc["bp"], frame.loc["fa"], frame.loc["dfa"]
    assert (bp["step_ms_q1"], bp["step_ms"], bp["step_ms_q3"]) == (17.5, 25.0, 32.5)
    assert (bp["threads"], bp["load"]) == ("1, 2", 6.7)
    assert math.isnan(fa["step_ms_q1"]) and math.isnan(fa["step_ms_q3"])  # one finite epoch
    assert (fa["threads"], dfa["threads"]) == ("1", "") and math.isnan(fa["load"])
    (table,) = alignment.cost_tables(frame.reset_index())
    cells = [line.split("│")[1:-1] for line in lines(shown_text(table)) if "│" in line]
    assert [[cell.strip() for cell in row][2:4] + [row[-2].strip(), row[-1].strip()]
            for row in cells] == [
        ["25.00", "17.50-32.50", "1, 2", "6.7"],
        ["5.00", "-", "1", "nan"],
        ["8.00", "-", "-", "nan"],
    ]  # fmt: skip

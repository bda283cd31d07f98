"""Alignment and cost as users read them: `show --alignment`, `plot --alignment`, the exports'
per-layer rows, and `compare --cost`. No torch here.

Alignment rows are store.layer_metrics() rows (models.LayerMetric). The cost table puts every
rule beside backprop on the same dataset, network, device, batch size and precision, because
a rule's cost is only meaningful as a ratio to BP's under the same conditions.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

import pandas as pd
from rich.console import Group
from rich.table import Table
from rich.text import Text

from biobench.registry import ALGORITHMS, FAMILIES
from biobench.results.plot import plain_text
from biobench.store import RunRecord
from biobench.store.models import LAYER_COLUMNS

TITLES = {
    "update_angle": "update angle to BP's gradient (degrees)",
    "signal_cosine": "learning signal's cosine with BP's delta (mean over the probe)",
    "weight_angle": "angle between feedback B and W^T (degrees)",
}


def _fmt(value: float | None, digits: int) -> str:
    if value is None:
        return "-"
    return f"{value:.{digits}f}" if math.isfinite(value) else str(value)


def _spread(low: float, high: float) -> str:
    """The interquartile range of a rule's step times, "q1-q3" ("-" with fewer than two)."""
    if math.isnan(low) or math.isnan(high):
        return "-"
    return f"{low:.2f}-{high:.2f}"


def alignment_tables(rows: list[dict[str, Any]]) -> Group | Text:
    """One table per metric the run has: a row per epoch, a column per layer."""
    if not rows:
        return Text(
            "no alignment rows (the run measured none: --set alignment=false, or none yet)"
        )
    layers = sorted({(r["layer"], r["name"]) for r in rows})
    epochs = sorted({r["epoch"] for r in rows})
    at = {(r["epoch"], r["layer"]): r for r in rows}
    parts: list[Any] = [Text("layers: " + ", ".join(f"{n} {name}" for n, name in layers))]
    for column in LAYER_COLUMNS:
        if all(r[column] is None for r in rows):
            continue
        table = Table(title=TITLES[column], title_justify="left")
        table.add_column("epoch", justify="right")
        for number, _ in layers:
            table.add_column(f"L{number}", justify="right")
        digits = 3 if column == "signal_cosine" else 1
        for epoch in epochs:
            table.add_row(
                str(epoch),
                *(_fmt(at.get((epoch, n), {}).get(column), digits) for n, _ in layers),
            )
        parts.append(table)
    return Group(*parts)


@plain_text
def alignment_plot(run: RunRecord, rows: list[dict[str, Any]], out: Path) -> None:
    """The run's alignment per epoch, one line per layer, a panel per metric it has."""
    from biobench.results.plot import _pyplot, _save

    plt = _pyplot()
    columns = [c for c in LAYER_COLUMNS if any(r[c] is not None for r in rows)]
    figure, axes = plt.subplots(1, len(columns), figsize=(5 * len(columns), 4), squeeze=False)
    by_layer: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_layer[row["layer"]].append(row)
    for axis, column in zip(axes[0], columns, strict=True):
        # A layer's colour is its place among all the run's layers, not among the lines this
        # panel draws: layer 1 has no feedback angle, and the cycle would shift every colour.
        for index, (layer, points) in enumerate(sorted(by_layer.items())):
            points = [p for p in points if p[column] is not None]
            if points:
                axis.plot(
                    [p["epoch"] for p in points],
                    [p[column] for p in points],
                    color=f"C{index % 10}",
                    label=f"L{layer}",
                )
        axis.set_title(TITLES[column], fontsize=9)
        axis.set_xlabel("epoch")
        axis.xaxis.get_major_locator().set_params(integer=True)
        axis.grid(alpha=0.3)
        axis.legend(fontsize=7, ncol=2)  # each panel draws its own set of layers
    figure.suptitle(f"run {run.id}: {run.algorithm} / {run.architecture} / {run.dataset}")
    figure.tight_layout()
    _save(figure, out)


def last_mean_angle(rows: list[dict[str, Any]]) -> dict[int, float]:
    """Per run: the mean update angle over the layers of its last measured epoch."""
    last: dict[int, int] = {}
    for row in rows:
        last[row["run_id"]] = max(last.get(row["run_id"], 0), row["epoch"])
    angles: dict[int, list[float]] = defaultdict(list)
    for row in rows:
        value = row["update_angle"]
        if row["epoch"] == last[row["run_id"]] and value is not None and math.isfinite(value):
            angles[row["run_id"]].append(value)
    return {run_id: statistics.fmean(values) for run_id, values in angles.items()}


def cost_frame(
    runs: list[RunRecord], epochs: list[dict[str, Any]], layers: list[dict[str, Any]]
) -> pd.DataFrame:
    """One row per (dataset, architecture, device, batch size, precision, rule): the median
    over its runs' epochs of step time, evaluation time and peak memory, the step time's
    quartiles (its spread: a busy machine's timings scatter), its FLOPs per step, its last mean
    update angle, the CPU threads and the machine's highest load its runs recorded, and step
    time and memory as ratios to BP's in the same group (NaN where that group has no BP run)."""
    per_run: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for row in epochs:
        per_run[row["run_id"]].append(row)
    angle = last_mean_angle(layers)
    groups: dict[tuple, list[RunRecord]] = defaultdict(list)
    for run in runs:
        if per_run.get(run.id):
            precision = (run.spec.get("settings") or {}).get("precision", "fp32")
            key = (run.dataset, run.architecture, run.device, run.batch_size, precision)
            groups[(*key, run.algorithm)].append(run)

    def finite(rows: list[dict[str, Any]], column: str) -> list[float]:
        return [r[column] for r in rows if r[column] is not None and math.isfinite(r[column])]

    def median(rows: list[dict[str, Any]], column: str) -> float:
        values = finite(rows, column)
        return statistics.median(values) if values else math.nan

    def quartiles(rows: list[dict[str, Any]], column: str) -> tuple[float, float]:
        values = finite(rows, column)
        if len(values) < 2:
            return math.nan, math.nan
        low, _, high = statistics.quantiles(values, n=4, method="inclusive")
        return low, high

    records = []
    for (*key, algorithm), members in groups.items():
        rows = [row for run in members for row in per_run[run.id]]
        flops = [run.flops_per_step for run in members if run.flops_per_step]
        angles = [angle[run.id] for run in members if run.id in angle]
        threads = sorted(
            {run.environment["threads"] for run in members if "threads" in run.environment}
        )
        loads = [run.environment["load"][0] for run in members if run.environment.get("load")]
        q1, q3 = quartiles(rows, "step_ms")
        entry = ALGORITHMS.entry(algorithm) if algorithm in ALGORITHMS else None
        records.append(
            {
                "dataset": key[0],
                "architecture": key[1],
                "device": key[2],
                "batch_size": key[3],
                "precision": key[4],
                "algorithm": algorithm,
                "label": entry.display if entry else algorithm,
                "order": (
                    list(FAMILIES).index(entry.family)
                    if entry and entry.family in FAMILIES
                    else 99,
                    entry.order if entry else 1000,
                ),
                "runs": len(members),
                "step_ms": median(rows, "step_ms"),
                "step_ms_q1": q1,
                "step_ms_q3": q3,
                "eval_ms": median(rows, "eval_ms"),
                "peak_memory_mb": median(rows, "peak_memory_mb"),
                "flops_per_step": statistics.median(flops) if flops else math.nan,
                "update_angle": statistics.fmean(angles) if angles else math.nan,
                "threads": ", ".join(map(str, threads)),  # empty: runs from before it was kept
                "load": max(loads) if loads else math.nan,
            }
        )
    frame = pd.DataFrame(records)
    if frame.empty:
        return frame
    group = ["dataset", "architecture", "device", "batch_size", "precision"]
    for column, ratio in (("step_ms", "step_vs_bp"), ("peak_memory_mb", "memory_vs_bp")):
        bp = frame[frame["algorithm"] == "bp"].set_index(group)[column]
        frame[ratio] = [
            row[column] / bp.get(tuple(row[g] for g in group), math.nan)
            for _, row in frame.iterrows()
        ]
    return frame.sort_values([*group, "order", "algorithm"]).reset_index(drop=True)


def cost_tables(frame: pd.DataFrame) -> list[Table]:
    """A table per (dataset, network, device, batch, precision)."""
    tables = []
    group = ["dataset", "architecture", "device", "batch_size", "precision"]
    for key, block in frame.groupby(group, sort=False):
        dataset, arch, device, batch, precision = key
        table = Table(
            title=f"{dataset} / {arch}: cost on {device}, batch {batch}, {precision}",
            title_justify="left",
        )
        # On the CPU the peak is the whole process's resident memory, not the device's.
        memory = "peak RSS MB" if device == "cpu" else "peak MB"
        for header in ("method", "runs", "ms/step", "IQR", "x BP", "eval ms", memory, "x BP",
                       "GFLOP", "update°", "threads", "load"):  # fmt: skip
            table.add_column(header, justify="left" if header == "method" else "right")
        for _, row in block.iterrows():
            table.add_row(
                row["label"],
                str(row["runs"]),
                _fmt(row["step_ms"], 2),
                _spread(row["step_ms_q1"], row["step_ms_q3"]),
                _fmt(row["step_vs_bp"], 2),
                _fmt(row["eval_ms"], 0),
                _fmt(row["peak_memory_mb"], 0),
                _fmt(row["memory_vs_bp"], 2),
                _fmt(row["flops_per_step"] / 1e9, 3),
                _fmt(row["update_angle"], 1),
                row["threads"] or "-",
                _fmt(row["load"], 1),
            )
        tables.append(table)
    return tables

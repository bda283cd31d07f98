"""Rendering stored results: run lists, one run's detail, and exports (pandas frames).

Pure presentation over `Store` reads: no torch, no training. The comparison with BP and the
paper, and the check against references, are in compare.py.
"""

from __future__ import annotations

import json
import math
from datetime import datetime, timezone
from typing import Any

import pandas as pd
from rich import box
from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from biobench.store.models import LAYER_COLUMNS, METRIC_COLUMNS
from biobench.store.records import RunRecord, RunStatus
from biobench.text import printable

STATUS_STYLE = {
    RunStatus.running: "cyan",
    RunStatus.finished: "green",
    RunStatus.failed: "red",
    RunStatus.interrupted: "yellow",
    RunStatus.diverged: "magenta",
    RunStatus.lost: "bold red",
}
RUN_EXPORT_COLUMNS = (
    "id",
    "preset",
    "algorithm",
    "architecture",
    "dataset",
    "seed",
    "epochs",
    "batch_size",
    "status",
    "error",
    "spec_hash",
    "device",
    "host",
    "git_sha",
    "torch_version",
    "biobench_version",
    "created_at",
    "started_at",
    "finished_at",
    "heartbeat_at",
    "hparams",
    "data_settings",
)
JSON_COLUMNS = ("hparams", "data_settings")  # nested in JSON, JSON text in a CSV cell


def _table(title: str, **options: Any) -> Table:
    return Table(
        title=title,
        title_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        collapse_padding=True,
        **options,
    )


def duration(run: RunRecord, now: datetime | None = None) -> float | None:
    """Seconds from start to finish (or to now, for a run still going)."""
    start = run.started_at
    if start is None:
        return None
    end = run.finished_at or now or datetime.now(timezone.utc)
    return (end - start).total_seconds()


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return (
        f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"
    )


def format_error(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.2f}" if math.isfinite(value) else str(value)


def print_natural(console: Console, renderable: Any) -> None:
    """Print at the renderable's natural width when it is wider than the console: nothing is
    cut or folded, a narrow terminal wraps whole lines, a pipe gets one line per row."""
    width, pinned = console.width, console._width  # None: the terminal's (or COLUMNS) each time
    unbounded = console.options.update(max_width=100_000)
    try:
        console.width = max(width, console.measure(renderable, options=unbounded).maximum)
        console.print(renderable, highlight=False)
    finally:
        console._width = pinned  # not the width measured now: a later resize still counts


def print_fitted(console: Console, table: Table) -> None:
    """In a terminal that holds the table's narrowest layout, print it to the terminal's width;
    else (a narrower terminal, a pipe, a file) whole at its natural width, as print_natural:
    rich would otherwise squeeze columns below their content and cut it."""
    unbounded = console.options.update(max_width=100_000)  # else measured to fit the width
    if console.is_terminal and console.measure(table, options=unbounded).minimum <= console.width:
        console.print(table)
    else:
        print_natural(console, table)


def runs_table(runs: list[RunRecord], now: datetime | None = None) -> Table:
    """One line per run. The columns users copy (id, names, preset) are never cut or wrapped
    (print it with print_fitted: a terminal too narrow for it gets whole lines)."""
    table = _table("runs (best top-1: lowest test error, %)")
    rows = [
        (
            str(run.id),
            printable(run.algorithm),  # a stored row's names, as any database may hold them
            printable(run.architecture),
            printable(run.dataset),
            str(run.seed),
            Text(run.status.value, style=STATUS_STYLE[run.status]),
            f"{run.epochs_done}/{run.epochs}",
            format_error(run.best_test_top1),
            format_duration(duration(run, now)),
            run.started_at.strftime("%m-%d %H:%M") if run.started_at else "-",
            Text(printable(run.preset or "-")),
        )
        for run in runs
    ]
    header = ("id", "algo", "arch", "data", "seed", "status", "epochs", "best top-1", "time")
    for i, name in enumerate(header):
        width = max(len(name), *(len(str(row[i])) for row in rows)) if rows else len(name)
        right = name in ("id", "seed", "epochs", "best top-1", "time")
        table.add_column(name, justify="right" if right else "left", no_wrap=True, min_width=width)
    table.add_column("started", no_wrap=True)
    table.add_column("preset", overflow="fold", min_width=8)
    for row in rows:
        table.add_row(*row)
    return table


def epochs_table(epochs: list[dict[str, Any]]) -> Table:
    table = _table("epochs (errors in %)")
    headers = (
        "epoch",
        "train top-1",
        "train top-5",
        "train loss",
        "test top-1",
        "test top-5",
        "test loss",
        "wall s",
        "img/s",
    )
    for header in headers:
        table.add_column(header, justify="right")
    for row in epochs:
        table.add_row(
            str(row["epoch"]),
            *(format_error(row[key]) for key in ("train_top1", "train_top5")),
            _num(row["train_loss"], 4),
            *(format_error(row[key]) for key in ("test_top1", "test_top5")),
            _num(row["test_loss"], 4),
            _num(row["wall_time"], 1),
            _num(row["images_per_s"], 0),
        )
    return table


def _num(value: float | None, digits: int) -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}" if math.isfinite(value) else str(value)


def _pairs(title: str, pairs: dict[str, Any]) -> Table:
    table = _table(title, show_header=False)
    table.add_column("key", style="bold")
    table.add_column("value")
    for key, value in pairs.items():
        if value is None:  # no preset, no CUDA: "-" as in the runs table, not Python's None
            shown = "-"
        else:
            shown = json.dumps(value) if isinstance(value, dict | list) else str(value)
        table.add_row(Text(printable(key)), Text(printable(shown)))
    return table


def run_detail(run: RunRecord, epochs: list[dict[str, Any]]) -> Group:
    status = Text(run.status.value, style=STATUS_STYLE[run.status])
    header = Text.assemble(
        f"run {run.id}  ",
        status,
        f"  {run.epochs_done}/{run.epochs} epochs, {format_duration(duration(run))}",
    )
    parts: list[Any] = [header]
    if run.error:
        parts.append(Text(printable(f"error: {run.error}"), style="red"))
    if run.checkpoint:
        gone = (
            run.status is RunStatus.finished and run.environment.get("keep_checkpoint") == "none"
        )
        deleted = " (deleted when the run finished: --keep-checkpoint none)" if gone else ""
        parts.append(Text(printable(f"checkpoints: {run.checkpoint}{deleted}")))
    if run.status.resumable:
        parts.append(Text(f"continue it with `biobench run --resume {run.id}`"))
    parts.append(_pairs("spec", {**run.spec, "spec_hash": run.spec_hash}))
    parts.append(_pairs("environment", run.environment))
    parts.append(epochs_table(epochs) if epochs else Text("no epoch finished yet"))
    return Group(*parts)


def export_frames(
    runs: list[RunRecord], epochs: list[dict[str, Any]]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    records = []
    for run in runs:
        values = {**run.as_dict(), "data_settings": run.spec.get("data_settings") or {}}
        records.append({key: values[key] for key in RUN_EXPORT_COLUMNS})
    run_frame = pd.DataFrame(records, columns=list(RUN_EXPORT_COLUMNS))
    for column in JSON_COLUMNS:
        run_frame[column] = run_frame[column].map(lambda h: json.dumps(h, sort_keys=True))
    epoch_frame = pd.DataFrame(epochs, columns=["run_id", "epoch", *METRIC_COLUMNS, "recorded_at"])
    return run_frame.sort_values("id"), epoch_frame


def export_csv(runs: list[RunRecord], epochs: list[dict[str, Any]]) -> str:
    """One row per (run, epoch): the run's columns repeated beside each epoch's metrics, where
    `epochs` is the run's configured count and `epoch` the row's number.

    A run with no finished epoch still appears, once, with empty metric columns.
    """
    run_frame, epoch_frame = export_frames(runs, epochs)
    tidy = run_frame.rename(columns={"id": "run_id"}).merge(epoch_frame, on="run_id", how="left")
    tidy["epoch"] = tidy["epoch"].astype("Int64")
    return tidy.to_csv(index=False)


def export_json(
    runs: list[RunRecord], epochs: list[dict[str, Any]], layers: list[dict[str, Any]] = ()
) -> str:
    """{"runs": [{...run, "epoch_rows": [{..., "layers": [...]}, ...]}, ...]}: as in the CSV,
    `epochs` is the run's configured count; its epochs' rows are `epoch_rows`, each with its
    per-layer alignment rows as `layers` (store.layer_metrics). NaN and inf become null."""
    run_frame, epoch_frame = export_frames(runs, epochs)
    per_epoch: dict[tuple[int, int], list[dict[str, Any]]] = {}
    layer_frame = pd.DataFrame(list(layers), columns=["run_id", "epoch", "layer", "name",
                                                      *LAYER_COLUMNS])  # fmt: skip
    for record in json.loads(layer_frame.to_json(orient="records", double_precision=15)):
        per_epoch.setdefault((record.pop("run_id"), record.pop("epoch")), []).append(record)
    by_run: dict[int, list[dict[str, Any]]] = {}
    for record in json.loads(
        epoch_frame.to_json(orient="records", date_format="iso", double_precision=15)
    ):
        run_id = record.pop("run_id")
        record["layers"] = per_epoch.get((run_id, record["epoch"]), [])
        by_run.setdefault(run_id, []).append(record)
    records = json.loads(
        run_frame.to_json(orient="records", date_format="iso", double_precision=15)
    )
    for record in records:
        for column in JSON_COLUMNS:
            record[column] = json.loads(record[column])
        record["epoch_rows"] = by_run.get(record["id"], [])
    return json.dumps({"runs": records}, indent=2)


def export_layers_csv(layers: list[dict[str, Any]]) -> str:
    """The per-layer alignment rows as a long table: run_id, epoch, layer, name and the
    models.LAYER_COLUMNS, one row each."""
    columns = ["run_id", "epoch", "layer", "name", *LAYER_COLUMNS]
    return pd.DataFrame(list(layers), columns=columns).to_csv(index=False)

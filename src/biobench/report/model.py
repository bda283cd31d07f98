"""What the report's pages show, read once from the store: plain data, no HTML.

The leaderboards are `compare`'s own tables (results/compare.py: `load_comparison` and
`comparison_tables`, the cells `biobench compare` prints, character for character), split per
architecture and given the numbers to sort by and the runs to link to; the cost page is
`compare --cost`'s frame (results/alignment.py: `cost_frame`); studies are `biobench study`'s
rows (search/report.py). Every read goes through the Store's API, once per build.
"""

from __future__ import annotations

import math
import shlex
import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import pandas as pd

from biobench.registry import load_all
from biobench.results.alignment import cost_frame
from biobench.results.compare import comparison_tables, load_comparison, selected_errors
from biobench.results.render import duration, format_duration
from biobench.store import RunRecord, RunStatus, Store
from biobench.store.models import LAYER_COLUMNS, PHASES

# The columns of one architecture in a compare table, after family and method.
ARCH_COLUMNS = ("train", "test", "reference", "delta", "vs_bp")
# The frame's number each of those columns sorts by (the text is compare's).
SORT_KEYS = {
    "train": "train_top1",
    "test": "test_top1",
    "reference": "paper_test_top1",
    "delta": "delta_test_top1",
    "vs_bp": "gap_to_bp",
}
CURVES = tuple(f"{split}_{k}" for split in ("train", "test", "val") for k in ("top1", "top5"))
COST_PHASES = ("step_ms", *(f"step_ms_{phase}" for phase in PHASES), "eval_ms", "peak_memory_mb")


def finite(value: Any) -> float | None:
    """A number JSON and a sort key can hold: None for NaN, inf and missing."""
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def shown(value: Any, digits: int = 2) -> str:
    """A metric as a table shows it: "-" when missing, nan/inf as such (a diverged run)."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}" if math.isfinite(value) else str(value)
    return str(value)


class CachedStore:
    """The store, with its runs and epochs read once: `load_comparison` reads through it, so a
    build reads each table once and the leaderboards stay compare's own code path."""

    def __init__(self, store: Store, runs: list[RunRecord], epochs: list[dict[str, Any]]):
        self._store = store
        self._runs = runs
        self._epochs = epochs

    def runs(self, run_ids: list[int] | None = None, *args: Any, **kwargs: Any) -> Any:
        if args or kwargs:
            return self._store.runs(run_ids, *args, **kwargs)
        if run_ids is None:
            return list(self._runs)
        wanted = set(run_ids)
        return [run for run in self._runs if run.id in wanted]

    def epochs(self, run_ids: list[int] | None = None) -> list[dict[str, Any]]:
        if run_ids is None:
            return list(self._epochs)
        wanted = set(run_ids)
        return [row for row in self._epochs if row["run_id"] in wanted]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


@dataclass
class Cell:
    text: str
    sort: float | None = None
    href: str | None = None  # relative to the site's root
    title: str | None = None
    sign: int = 0  # of a difference: +1 worse, -1 better


@dataclass
class Board:
    """One leaderboard: a dataset and protocol (compare's table) on one architecture."""

    anchor: str
    dataset: str
    protocol: str
    architecture: str
    caption: str  # compare's title: protocol, selection, the reference's protocol
    notes: list[str]
    header: list[str]  # compare's header for these columns
    rows: list[list[Cell]]


@dataclass
class Filters:
    """Which runs a site shows: those of a suite's presets, or of some datasets (else all)."""

    datasets: set[str] | None = None
    presets: set[str] | None = None

    def keeps(self, run: RunRecord) -> bool:
        if self.datasets is not None and run.dataset not in self.datasets:
            return False
        return self.presets is None or run.preset in self.presets


@dataclass
class SiteData:
    title: str
    database: str  # the URL with its secrets masked
    generated: datetime
    runs: list[RunRecord]
    epochs: dict[int, list[dict[str, Any]]]
    layers: dict[int, list[dict[str, Any]]]
    frame: pd.DataFrame
    boards: list[Board]
    cost: pd.DataFrame
    studies: list[dict[str, Any]] = field(default_factory=list)

    @property
    def running(self) -> list[RunRecord]:
        return [run for run in self.runs if run.status is RunStatus.running]


def load(store: Store, filters: Filters | None = None, title: str | None = None) -> SiteData:
    """Everything the site shows, read from `store` once."""
    load_all()
    filters = filters or Filters()
    runs = sorted((r for r in store.runs() if filters.keeps(r)), key=lambda r: r.id)
    ids = [run.id for run in runs]
    epoch_rows = store.epochs(ids) if runs else []
    layer_rows = store.layer_metrics(ids) if runs else []
    cached = CachedStore(store, runs, epoch_rows)
    frame = load_comparison(cached, filters.datasets) if runs else pd.DataFrame()
    by_run: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for row in epoch_rows:
        by_run[row["run_id"]].append(row)
    by_layer: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for row in layer_rows:
        by_layer[row["run_id"]].append(row)
    finished = [r for r in runs if r.status is RunStatus.finished and r.study is None]
    kept = {r.id for r in finished}
    cost = cost_frame(
        finished,
        [row for row in epoch_rows if row["run_id"] in kept],
        [row for row in layer_rows if row["run_id"] in kept],
    )
    return SiteData(
        title=title or "biobench results",
        database=store.display_url,
        generated=datetime.now(timezone.utc),
        runs=runs,
        epochs=by_run,
        layers=by_layer,
        frame=frame,
        boards=boards(frame),
        cost=with_errors(cost, runs, by_run),
        studies=[
            study
            for study in load_studies(store)
            if filters.presets is None  # a suite's presets are no study's trials
            and (filters.datasets is None or study["dataset"] in filters.datasets)
        ],
    )


def run_href(run_id: int) -> str:
    return f"runs/{run_id}.html"


def boards(frame: pd.DataFrame) -> list[Board]:
    """compare's tables (`comparison_tables`), one board per architecture: the family and
    method columns and that architecture's five, each cell compare's text, with its number
    to sort by and its runs to link to, from the frame those tables are made from."""
    if frame.empty:
        return []
    tables = comparison_tables(frame)
    blocks = list(frame.groupby(["dataset", "protocol"], sort=False))
    if len(tables) != len(blocks):  # comparison_tables walks the same groups, in this order
        raise AssertionError("compare's tables and the frame's groups disagree")
    out = []
    for (title, header, rows), ((dataset, protocol), block) in zip(tables, blocks, strict=True):
        caption, *notes = title.split("\n")
        labels = list(dict.fromkeys(block["label"]))
        archs = list(dict.fromkeys(block["architecture"]))
        families, last = [], ""
        for row in rows:  # compare names a family on its first row only; a sorted row needs it
            last = row[0] or last
            families.append(last)
        for index, arch in enumerate(archs):
            columns = [2 + 5 * index + k for k in range(5)]
            board_rows = []
            for row, label, family in zip(rows, labels, families, strict=True):
                match = block[(block["label"] == label) & (block["architecture"] == arch)]
                if match.empty:
                    continue
                board_rows.append(
                    [Cell(family), Cell(row[1])]
                    + _number_cells(match.iloc[0], [row[c] for c in columns])
                )
            out.append(
                Board(
                    anchor=f"b{len(out) + 1}",
                    dataset=str(dataset),
                    protocol=str(protocol),
                    architecture=str(arch),
                    caption=caption,
                    notes=notes,
                    header=[header[0], header[1], *(header[c] for c in columns)],
                    rows=board_rows,
                )
            )
    return out


def _number_cells(record: pd.Series, texts: list[str]) -> list[Cell]:
    run_ids = [int(i) for i in str(record["run_ids"]).split(",") if i]
    first = run_href(run_ids[0]) if run_ids else None
    many = f"mean of runs {', '.join(map(str, run_ids))}" if len(run_ids) > 1 else None
    cells = []
    for column, text in zip(ARCH_COLUMNS, texts, strict=True):
        value = finite(record[SORT_KEYS[column]])
        cell = Cell(text, sort=value)
        if column == "reference":
            cell.title = "the published number" + (
                f" ({record['reference']})" if isinstance(record.get("reference"), str) else ""
            )
        else:
            cell.href, cell.title = first, many or (f"run {run_ids[0]}" if run_ids else None)
        if column in ("delta", "vs_bp") and value is not None and round(value, 2) != 0:
            cell.sign = 1 if value > 0 else -1  # as shown: +0.00 is neither
        cells.append(cell)
    cells.append(Cell(", ".join(map(str, run_ids)), sort=float(run_ids[0]) if run_ids else None))
    return cells


def cost_key(run: RunRecord) -> tuple:
    """The group `cost_frame` puts a run in (dataset, network, device, batch, precision,
    rule)."""
    precision = (run.spec.get("settings") or {}).get("precision", "fp32")
    return (run.dataset, run.architecture, run.device, run.batch_size, precision, run.algorithm)


def with_errors(
    cost: pd.DataFrame, runs: list[RunRecord], epochs: dict[int, list[dict[str, Any]]]
) -> pd.DataFrame:
    """The cost frame with FLOPs as a ratio to BP's, and each group's error: the mean over its
    runs of the best test top-1 error (compare's best-test selection), and its runs."""
    if cost.empty:
        return cost
    members: dict[tuple, list[RunRecord]] = defaultdict(list)
    for run in runs:
        if run.status is RunStatus.finished and run.study is None and epochs.get(run.id):
            members[cost_key(run)].append(run)
    group = ["dataset", "architecture", "device", "batch_size", "precision"]
    errors, run_ids = [], []
    for _, row in cost.iterrows():
        found = members.get((*(row[g] for g in group), row["algorithm"]), [])
        values = [selected_errors(epochs[r.id], "best-test")["test_top1"] for r in found]
        values = [v for v in values if math.isfinite(v)]
        errors.append(statistics.fmean(values) if values else math.nan)
        run_ids.append([r.id for r in found])
    cost = cost.copy()
    cost["test_top1"] = errors
    cost["run_ids"] = run_ids
    bp = cost[cost["algorithm"] == "bp"].set_index(group)["flops_per_step"]
    cost["flops_vs_bp"] = [
        row["flops_per_step"] / bp.get(tuple(row[g] for g in group), math.nan)
        for _, row in cost.iterrows()
    ]
    return cost


def load_studies(store: Store) -> list[dict[str, Any]]:
    """Each study biobench made in this database: its summary row (`biobench studies`), its
    trials best first (`biobench study NAME`), and its best trial's preset."""
    from biobench.search.study import study_names

    if not study_names(store):
        return []
    from biobench.errors import BiobenchError
    from biobench.search.report import best_preset, study_rows, trial_rows
    from biobench.search.study import load as load_study

    out = []
    for summary in study_rows(store):
        study, spec = load_study(summary["study"], store)
        trials = trial_rows(study, spec, store)
        try:
            row, run, preset = best_preset(summary["study"], store)
            best = {"trial": row["trial"], "run": run.id, "preset": preset}
        except BiobenchError:
            best = None
        out.append(
            {
                **summary,
                "spec": spec,
                "searched": spec.searched(),
                "trials": trials,
                "best_trial": best,
            }
        )
    return out


def reproduce(run: RunRecord) -> str:
    """The command that runs this spec again (the same spec hash): its preset or cell, its
    length, batch and seed, and every hyperparameter and setting as --set."""
    spec = run.spec
    if spec.get("preset"):
        args = ["--preset", spec["preset"]]
    else:
        args = ["--algo", run.algorithm, "--arch", run.architecture, "--data", run.dataset]
    args += ["--epochs", str(spec["epochs"]), "--batch-size", str(spec["batch_size"])]
    args += ["--seed", str(spec["seed"])]
    for key in ("hparams", "data_settings", "settings", "options"):
        for name, value in (spec.get(key) or {}).items():
            args += ["--set", f"{name}={_value(value)}"]
    return shlex.join(["biobench", "run", *args])


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value) if isinstance(value, float) else str(value)


def run_summary(run: RunRecord, epochs: list[dict[str, Any]]) -> dict[str, Any]:
    """A run as its page and the runs list show it."""
    last = epochs[-1]["epoch"] if epochs else None
    precision = (run.spec.get("settings") or {}).get("precision", "fp32")
    return {
        "duration": format_duration(duration(run)),
        "latest_epoch": last,
        "precision": precision,
    }


def blown_up(epochs: list[dict[str, Any]]) -> list[int]:
    """The epochs whose errors hold NaN or inf (where a run diverged): gaps in its curves."""
    return [
        row["epoch"]
        for row in epochs
        if any(isinstance(row.get(c), float) and not math.isfinite(row[c]) for c in CURVES)
    ]


def rounded(value: Any) -> float | None:
    """A chart's point: `finite`, to 4 decimals (a hover shows 2; a page stays small)."""
    number = finite(value)
    return None if number is None else round(number, 4)


def curves(epochs: list[dict[str, Any]]) -> dict[str, Any]:
    """A run's per-epoch errors as the run page's chart draws them (null where unmeasured or
    not finite: a diverged epoch is a gap)."""
    data = {"epoch": [row["epoch"] for row in epochs]}
    for column in CURVES:
        values = [rounded(row.get(column)) for row in epochs]
        if any(v is not None for v in values):
            data[column] = values
    return data


# The run page's table of epochs: each column and its decimals.
EPOCH_TABLE = (
    ("train_top1", 2),
    ("train_top5", 2),
    ("train_loss", 4),
    ("test_top1", 2),
    ("test_top5", 2),
    ("test_loss", 4),
    ("val_top1", 2),
    ("val_top5", 2),
    ("wall_time", 1),
    ("step_ms", 2),
)


def epoch_table(epochs: list[dict[str, Any]]) -> list[list[str]]:
    """The run page's table of epochs, as text (a page holds hundreds of these rows)."""
    return [
        [str(row["epoch"]), *(shown(row.get(key), digits) for key, digits in EPOCH_TABLE)]
        for row in epochs
    ]


def alignment(layers: list[dict[str, Any]]) -> dict[str, Any]:
    """Per alignment metric, one line per layer over the epochs (the run page's charts)."""
    epochs = sorted({row["epoch"] for row in layers})
    names = {row["layer"]: row["name"] for row in layers}
    at = {(row["epoch"], row["layer"]): row for row in layers}
    out: dict[str, Any] = {"epoch": epochs, "metrics": {}}
    for column in LAYER_COLUMNS:
        lines = {}
        for layer in sorted(names):
            values = [rounded(at.get((e, layer), {}).get(column)) for e in epochs]
            if any(v is not None for v in values):
                lines[f"L{layer} {names[layer]}"] = values
        if lines:
            out["metrics"][column] = lines
    return out


def phase_costs(epochs: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """The median over the run's epochs of each phase's time and the peak memory."""
    out = []
    for column in COST_PHASES:
        values = [v for row in epochs if (v := finite(row.get(column))) is not None]
        if values:
            out.append((column, f"{statistics.median(values):.2f}"))
    return out

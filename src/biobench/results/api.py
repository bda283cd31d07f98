"""Results as pandas DataFrames, for notebooks and scripts:

    from biobench.results import runs, epochs

    table = runs(dataset="digits", status="finished")  # one row per run
    curves = epochs(run_ids=table["id"])  # one row per (run, epoch)

Both read the database named by `db` (a SQLAlchemy URL; default: BIOBENCH_DB, else the SQLite
file in BIOBENCH_HOME), as every `biobench` command does. No torch here.
"""

from __future__ import annotations

import numbers
from collections.abc import Iterable
from typing import Any

import pandas as pd

from biobench.errors import BiobenchError
from biobench.results.render import duration
from biobench.store import RunRecord, Store
from biobench.store.models import METRIC_COLUMNS

# What `runs(**filters)` takes: a run column to match, or how many runs.
FILTERS = ("algorithm", "architecture", "dataset", "preset", "seed", "status", "limit")
# The columns of `runs()`, before one column per hyperparameter (hp.<name>) and data setting
# (data.<name>).
RUN_COLUMNS = (
    "id",
    "preset",
    "algorithm",
    "architecture",
    "dataset",
    "seed",
    "status",
    "epochs",  # as configured
    "epochs_done",
    "batch_size",
    "best_train_top1",
    "best_test_top1",
    "best_test_top5",
    "created_at",
    "started_at",
    "finished_at",
    "duration_s",
    "device",
    "host",
    "spec_hash",
    "error",
)
EPOCH_COLUMNS = ("run_id", "epoch", *METRIC_COLUMNS, "recorded_at")


def _row(run: RunRecord) -> dict[str, Any]:
    computed = {"status": run.status.value, "duration_s": duration(run)}
    row = {key: computed[key] if key in computed else getattr(run, key) for key in RUN_COLUMNS}
    row.update({f"hp.{name}": value for name, value in run.hparams.items()})
    settings = run.spec.get("data_settings") or {}
    row.update({f"data.{name}": value for name, value in settings.items()})
    return row


def runs(db: str | None = None, **filters: Any) -> pd.DataFrame:
    """One row per run, oldest first: its spec, status, configured `epochs` and `epochs_done`,
    best errors (%), timings (`duration_s`: start to finish, or to now while it runs), and one
    column per hyperparameter (`hp.lr`) and data setting (`data.augment`), empty where a run's
    rule or dataset lacks it.

    `filters`: algorithm, architecture, dataset (by name or alias), preset, seed, status
    (running, finished, failed, interrupted, diverged or lost) and limit (the newest N)."""
    unknown = sorted(set(filters) - set(FILTERS))
    if unknown:
        raise BiobenchError(f"runs() has no filter {unknown[0]!r}; use {', '.join(FILTERS)}")
    limit, status = filters.pop("limit", None), filters.pop("status", None)
    if {"algorithm", "architecture", "dataset"} & set(filters):
        from biobench.registry import ALGORITHMS, ARCHITECTURES, DATASETS, load_all

        load_all()  # filter by the canonical name, whichever alias was given
        registries = {"algorithm": ALGORITHMS, "architecture": ARCHITECTURES, "dataset": DATASETS}
        for key, registry in registries.items():
            if key in filters:
                filters[key] = registry.canonical(filters[key])
    records = Store(db).runs(limit=limit, status=status, **filters)
    rows = [_row(run) for run in sorted(records, key=lambda run: run.id)]
    return pd.DataFrame(rows) if rows else pd.DataFrame(columns=list(RUN_COLUMNS))


def epochs(db: str | None = None, run_ids: int | Iterable[int] | None = None) -> pd.DataFrame:
    """One row per (run, epoch), ordered by run and epoch: the run id, the epoch number, its
    train/test top-1/top-5 errors (%), losses (nats), wall time (s), images/s and when it was
    recorded. `run_ids`: one id or several (e.g. `runs(...)["id"]`); None: every run."""
    if run_ids is None:
        ids = None
    elif isinstance(run_ids, numbers.Integral):  # numpy's integers too
        ids = [int(run_ids)]
    else:
        ids = [int(i) for i in run_ids]
    rows = Store(db).epochs(ids)
    return pd.DataFrame(rows, columns=list(EPOCH_COLUMNS))

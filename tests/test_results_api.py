"""The Python API for results (`biobench.results.runs` / `epochs`) and what the exports hold."""

from __future__ import annotations

import csv
import io
import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from biobench.cli import app
from biobench.errors import BiobenchError
from biobench.results import epochs, runs
from biobench.results.api import EPOCH_COLUMNS, RUN_COLUMNS
from biobench.spec import resolve
from biobench.store import Store

runner = CliRunner()


def add_run(store: Store, errors: list[float], status: str = "finished", **spec_kw) -> int:
    """A run of `spec_kw` whose epochs have these test top-1 errors (no training)."""
    spec = resolve(**{"architecture": "fc", "dataset": "synthetic", "epochs": 3, **spec_kw})
    run_id = store.create_run(**spec.run_fields(), device="cpu", environment={})
    for epoch, error in enumerate(errors, 1):
        store.write_epoch(run_id, epoch, {"train_top1": error / 2, "test_top1": error})
    store.set_status(run_id, status)
    return run_id


@pytest.fixture
def store(db_url: str) -> Store:
    store = Store(db_url)
    add_run(store, [9.0, 7.0, 8.0], algorithm="bp")
    add_run(store, [12.0], status="interrupted", algorithm="dtp", seed=1)
    add_run(store, [50.0, 40.0], algorithm="bp", dataset="cifar10", overrides=["augment=true"])
    return store


def url(store: Store) -> str:
    return store.url.render_as_string(hide_password=False)


def test_runs_gives_one_row_per_run_with_each_setting_a_column(store: Store) -> None:
    frame = runs(url(store))
    assert list(frame["id"]) == [1, 2, 3]  # oldest first
    assert list(frame.columns[: len(RUN_COLUMNS)]) == list(RUN_COLUMNS)
    assert list(frame["status"]) == ["finished", "interrupted", "finished"]
    assert list(frame["epochs"]) == [3, 3, 3] and list(frame["epochs_done"]) == [3, 1, 2]
    assert list(frame["best_test_top1"]) == [7.0, 12.0, 40.0]
    assert list(frame["best_train_top1"]) == [3.5, 6.0, 20.0]
    assert (frame["duration_s"] >= 0).all()
    assert frame["hp.lr"].notna().all()  # every rule has a learning rate
    assert frame.loc[1, "hp.mode"] == "alternating" and pd.isna(frame.loc[0, "hp.mode"])
    assert frame.loc[2, "data.augment"] == True  # noqa: E712 (numpy's bool, or Python's)
    assert pd.isna(frame.loc[0, "data.augment"])


def test_runs_filters_like_the_runs_command(store: Store) -> None:
    db = url(store)
    assert list(runs(db, algorithm="bp")["id"]) == [1, 3]
    assert list(runs(db, architecture="fully-connected", dataset="synthetic")["id"]) == [1, 2]
    assert list(runs(db, status="interrupted")["id"]) == [2]
    assert list(runs(db, seed=1)["id"]) == [2]
    assert list(runs(db, limit=2)["id"]) == [2, 3]  # the newest two
    empty = runs(db, algorithm="fa")
    assert empty.empty and list(empty.columns) == list(RUN_COLUMNS)
    with pytest.raises(BiobenchError, match="runs\\(\\) has no filter 'algo'; use algorithm"):
        runs(db, algo="bp")


def test_epochs_gives_one_row_per_run_and_epoch(store: Store) -> None:
    db = url(store)
    every = epochs(db)
    assert list(every.columns) == list(EPOCH_COLUMNS)
    assert list(zip(every["run_id"], every["epoch"], strict=True)) == [
        (1, 1),
        (1, 2),
        (1, 3),
        (2, 1),
        (3, 1),
        (3, 2),
    ]
    assert list(epochs(db, run_ids=3)["test_top1"]) == [50.0, 40.0]
    finished = runs(db, status="finished")
    assert set(epochs(db, run_ids=finished["id"])["run_id"]) == {1, 3}  # a Series of ids
    assert set(epochs(db, run_ids=finished["id"].iloc[-1])["run_id"]) == {3}  # a numpy int
    assert epochs(db, run_ids=[]).empty and list(epochs(db, run_ids=[]).columns) == list(
        EPOCH_COLUMNS
    )


def test_without_db_the_api_reads_the_default_database() -> None:
    add_run(Store(), [5.0], algorithm="bp")  # BIOBENCH_HOME's results.db, as conftest sets it
    assert list(runs()["best_test_top1"]) == [5.0]
    assert list(epochs()["test_top1"]) == [5.0]


def test_exports_carry_data_settings_and_epochs_means_one_thing(store: Store) -> None:
    db = url(store)
    exported = json.loads(runner.invoke(app, ["export", "--format", "json", "--db", db]).stdout)
    cifar = exported["runs"][2]
    assert (
        cifar["data_settings"] == {"augment": True} and exported["runs"][0]["data_settings"] == {}
    )
    assert cifar["epochs"] == 3  # configured, as in the CSV
    assert [row["epoch"] for row in cifar["epoch_rows"]] == [1, 2]
    table = list(csv.DictReader(io.StringIO(runner.invoke(app, ["export", "--db", db]).stdout)))
    cifar_rows = [row for row in table if row["run_id"] == "3"]
    assert [row["epoch"] for row in cifar_rows] == ["1", "2"]
    assert {row["epochs"] for row in cifar_rows} == {"3"}
    assert json.loads(cifar_rows[0]["data_settings"]) == {"augment": True}

"""The Python API for results (`biobench.results.runs` / `epochs`) and what the exports hold."""

from __future__ import annotations

import csv
import io
import json
import math
from datetime import datetime, timedelta, timezone

import pandas as pd
import pytest
from typer.testing import CliRunner

from biobench.cli import app
from biobench.errors import BiobenchError, SpecError
from biobench.results import epochs, render, runs
from biobench.results.api import EPOCH_COLUMNS, RUN_COLUMNS
from biobench.store import Store
from biobench.store import store as store_module
from support.store import add_run, url

runner = CliRunner()


@pytest.fixture
def store(db_url: str) -> Store:
    store = Store(db_url)
    add_run(store, [9.0, 7.0, 8.0], algorithm="bp")
    add_run(store, [12.0], status="interrupted", algorithm="dtp", seed=1)
    add_run(store, [50.0, 40.0], algorithm="bp", dataset="cifar10", overrides=["augment=true"])
    return store


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


def test_runs_filters_by_preset(sqlite_store: Store) -> None:
    add_run(sqlite_store, [5.0], algorithm="bp")
    add_run(sqlite_store, [5.0], preset="mnist-fc-bp")
    frame = runs(sqlite_store.url.render_as_string(hide_password=False), preset="mnist-fc-bp")
    assert list(frame["id"]) == [2] and list(frame["preset"]) == ["mnist-fc-bp"]


def test_exports_list_a_run_without_epochs_once_and_spell_nan_as_null(sqlite_store: Store) -> None:
    first = add_run(sqlite_store, [10.0, 8.0])
    sqlite_store.write_epoch(first, 2, {"test_top1": 8.0, "test_loss": math.nan})
    empty = add_run(sqlite_store, [], status="interrupted")
    runs_, epochs_ = [sqlite_store.run(empty), sqlite_store.run(first)], sqlite_store.epochs()
    assert [run.epochs_done for run in runs_] == [0, 2]  # as `runs` and `show` print them
    table = list(csv.DictReader(io.StringIO(render.export_csv(runs_, epochs_))))
    assert [(row["run_id"], row["epoch"], row["test_top1"]) for row in table] == [
        (str(first), "1", "10.0"),
        (str(first), "2", "8.0"),
        (str(empty), "", ""),
    ]
    exported = json.loads(render.export_json(runs_, epochs_))["runs"]
    assert [run["id"] for run in exported] == [first, empty]
    assert [row["test_loss"] for row in exported[0]["epoch_rows"]] == [None, None]
    assert [row["test_top1"] for row in exported[0]["epoch_rows"]] == [10.0, 8.0]
    assert exported[1]["epoch_rows"] == [] and exported[1]["status"] == "interrupted"


@pytest.fixture
def alias_store(db_url: str) -> Store:
    alias_store = Store(db_url)
    add_run(alias_store, [9.0], algorithm="bp")
    add_run(alias_store, [12.0], algorithm="fa", architecture="conv")
    add_run(alias_store, [8.0], algorithm="bp", dataset="digits")
    return alias_store


def test_a_filter_takes_a_rules_or_networks_alias_as_its_name(alias_store: Store) -> None:
    db = url(alias_store)
    assert list(runs(db, algorithm="backprop")["id"]) == [1, 3]
    assert list(runs(db, algorithm="feedback-alignment", architecture="convolutional")["id"]) == [
        2
    ]
    assert list(runs(db, dataset="digits", algorithm="backprop")["id"]) == [3]


@pytest.mark.parametrize(
    ("column", "name"), [("algorithm", "bq"), ("architecture", "fcc"), ("dataset", "mnsit")]
)
def test_a_misspelt_rule_network_or_dataset_filter_is_refused_naming_the_choices(
    alias_store: Store, column: str, name: str
) -> None:
    with pytest.raises(SpecError, match=f"^unknown {column} '{name}'; choose one of: "):
        runs(url(alias_store), **{column: name})


def test_duration_is_start_to_finish_in_seconds(alias_store: Store) -> None:
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    table = store_module.Run.__table__
    alias_store._run(
        lambda c: c.execute(
            table.update().values(started_at=start, finished_at=start + timedelta(seconds=90))
        )
    )
    assert list(runs(url(alias_store))["duration_s"]) == [90.0, 90.0, 90.0]


def test_each_epoch_row_says_when_it_was_recorded(alias_store: Store) -> None:
    every = epochs(url(alias_store))
    assert list(every.columns[-1:]) == ["recorded_at"]
    assert every["recorded_at"].notna().all() and len(every) == 3


def test_an_unknown_filter_is_refused_listing_every_filter(alias_store: Store) -> None:
    with pytest.raises(BiobenchError) as caught:
        runs(url(alias_store), algo="bp")
    assert str(caught.value) == (
        "runs() has no filter 'algo'; use algorithm, architecture, dataset, preset, seed, status, "
        "limit"
    )


def test_the_status_column_holds_plain_text(alias_store: Store) -> None:
    assert {type(status) for status in runs(url(alias_store))["status"]} == {str}

"""Tests for the gaps a mutation run (tools/mutation.sh) showed in store/rows.py: which epoch and
layer rows a rewrite keeps, which layer rows are refused, the order they read back in.
"""

from __future__ import annotations

import pytest

from biobench.errors import StoreError
from biobench.store import Store
from biobench.store.models import LAYER_COLUMNS, METRIC_COLUMNS
from biobench.store.rows import check_row
from support.store import new_run


def layer(number: int, angle: float, **extra: object) -> dict:
    return {"layer": number, "name": f"fc{number}", "update_angle": angle, **extra}


def read_layers(store: Store, run_ids: list[int] | None = None) -> list[tuple]:
    return [
        (row["run_id"], row["epoch"], row["layer"], row["update_angle"])
        for row in store.layer_metrics(run_ids)
    ]


def test_rewriting_an_epoch_replaces_its_layer_rows_and_leaves_the_others(db_url: str) -> None:
    store = Store(db_url)
    first, second = new_run(store), new_run(store)
    for run_id in (first, second):
        for epoch in (1, 2):
            store.write_epoch(
                run_id, epoch, {"test_top1": 5.0, "layers": [layer(1, 10.0), layer(2, 20.0)]}
            )
    store.write_epoch(first, 1, {"test_top1": 4.0, "layers": [layer(1, 11.0)]})
    assert read_layers(store, [first]) == [
        (first, 1, 1, 11.0),
        (first, 2, 1, 10.0),
        (first, 2, 2, 20.0),
    ]
    assert read_layers(store, [second]) == [
        (second, e, n, a) for e in (1, 2) for n, a in ((1, 10.0), (2, 20.0))
    ]
    store.write_epoch(first, 2, {"test_top1": 4.0})  # no layers now: the epoch's rows go
    assert read_layers(store, [first]) == [(first, 1, 1, 11.0)]


def test_layer_rows_read_back_by_run_epoch_and_layer_whatever_the_write_order(
    db_url: str,
) -> None:
    store = Store(db_url)
    first, second = new_run(store), new_run(store)
    store.write_epoch(second, 2, {"layers": [layer(2, 4.0), layer(1, 3.0)]})
    store.write_epoch(second, 1, {"layers": [layer(1, 2.0), layer(2, 2.5)]})
    store.write_epoch(first, 2, {"layers": [layer(1, 1.5)]})
    store.write_epoch(first, 1, {"layers": [layer(1, 1.0)]})
    assert read_layers(store) == [
        (first, 1, 1, 1.0),
        (first, 2, 1, 1.5),
        (second, 1, 1, 2.0),
        (second, 1, 2, 2.5),
        (second, 2, 1, 3.0),
        (second, 2, 2, 4.0),
    ]
    assert read_layers(store, []) == []


def test_layer_rows_store_their_names_and_leave_unmeasured_columns_null(db_url: str) -> None:
    store = Store(db_url)
    run_id = new_run(store)
    store.write_epoch(
        run_id,
        1,
        {
            "layers": [
                {"layer": 1, "name": "conv1"},
                {"layer": 2, "name": "fc", "weight_angle": 3.0},
            ]
        },
    )
    first, second = store.layer_metrics([run_id])
    assert (first["name"], second["name"]) == ("conv1", "fc")
    assert {column: first[column] for column in LAYER_COLUMNS} == dict.fromkeys(LAYER_COLUMNS)
    assert {column: second[column] for column in LAYER_COLUMNS} == {
        **dict.fromkeys(LAYER_COLUMNS),
        "weight_angle": 3.0,
    }


def test_every_metric_column_is_written_and_layers_is_not_one(db_url: str) -> None:
    store = Store(db_url)
    run_id = new_run(store)
    values = {column: float(i) for i, column in enumerate(METRIC_COLUMNS)}
    store.write_epoch(run_id, 1, {**values, "layers": [layer(1, 1.0)]})
    (row,) = store.epochs([run_id])
    assert {column: row[column] for column in METRIC_COLUMNS} == values


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"test_top1": 1.0, "test_top9": 2.0}, r"^unknown metric columns: \['test_top9'\]$"),
        (
            {"layers": [layer(1, 1.0, angel=2.0)]},
            "^a layer row has the keys layer, name, update_angle",
        ),
        ({"layers": [{"layer": 1, "update_angle": 2.0}]}, "^a layer row has the keys .*; got "),
        ({"layers": [{"name": "fc1"}]}, "a layer row has the keys"),
    ],
)
def test_a_row_the_schema_cannot_hold_is_refused_and_nothing_written(
    sqlite_url: str, row: dict, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        check_row(row)
    store = Store(sqlite_url)
    run_id = new_run(store)
    with pytest.raises((ValueError, StoreError)):
        store.write_epoch(run_id, 1, row)
    assert store.epochs([run_id]) == [] and store.layer_metrics([run_id]) == []


def test_a_row_without_layers_or_with_none_has_none(sqlite_url: str) -> None:
    assert check_row({"test_top1": 1.0}) == []
    assert check_row({"test_top1": 1.0, "layers": None}) == []
    assert check_row({"layers": [layer(1, 1.0)]}) == [layer(1, 1.0)]

"""Tests for the gaps a mutation run (tools/mutation.sh) showed in results/api.py: each fails on a
plausible one-line bug there, asserting what a notebook user relies on: a rule, network or
dataset filter takes any of its names and refuses a misspelt one, a run's duration column, and
when each epoch was recorded.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from biobench.errors import BiobenchError, SpecError
from biobench.results import epochs, runs
from biobench.store import Store
from biobench.store import store as store_module
from test_results_api import add_run, url


@pytest.fixture
def store(db_url: str) -> Store:
    store = Store(db_url)
    add_run(store, [9.0], algorithm="bp")
    add_run(store, [12.0], algorithm="fa", architecture="conv")
    add_run(store, [8.0], algorithm="bp", dataset="digits")
    return store


def test_a_filter_takes_a_rules_or_networks_alias_as_its_name(store: Store) -> None:
    db = url(store)
    assert list(runs(db, algorithm="backprop")["id"]) == [1, 3]
    assert list(runs(db, algorithm="feedback-alignment", architecture="convolutional")["id"]) == [
        2
    ]
    assert list(runs(db, dataset="digits", algorithm="backprop")["id"]) == [3]


@pytest.mark.parametrize(
    ("column", "name"), [("algorithm", "bq"), ("architecture", "fcc"), ("dataset", "mnsit")]
)
def test_a_misspelt_rule_network_or_dataset_filter_is_refused_naming_the_choices(
    store: Store, column: str, name: str
) -> None:
    with pytest.raises(SpecError, match=f"^unknown {column} '{name}'; choose one of: "):
        runs(url(store), **{column: name})


def test_duration_is_start_to_finish_in_seconds(store: Store) -> None:
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    table = store_module.Run.__table__
    store._run(
        lambda c: c.execute(
            table.update().values(started_at=start, finished_at=start + timedelta(seconds=90))
        )
    )
    assert list(runs(url(store))["duration_s"]) == [90.0, 90.0, 90.0]


def test_each_epoch_row_says_when_it_was_recorded(store: Store) -> None:
    every = epochs(url(store))
    assert list(every.columns[-1:]) == ["recorded_at"]
    assert every["recorded_at"].notna().all() and len(every) == 3


def test_an_unknown_filter_is_refused_listing_every_filter(store: Store) -> None:
    with pytest.raises(BiobenchError) as caught:
        runs(url(store), algo="bp")
    assert str(caught.value) == (
        "runs() has no filter 'algo'; use algorithm, architecture, dataset, preset, seed, status, "
        "limit"
    )


def test_the_status_column_holds_plain_text(store: Store) -> None:
    assert {type(status) for status in runs(url(store))["status"]} == {str}

"""Tests for the gaps a mutation run (tools/mutation.sh) showed in store/records.py: each fails on
a plausible one-line bug there, asserting what code reading runs relies on: a run as read back
cannot be changed in place, and its dict holds exactly its fields, the status as plain text.
"""

from __future__ import annotations

import dataclasses

import pytest

from biobench.store import RunRecord, Store
from support.store import new_run


def test_a_run_as_read_back_cannot_be_changed_in_place(db_url: str) -> None:
    store = Store(db_url)
    run = store.run(new_run(store))
    with pytest.raises(dataclasses.FrozenInstanceError):
        run.status = "finished"  # type: ignore[misc]
    store.dispose()


def test_a_runs_dict_holds_its_fields_with_the_status_as_plain_text(db_url: str) -> None:
    store = Store(db_url)
    run = store.run(new_run(store))
    values = run.as_dict()
    assert list(values) == [field.name for field in dataclasses.fields(RunRecord)]
    assert values["status"] == "running" and type(values["status"]) is str
    assert values["epochs_done"] == 0 and values["id"] == run.id
    store.dispose()

"""Tests for the gaps a mutation run (tools/mutation.sh) showed in store/versions.py: each fails on
a plausible one-line bug there, asserting what a user relies on: `biobench db upgrade` carries a
database made before revision 0006 (its revision in `alembic_version`, perhaps beside Optuna's)
to head with its runs, and leaves Optuna's row where Optuna keeps it.
"""

from __future__ import annotations

import pytest
from alembic import command
from sqlalchemy import inspect, text

from biobench.store import Store
from support.store import new_run


def as_before_0006(url: str, *others: str) -> None:
    """Take a current database back to revision 0005, as biobench 0005 left it: its revision in
    alembic_version (beside `others`, another tool's rows), no biobench_version table."""
    store = Store(url)
    new_run(store)
    with store._transaction(write=True) as connection:
        command.downgrade(store.alembic_config(connection), "0005")
        connection.execute(text("DROP TABLE biobench_version"))
        for other in others:
            connection.execute(text("INSERT INTO alembic_version VALUES (:v)"), {"v": other})
    store.dispose()


@pytest.mark.parametrize("optuna", [False, True])
def test_upgrade_carries_a_database_from_before_0006_to_head_with_its_runs(
    db_url: str, optuna: bool
) -> None:
    as_before_0006(db_url, *(["v3.2.0.a"] if optuna else []))
    old = Store(db_url, check=False)
    assert old.current_revision() == "0005"
    assert old.upgrade() == ("0005", old.head_revision())
    old.dispose()
    store = Store(db_url)  # at head: opens without a word
    assert [run.id for run in store.runs()] == [1]
    assert store.current_revision() == store.head_revision()
    with store._transaction(write=False) as connection:
        if optuna:  # Optuna's row stays, biobench's is gone from alembic_version
            rows = connection.execute(text("SELECT version_num FROM alembic_version")).scalars()
            assert list(rows) == ["v3.2.0.a"]
        else:
            assert not inspect(connection).has_table("alembic_version")
    store.dispose()


def test_a_database_with_only_optunas_revision_holds_no_biobench_schema(db_url: str) -> None:
    store = Store(db_url, check=False)
    with store._transaction(write=True) as connection:
        connection.execute(text("CREATE TABLE alembic_version (version_num VARCHAR(32))"))
        connection.execute(text("INSERT INTO alembic_version VALUES ('v3.2.0.a')"))
    assert store.current_revision() is None
    assert Store(db_url).current_revision() == store.head_revision()  # created at head

"""The results store's contract, on SQLite and on a real PostgreSQL server."""

from __future__ import annotations

import math
import multiprocessing
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, inspect, text

from biobench.errors import StoreError
from biobench.store import Store

RUNS_PER_WRITER = 5
EPOCHS_PER_RUN = 4


def new_run(store: Store, **overrides: Any) -> int:
    fields = dict(
        spec_hash="0" * 64,
        algorithm="bp",
        architecture="fc",
        dataset="digits",
        hparams={"lr": 1e-3},
        spec={"algorithm": "bp"},
        seed=0,
        epochs=3,
        batch_size=32,
        device="cpu",
        environment={"python": "3"},
    )
    return store.create_run(**{**fields, **overrides})


def metrics(value: float) -> dict[str, float]:
    return {
        "train_top1": value,
        "train_top5": value / 2,
        "train_loss": 0.5,
        "test_top1": value + 1,
        "test_top5": value / 3,
        "test_loss": 0.7,
        "wall_time": 1.5,
        "images_per_s": 1000.0,
    }


def test_a_new_database_is_created_at_head(db_url: str) -> None:
    store = Store(db_url)
    assert store.current_revision() == store.head_revision()
    assert store.runs() == []


def test_create_write_and_read_back(db_url: str) -> None:
    store = Store(db_url)
    run_id = new_run(store, hparams={"lr": 3e-4, "beta1": 0.9})
    store.write_epoch(run_id, 1, metrics(10.0))
    store.write_epoch(run_id, 2, metrics(5.0))
    run = store.run(run_id)
    assert run.status == "running"
    assert run.hparams == {"lr": 3e-4, "beta1": 0.9}
    assert run.epochs_done == 2
    assert run.best_test_top1 == 6.0
    rows = store.epochs([run_id])
    assert [row["epoch"] for row in rows] == [1, 2]
    assert {k: rows[0][k] for k in metrics(10.0)} == metrics(10.0)
    assert rows[0]["recorded_at"].tzinfo is not None


def test_writing_an_epoch_twice_keeps_one_row_with_the_new_values(db_url: str) -> None:
    store = Store(db_url)
    run_id = new_run(store)
    store.write_epoch(run_id, 1, metrics(10.0))
    store.write_epoch(run_id, 1, {"test_top1": 3.0})
    rows = store.epochs([run_id])
    assert len(rows) == 1
    assert rows[0]["test_top1"] == 3.0
    assert rows[0]["train_top1"] is None  # a rewritten epoch replaces the whole row


def test_nan_and_inf_are_stored_explicitly(db_url: str) -> None:
    store = Store(db_url)
    run_id = new_run(store)
    store.write_epoch(
        run_id, 1, {"train_loss": math.nan, "test_loss": math.inf, "test_top1": 90.0}
    )
    store.write_epoch(run_id, 2, {"train_loss": -math.inf, "test_top1": math.nan})
    first, second = store.epochs([run_id])
    assert math.isnan(first["train_loss"]) and first["test_loss"] == math.inf
    assert second["train_loss"] == -math.inf and math.isnan(second["test_top1"])
    assert second["test_top5"] is None  # not measured stays distinct from NaN
    assert store.run(run_id).best_test_top1 == 90.0  # NaN never counts as the best


@pytest.mark.parametrize("status", ["finished", "failed", "interrupted"])
def test_terminal_status_records_the_end(db_url: str, status: str) -> None:
    store = Store(db_url)
    run_id = new_run(store)
    store.set_status(run_id, status, error="boom" if status == "failed" else None)
    run = store.run(run_id)
    assert run.status == status
    assert run.finished_at is not None and run.finished_at >= run.started_at
    assert run.error == ("boom" if status == "failed" else None)


def test_an_epoch_of_an_unknown_run_is_refused(db_url: str) -> None:
    store = Store(db_url)
    with pytest.raises(StoreError):
        store.write_epoch(12345, 1, metrics(1.0))


def test_unknown_run_id_names_the_command_that_lists_runs(db_url: str) -> None:
    with pytest.raises(StoreError, match="no run with id 99.*biobench runs"):
        Store(db_url).run(99)


def _writer(url: str, worker: int) -> list[int]:
    store = Store(url)
    run_ids = [new_run(store, seed=worker) for _ in range(RUNS_PER_WRITER)]
    for epoch in range(1, EPOCHS_PER_RUN + 1):
        for run_id in run_ids:
            store.write_epoch(run_id, epoch, metrics(float(epoch)))
    for run_id in run_ids:
        store.set_status(run_id, "finished")
    store.dispose()
    return run_ids


def test_four_processes_writing_at_once_lose_no_row(db_url: str) -> None:
    # The database is new: the four processes also race to create its schema.
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        results = pool.starmap(_writer, [(db_url, worker) for worker in range(4)])
    store = Store(db_url)
    run_ids = sorted(run_id for ids in results for run_id in ids)
    assert len(set(run_ids)) == 4 * RUNS_PER_WRITER
    runs = store.runs()
    assert sorted(run.id for run in runs) == run_ids
    assert all(run.status == "finished" and run.epochs_done == EPOCHS_PER_RUN for run in runs)
    assert len(store.epochs()) == 4 * RUNS_PER_WRITER * EPOCHS_PER_RUN


def test_a_database_newer_than_the_code_is_refused(db_url: str) -> None:
    Store(db_url).dispose()
    engine = create_engine(Store(db_url).url)
    with engine.begin() as connection:
        connection.execute(text("UPDATE biobench_version SET version_num = '9999'"))
    engine.dispose()
    with pytest.raises(StoreError, match="newer than this biobench.*upgrade biobench"):
        Store(db_url)


def test_tables_biobench_did_not_create_are_left_alone(db_url: str) -> None:
    engine = create_engine(Store(db_url, check=False).url)
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE runs (x INTEGER)"))
    engine.dispose()
    with pytest.raises(StoreError, match="did not create"):
        Store(db_url)


def test_upgrade_creates_an_empty_database_and_is_idempotent(db_url: str) -> None:
    store = Store(db_url, check=False)
    assert store.current_revision() is None
    before, after = store.upgrade()
    assert before is None and after == store.head_revision()
    assert store.upgrade() == (after, after)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("postgresql://alice:hunter2@127.0.0.1:1/results", "cannot reach database"),
        ("postgresq://alice:hunter2@127.0.0.1/results", "unknown database scheme"),
        ("alice:hunter2@ no scheme", "cannot parse database URL"),
        ("sqlite://", "in-memory SQLite"),
    ],
)
def test_bad_urls_fail_with_one_line_and_a_masked_password(url: str, message: str) -> None:
    with pytest.raises(StoreError, match=message) as caught:
        Store(url)
    assert "hunter2" not in str(caught.value)
    assert "\n" not in str(caught.value)


def test_sqlite_uses_wal_and_foreign_keys(sqlite_url: str) -> None:
    store = Store(sqlite_url)
    with store._read_engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 10_000


@pytest.mark.parametrize(
    ("backend", "writers"),
    [("sqlite", 8), pytest.param("postgres", 32, marks=pytest.mark.postgres)],
)
def test_many_processes_streaming_epochs_lose_no_row(
    backend: str, writers: int, request: pytest.FixtureRequest
) -> None:
    url = request.getfixturevalue(f"{backend}_url")
    Store(url).dispose()  # the schema exists; here the writers only contend for rows
    with multiprocessing.get_context("spawn").Pool(writers) as pool:
        results = pool.starmap(_writer, [(url, worker) for worker in range(writers)])
    store = Store(url)
    assert len({run_id for ids in results for run_id in ids}) == writers * RUNS_PER_WRITER
    assert len(store.epochs()) == writers * RUNS_PER_WRITER * EPOCHS_PER_RUN
    assert all(run.status == "finished" for run in store.runs())


@pytest.fixture
def read_only_copy(tmp_path: Path) -> Iterator[str]:
    """A results database on a read-only mount (a tmpfs remounted ro), as on a shared volume."""
    mount = tmp_path / "ro"
    mount.mkdir()
    if subprocess.run(
        ["mount", "-t", "tmpfs", "tmpfs", str(mount)], capture_output=True
    ).returncode:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        url = f"sqlite:///{mount / 'results.db'}"
        store = Store(url)
        run_id = new_run(store)
        store.write_epoch(run_id, 1, metrics(4.0))
        store.set_status(run_id, "finished")
        store.dispose()
        subprocess.run(["mount", "-o", "remount,ro", str(mount)], check=True)
        yield url
    finally:
        subprocess.run(["umount", "--lazy", str(mount)], check=False)  # open handles: detach


def test_a_database_on_a_read_only_mount_can_be_read_not_written(read_only_copy: str) -> None:
    from typer.testing import CliRunner

    from biobench.cli import app

    runner = CliRunner()
    for command in (["runs"], ["show", "1"], ["export", "--format", "json"]):
        result = runner.invoke(app, [*command, "--db", read_only_copy])
        assert result.exit_code == 0, result.output
    assert (
        '"train_top1": 4.0'
        in runner.invoke(app, ["export", "--db", read_only_copy, "--format", "json"]).stdout
    )
    refused = runner.invoke(
        app, ["run", "--data", "synthetic", "--epochs", "1", "--db", read_only_copy]
    )
    assert refused.exit_code == 2
    assert "is read-only (read-only mount): biobench can read it but not write" in refused.stderr


def test_a_read_only_url_is_read_and_never_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from biobench.cli import app

    runner = CliRunner()
    url = f"sqlite:///{tmp_path / 'results.db'}"
    store = Store(url)
    run_id = new_run(store)
    store.write_epoch(run_id, 1, metrics(4.0))
    store.set_status(run_id, "interrupted")
    store.dispose()
    read_only = f"{url}?mode=ro"
    for command in (["runs"], ["show", "1"], ["export", "--format", "json"]):
        result = runner.invoke(app, [*command, "--db", read_only])
        assert result.exit_code == 0, result.output
        assert "warning" not in result.output.lower()  # SQLAlchemy's, about ?mode
    refusal = (
        f"error: database {read_only} is read-only (?mode=ro in its URL): biobench can read it "
        "but not write to it; drop ?mode=ro to write\n"
    )
    monkeypatch.chdir(tmp_path)
    for command in (
        ["run", "--data", "synthetic", "--epochs", "1", "--checkpoint-dir", "ckpt"],
        ["rm", "1", "--yes"],
    ):
        result = runner.invoke(app, [*command, "--db", read_only])
        assert (result.exit_code, result.stderr) == (2, refusal), result.output
    cell = ["--algo", "bp", "--arch", "fc", "--data", "synthetic", "--trials", "1"]
    search = runner.invoke(app, ["search", "--study", "s", *cell, "--db", read_only])
    assert search.exit_code == 2 and "attempt to write a readonly database" in search.stderr
    (run,) = Store(url).runs()
    assert (run.id, run.status, run.epochs_done) == (run_id, "interrupted", 1)
    engine = create_engine(url)
    assert "studies" not in inspect(engine).get_table_names()  # Optuna's: nothing created
    engine.dispose()
    assert not (tmp_path / "ckpt").exists() or not any((tmp_path / "ckpt").iterdir())


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("?timeout=abc", "a SQLite URL takes one parameter only, [?]mode=ro"),
        ("?mode=rw", "a SQLite URL takes one parameter only, [?]mode=ro"),
        ("?mode=ro&timeout=5", "a SQLite URL takes one parameter only, [?]mode=ro"),
        ("?check_same_thread=no", "a SQLite URL takes one parameter only, [?]mode=ro"),
        ("%00.db", "holds a NUL character; remove it"),
    ],
)
def test_a_sqlite_url_biobench_cannot_honour_is_one_line_and_creates_nothing(
    tmp_path: Path, query: str, message: str
) -> None:
    with pytest.raises(StoreError, match=message) as caught:
        Store(f"sqlite:///{tmp_path / 'new' / 'results.db'}{query}")
    assert "\n" not in str(caught.value)
    assert list(tmp_path.iterdir()) == []


def test_a_sqlite_uri_filename_leaves_no_stray_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(StoreError, match="a SQLite URL takes one parameter only, [?]mode=ro"):
        Store(f"sqlite:///file:{tmp_path / 'sub' / 'x.db'}?uri=true")
    assert list(tmp_path.iterdir()) == []  # not a folder named "file:..."


def test_a_read_only_url_of_a_missing_database_creates_nothing(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'new' / 'results.db'}?mode=ro"
    with pytest.raises(StoreError) as caught:
        Store(url)
    assert str(caught.value) == (
        f"database {url} does not exist; a read-only URL (?mode=ro) opens an existing "
        "database only"
    )
    assert list(tmp_path.iterdir()) == []


def test_a_folder_given_as_the_database_says_so(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="is a folder, not a database file"):
        Store(f"sqlite:///{tmp_path}")

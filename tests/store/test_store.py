"""The results store's contract, on SQLite and on a real PostgreSQL server."""

from __future__ import annotations

import math
import multiprocessing
import os
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, inspect, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import make_url

from biobench.errors import LeaseLost, StoreError
from biobench.results import runs
from biobench.store import RunStatus, Store
from biobench.store import store as store_module
from biobench.store.store import HOST, heartbeat_interval, lost_after
from support.store import ENDED, add_run, add_running, dead_pid, new_run

RUNS_PER_WRITER = 5
EPOCHS_PER_RUN = 4


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


def test_every_status_reads_back_and_filters_as_itself(sqlite_store: Store) -> None:
    ids = {status: add_run(sqlite_store, [5.0], status=status) for status in ENDED}
    ids["lost"] = add_running(sqlite_store, dead_pid())  # its process died without a word
    ids["running"] = add_running(sqlite_store, os.getpid())
    db = sqlite_store.url.render_as_string(hide_password=False)
    for status, run_id in ids.items():
        frame = runs(db, status=status)
        assert list(frame["id"]) == [run_id] and list(frame["status"]) == [status], status
        assert str(sqlite_store.run(run_id).status) == status
    # A run that ended has its end time (its duration stops); a running one has none yet.
    every = runs(db).set_index("status")
    assert every.loc[list(ENDED), "finished_at"].notna().all()
    assert every.loc[["running", "lost"], "finished_at"].isna().all()


def set_columns(sqlite_store: Store, **values: Any) -> None:
    """Set columns of every run directly, as no Store method would."""
    table = store_module.Run.__table__
    sqlite_store._run(lambda c: c.execute(table.update().values(**values)))


def ago(seconds: float) -> datetime:
    return datetime.now(timezone.utc) - timedelta(seconds=seconds)


@pytest.fixture
def live_pid() -> Iterator[int]:
    """A process that runs for the whole test, and dies of a SIGHUP (even under nohup)."""
    script = "import signal, time; signal.signal(signal.SIGHUP, signal.SIG_DFL); print(1, flush=1)"
    process = subprocess.Popen(
        [sys.executable, "-c", script + "; time.sleep(60)"], stdout=subprocess.PIPE
    )
    assert process.stdout is not None and process.stdout.readline()  # its handler is set
    yield process.pid
    process.kill()
    process.wait()


def test_lost_after_and_heartbeat_read_their_variables_and_default_to_5_and_1_minutes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("BIOBENCH_LOST_AFTER", raising=False)
    monkeypatch.delenv("BIOBENCH_HEARTBEAT", raising=False)
    assert (lost_after(), heartbeat_interval()) == (300, 60)
    monkeypatch.setenv("BIOBENCH_LOST_AFTER", "12")
    monkeypatch.setenv("BIOBENCH_HEARTBEAT", "3")
    assert (lost_after(), heartbeat_interval()) == (12, 3)


def test_a_run_reads_lost_once_its_heartbeat_is_older_than_five_minutes(
    sqlite_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("BIOBENCH_LOST_AFTER", raising=False)
    fresh = new_run(sqlite_store, heartbeat_at=ago(240))
    stale = new_run(
        sqlite_store, heartbeat_at=ago(300.3)
    )  # read at once: lost at 300 s, not 301 s
    assert sqlite_store.run(stale).status == RunStatus.lost
    assert sqlite_store.run(fresh).status == RunStatus.running


def test_a_run_reads_lost_after_the_seconds_biobench_lost_after_says(
    sqlite_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BIOBENCH_LOST_AFTER", "100")
    fresh = new_run(sqlite_store, heartbeat_at=ago(50))
    stale = new_run(sqlite_store, heartbeat_at=ago(150))
    assert [(r.id, r.status) for r in sqlite_store.runs()] == [
        (stale, RunStatus.lost),
        (fresh, RunStatus.running),
    ]


def test_only_a_running_run_can_read_as_lost(sqlite_store: Store) -> None:
    run_id = new_run(sqlite_store, heartbeat_at=ago(3600), host=HOST, pid=dead_pid())
    sqlite_store.set_status(run_id, "interrupted")
    set_columns(sqlite_store, heartbeat_at=ago(3600))  # set_status refreshed it: make it old again
    assert sqlite_store.run(run_id).status == RunStatus.interrupted


def test_a_run_whose_process_is_alive_here_stays_running_and_its_process_untouched(
    sqlite_store: Store, live_pid: int
) -> None:
    run_id = new_run(sqlite_store, host=HOST, pid=live_pid)
    for _ in range(2):  # checking the process must not signal it
        assert sqlite_store.run(run_id).status == RunStatus.running
    assert os.waitpid(live_pid, os.WNOHANG) == (0, 0)


def test_a_run_whose_process_is_gone_here_reads_lost_at_once(sqlite_store: Store) -> None:
    run_id = new_run(sqlite_store, host=HOST, pid=dead_pid())
    assert sqlite_store.run(run_id).status == RunStatus.lost


def test_a_dead_pid_on_another_machine_proves_nothing(sqlite_store: Store) -> None:
    run_id = new_run(sqlite_store, host=f"not-{HOST}", pid=dead_pid())
    assert sqlite_store.run(run_id).status == RunStatus.running


def test_a_pid_no_process_can_have_reads_lost(sqlite_store: Store) -> None:
    run_id = new_run(sqlite_store, host=HOST, pid=2**40)
    assert sqlite_store.run(run_id).status == RunStatus.lost


def test_someone_elses_process_counts_as_alive(
    sqlite_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_id = new_run(sqlite_store, host=HOST, pid=12345)

    def refuse(pid: int, signal: int) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(store_module.os, "kill", refuse)
    assert sqlite_store.run(run_id).status == RunStatus.running


def test_a_status_filter_with_a_limit_counts_only_runs_of_that_status(sqlite_store: Store) -> None:
    lost = [new_run(sqlite_store, heartbeat_at=ago(3600)) for _ in range(2)]
    running = [new_run(sqlite_store) for _ in range(2)]  # newer than the lost ones
    assert [r.id for r in sqlite_store.runs(status="lost", limit=1)] == [lost[1]]
    assert [r.id for r in sqlite_store.runs(status=RunStatus.lost)] == lost[::-1]
    assert [r.id for r in sqlite_store.runs(limit=3)] == [running[1], running[0], lost[1]]


def test_taking_the_lease_of_a_lost_run_makes_it_running_and_clears_its_end(
    sqlite_store: Store,
) -> None:
    run_id = new_run(sqlite_store, heartbeat_at=ago(3600), owner="old", pid=1, host="elsewhere")
    set_columns(sqlite_store, error="boom", finished_at=ago(3600))  # stale: a failure, then lost
    seen = sqlite_store.run(run_id)
    assert seen.status == RunStatus.lost
    assert sqlite_store.take_lease(seen, "new", os.getpid(), world_size=3)
    run = sqlite_store.run(run_id)
    assert (run.status, run.owner, run.pid, run.host, run.world_size) == (
        RunStatus.running,
        "new",
        os.getpid(),
        socket.gethostname(),  # this machine: a read here can tell whether its process died
        3,
    )
    assert (run.error, run.finished_at) == (None, None)
    assert run.heartbeat_at > ago(60)


def test_a_lease_read_before_the_status_changed_is_refused(sqlite_store: Store) -> None:
    run_id = new_run(sqlite_store)
    sqlite_store.set_status(run_id, "interrupted")
    seen = sqlite_store.run(run_id)
    sqlite_store.set_status(run_id, "failed", "boom")  # same owner (none), other status
    assert not sqlite_store.take_lease(seen, "me", 1)
    assert sqlite_store.run(run_id).status == RunStatus.failed


def test_the_lease_defaults_to_one_process(sqlite_store: Store) -> None:
    run_id = new_run(sqlite_store, world_size=4)
    sqlite_store.set_status(run_id, "interrupted")
    assert sqlite_store.take_lease(sqlite_store.run(run_id), "me", 1)
    assert sqlite_store.run(run_id).world_size == 1


def driver_error(message: str, kind: type = sa_exc.OperationalError) -> Exception:
    return kind("SELECT 1", {}, sqlite3.OperationalError(message))


@pytest.mark.parametrize(
    "message",
    [
        "database is locked",
        "database table is locked",
        "deadlock detected",
        "could not serialize access due to concurrent update",
    ],
)
def test_a_transient_lock_error_is_retried(
    sqlite_store: Store, monkeypatch: pytest.MonkeyPatch, message: str
) -> None:
    monkeypatch.setattr("biobench.retry.time.sleep", lambda seconds: None)
    calls = []

    def work(connection: Any) -> str:
        calls.append(1)
        if len(calls) < 3:
            raise driver_error(message.upper())
        return "done"

    assert sqlite_store._run(work) == "done" and len(calls) == 3


def test_a_lock_that_persists_gives_up_after_ten_tries_with_one_line(
    sqlite_store: Store, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("biobench.retry.time.sleep", lambda seconds: None)
    calls = []

    def work(connection: Any) -> None:
        calls.append(1)
        raise driver_error("database is locked\nsecond line")

    with pytest.raises(StoreError) as caught:
        sqlite_store._run(work, write=False)
    assert len(calls) == 10
    assert str(caught.value) == f"database {sqlite_url} failed: database is locked"


def test_any_other_driver_error_is_not_retried(
    sqlite_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("biobench.retry.time.sleep", lambda seconds: None)
    calls = []

    def work(connection: Any) -> None:
        calls.append(1)
        raise driver_error("no such table: runs")

    with pytest.raises(StoreError, match="failed: no such table: runs$"):
        sqlite_store._run(work)
    assert len(calls) == 1


@pytest.mark.parametrize(
    "message",
    [
        "could not connect to server",
        "unable to open database file",
        "timeout expired",
        "could not resolve host",
    ],
)
def test_an_unreachable_database_says_so(sqlite_store: Store, message: str) -> None:
    def work(connection: Any) -> None:
        raise driver_error(message.capitalize())

    with pytest.raises(StoreError, match=r"^cannot reach database .*: " + message.capitalize()):
        sqlite_store._run(work)


def test_only_an_operational_error_reads_as_unreachable(sqlite_store: Store) -> None:
    def work(connection: Any) -> None:
        raise driver_error("unable to open database file", sa_exc.IntegrityError)

    with pytest.raises(StoreError, match=r"^database .* failed: unable to open"):
        sqlite_store._run(work)


def test_an_error_without_a_message_is_named_by_its_type(sqlite_store: Store) -> None:
    def work(connection: Any) -> None:
        raise sa_exc.OperationalError("SELECT 1", {}, sqlite3.OperationalError())

    with pytest.raises(StoreError, match=r"failed: OperationalError$"):
        sqlite_store._run(work)


def test_a_retry_waits_from_50_ms_doubling_up_to_2_s_and_jittered(
    sqlite_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    pauses: list[float] = []
    monkeypatch.setattr("biobench.retry.time.sleep", pauses.append)

    def work(connection: Any) -> None:
        raise driver_error("database is locked")

    with pytest.raises(StoreError):
        sqlite_store._run(work)
    assert 0.05 <= pauses[0] <= 0.1 and 0.1 <= pauses[1] <= 0.2
    assert all(2.0 <= pause <= 4.0 for pause in pauses[-3:])
    assert len({pause / 2**i for i, pause in enumerate(pauses[:5])}) > 1  # not lockstep


def test_an_error_line_masks_the_urls_password_and_secret_parameters(sqlite_store: Store) -> None:
    sqlite_store.url = make_url(
        "postgresql://alice:hunter2@db/x?sslpassword=s3cret&application_name=app"
    )
    error = RuntimeError("login alice:hunter2 (key s3cret) from app failed\nhint")
    assert sqlite_store._detail(error) == "login alice:*** (key ***) from app failed"


def test_without_a_url_the_store_opens_biobench_db_or_the_file_in_biobench_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert Store().url.database == str(tmp_path / "home" / "results.db")
    monkeypatch.setenv("BIOBENCH_DB", f"sqlite:///{tmp_path / 'elsewhere.db'}")
    assert Store().url.database == str(tmp_path / "elsewhere.db")


def test_the_database_folder_is_made_with_its_parents_and_may_exist(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'a' / 'b' / 'c' / 'results.db'}"
    run_id = new_run(Store(url))
    assert Store(url).run(run_id).id == run_id


def test_a_database_under_a_file_says_it_cannot_make_the_folder(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(StoreError, match="cannot create the database folder .*/file: "):
        Store(f"sqlite:///{tmp_path / 'file' / 'results.db'}")


def test_a_file_name_too_long_for_the_file_system_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="cannot use the database file .*: File name too long"):
        Store(f"sqlite:///{tmp_path / ('x' * 300)}")


def test_a_database_from_before_0006_reads_its_revision_where_it_kept_it(sqlite_url: str) -> None:
    Store(sqlite_url).dispose()
    with Store(sqlite_url)._transaction(write=True) as connection:  # as biobench 0005 left it
        connection.exec_driver_sql("CREATE TABLE alembic_version (version_num VARCHAR(32))")
        connection.exec_driver_sql("INSERT INTO alembic_version VALUES ('v3.2.0.a'), ('0005')")
        connection.exec_driver_sql("DROP TABLE biobench_version")
    assert Store(sqlite_url, check=False).current_revision() == "0005"
    with pytest.raises(StoreError, match="is at schema 0005, this biobench needs 0007; run"):
        Store(sqlite_url)


@pytest.mark.parametrize("table", ["runs", "epochs"])
def test_a_foreign_runs_or_epochs_table_is_refused_and_left_alone(
    sqlite_url: str, table: str
) -> None:
    foreign = Store(sqlite_url, check=False)
    with foreign._transaction(write=True) as connection:
        connection.exec_driver_sql(f"CREATE TABLE {table} (x INTEGER)")
    with pytest.raises(StoreError, match="has tables named runs/epochs that biobench did not"):
        Store(sqlite_url)
    with foreign._transaction(write=False) as connection:
        names = connection.exec_driver_sql("SELECT name FROM sqlite_master").scalars().all()
    assert names == [table]


def test_in_memory_sqlite_is_refused(sqlite_url: str) -> None:
    with pytest.raises(StoreError, match="in-memory SQLite database would lose every result"):
        Store("sqlite:///:memory:")


def test_a_file_without_write_permission_is_read_but_not_written(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    writable = Store(sqlite_url)
    run_id = new_run(writable)
    writable.dispose()
    path = make_url(sqlite_url).database
    real_access = os.access
    monkeypatch.setattr(
        store_module.os, "access", lambda p, mode: str(p) != path and real_access(p, mode)
    )
    store = Store(sqlite_url)
    assert store.read_only == "no write permission"
    assert [r.id for r in store.runs()] == [run_id]
    with pytest.raises(StoreError, match=r"is read-only \(no write permission\): biobench can"):
        store.set_status(run_id, "finished")


def test_a_write_transaction_holds_the_lock_from_its_start_a_read_does_not(
    sqlite_store: Store, sqlite_url: str
) -> None:
    other = sqlite3.connect(make_url(sqlite_url).database, timeout=0, isolation_level=None)
    with sqlite_store._transaction(write=False):
        other.execute("BEGIN IMMEDIATE")  # a reader never blocks a writer
        other.execute("ROLLBACK")
    with (
        sqlite_store._transaction(write=True),
        pytest.raises(sqlite3.OperationalError, match="database is locked"),
    ):
        other.execute("BEGIN IMMEDIATE")
    other.close()


def test_dispose_closes_the_connections_of_both_engines(sqlite_store: Store) -> None:
    new_run(sqlite_store)
    sqlite_store.runs()
    sqlite_store.dispose()
    assert sqlite_store._read_engine.pool.checkedin() == 0
    assert sqlite_store._write_engine.pool.checkedin() == 0


def test_a_status_for_an_unknown_run_names_the_run(sqlite_store: Store) -> None:
    with pytest.raises(StoreError, match="^no run with id 99; `biobench runs` lists them$"):
        sqlite_store.set_status(99, "finished")


def test_lost_is_never_stored(sqlite_store: Store) -> None:
    run_id = new_run(sqlite_store)
    with pytest.raises(ValueError, match="status lost is never stored"):
        sqlite_store.set_status(run_id, "lost")
    assert sqlite_store.run(run_id).status == RunStatus.running


def test_a_run_set_running_again_has_no_end(sqlite_store: Store) -> None:
    run_id = new_run(sqlite_store)
    sqlite_store.set_status(run_id, "interrupted")
    set_columns(sqlite_store, finished_at=None)
    sqlite_store.set_status(run_id, "running")
    assert sqlite_store.run(run_id).finished_at is None


def test_a_heartbeat_keeps_a_run_from_reading_lost_and_needs_the_lease(
    sqlite_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_id = new_run(sqlite_store, heartbeat_at=ago(3600), owner="me")
    assert sqlite_store.run(run_id).status == RunStatus.lost
    sqlite_store.heartbeat(run_id, owner="me")
    assert sqlite_store.run(run_id).status == RunStatus.running
    with pytest.raises(LeaseLost, match=f"run {run_id} was taken over by another process"):
        sqlite_store.heartbeat(run_id, owner="someone-else")
    sqlite_store.heartbeat(run_id)  # without an owner: any process may


def test_writing_an_epoch_refreshes_the_heartbeat(sqlite_store: Store) -> None:
    run_id = new_run(sqlite_store, heartbeat_at=ago(3600))
    sqlite_store.write_epoch(run_id, 1, {"test_top1": 1.0})
    assert sqlite_store.run(run_id).status == RunStatus.running


def test_import_writes_the_epochs_in_order_and_the_status_if_any(sqlite_store: Store) -> None:
    run_id = new_run(sqlite_store)
    sqlite_store.import_rows(run_id, {2: {"test_top1": 2.0}, 1: {"test_top1": 1.0}}, None, None)
    assert sqlite_store.run(run_id).status == RunStatus.running
    assert [(r["epoch"], r["test_top1"]) for r in sqlite_store.epochs([run_id])] == [
        (1, 1.0),
        (2, 2.0),
    ]
    sqlite_store.import_rows(run_id, {}, RunStatus.failed, "boom")
    run = sqlite_store.run(run_id)
    assert (run.status, run.error, run.epochs_done) == (RunStatus.failed, "boom", 2)
    assert run.finished_at is not None
    with pytest.raises(StoreError, match="no run with id 99"):
        sqlite_store.import_rows(99, {}, RunStatus.failed, None)


def test_deleting_runs_counts_those_that_existed_and_takes_their_epochs(
    sqlite_store: Store,
) -> None:
    kept, gone = new_run(sqlite_store), new_run(sqlite_store)
    for run_id in (kept, gone):
        sqlite_store.write_epoch(run_id, 1, {"test_top1": 1.0})
    assert sqlite_store.delete_runs([gone, 999]) == 1
    assert [r.id for r in sqlite_store.runs()] == [kept]
    assert [r["run_id"] for r in sqlite_store.epochs()] == [kept]


def test_a_run_reads_its_best_errors_and_epoch_count(sqlite_store: Store) -> None:
    run_id = new_run(sqlite_store)
    sqlite_store.write_epoch(run_id, 1, {"test_top1": 9.0, "test_top5": 3.0, "train_top1": 8.0})
    sqlite_store.write_epoch(run_id, 2, {"test_top1": 7.0, "test_top5": 4.0, "train_top1": 6.0})
    run = sqlite_store.run(run_id)
    assert (run.epochs_done, run.best_test_top1, run.best_test_top5, run.best_train_top1) == (
        2,
        7.0,
        3.0,
        6.0,
    )
    assert sqlite_store.run(new_run(sqlite_store)).epochs_done == 0


def test_runs_filter_by_column_values(sqlite_store: Store) -> None:
    bp = new_run(sqlite_store, algorithm="bp", seed=1)
    fa = new_run(sqlite_store, algorithm="fa", seed=1)
    new_run(sqlite_store, algorithm="fa", seed=2)
    assert [r.id for r in sqlite_store.runs(algorithm="bp")] == [bp]
    assert [r.id for r in sqlite_store.runs(algorithm="fa", seed=1)] == [fa]
    assert [r.id for r in sqlite_store.runs([bp, fa], algorithm="fa")] == [fa]


def test_a_lost_run_behind_a_newer_finished_one_still_reads_lost(sqlite_store: Store) -> None:
    lost = new_run(sqlite_store, heartbeat_at=ago(3600))
    finished = new_run(sqlite_store)
    sqlite_store.set_status(finished, "finished")
    assert {r.id: r.status for r in sqlite_store.runs()} == {
        finished: RunStatus.finished,
        lost: RunStatus.lost,
    }


def test_epochs_of_every_run_read_by_run_then_epoch(sqlite_store: Store) -> None:
    first, second = new_run(sqlite_store), new_run(sqlite_store)
    for run_id, epoch in ((second, 2), (first, 2), (second, 1), (first, 1)):
        sqlite_store.write_epoch(run_id, epoch, {"test_top1": float(epoch)})
    assert [(r["run_id"], r["epoch"]) for r in sqlite_store.epochs()] == [
        (first, 1),
        (first, 2),
        (second, 1),
        (second, 2),
    ]
    assert [r["run_id"] for r in sqlite_store.epochs([second])] == [second, second]
    assert sqlite_store.epochs([]) == []

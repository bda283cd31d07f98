"""Tests for the gaps a mutation run (tools/mutation.sh) showed in store/store.py: each fails on
a plausible one-line bug there, asserting what a user relies on: when a run reads as lost, which
runs a filter returns, what a lease resets, a retried lock, an error line.
"""

from __future__ import annotations

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
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import make_url

from biobench.errors import LeaseLost, StoreError
from biobench.store import RunStatus, Store
from biobench.store import store as store_module
from biobench.store.store import HOST, heartbeat_interval, lost_after
from test_store import new_run


def set_columns(store: Store, **values: Any) -> None:
    """Set columns of every run directly, as no Store method would."""
    table = store_module.Run.__table__
    store._run(lambda c: c.execute(table.update().values(**values)))


def ago(seconds: float) -> datetime:
    return datetime.now(timezone.utc) - timedelta(seconds=seconds)


@pytest.fixture
def store(sqlite_url: str) -> Iterator[Store]:
    opened = Store(sqlite_url)
    yield opened
    opened.dispose()


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


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


# -- when a `running` run reads as lost -----------------------------------------------------------


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
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("BIOBENCH_LOST_AFTER", raising=False)
    fresh = new_run(store, heartbeat_at=ago(240))
    stale = new_run(store, heartbeat_at=ago(300.3))  # read at once: lost at 300 s, not 301 s
    assert store.run(stale).status == RunStatus.lost
    assert store.run(fresh).status == RunStatus.running


def test_a_run_reads_lost_after_the_seconds_biobench_lost_after_says(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BIOBENCH_LOST_AFTER", "100")
    fresh = new_run(store, heartbeat_at=ago(50))
    stale = new_run(store, heartbeat_at=ago(150))
    assert [(r.id, r.status) for r in store.runs()] == [
        (stale, RunStatus.lost),
        (fresh, RunStatus.running),
    ]


def test_only_a_running_run_can_read_as_lost(store: Store) -> None:
    run_id = new_run(store, heartbeat_at=ago(3600), host=HOST, pid=dead_pid())
    store.set_status(run_id, "interrupted")
    set_columns(store, heartbeat_at=ago(3600))  # set_status refreshed it: make it old again
    assert store.run(run_id).status == RunStatus.interrupted


def test_a_run_whose_process_is_alive_here_stays_running_and_its_process_untouched(
    store: Store, live_pid: int
) -> None:
    run_id = new_run(store, host=HOST, pid=live_pid)
    for _ in range(2):  # checking the process must not signal it
        assert store.run(run_id).status == RunStatus.running
    assert os.waitpid(live_pid, os.WNOHANG) == (0, 0)


def test_a_run_whose_process_is_gone_here_reads_lost_at_once(store: Store) -> None:
    run_id = new_run(store, host=HOST, pid=dead_pid())
    assert store.run(run_id).status == RunStatus.lost


def test_a_dead_pid_on_another_machine_proves_nothing(store: Store) -> None:
    run_id = new_run(store, host=f"not-{HOST}", pid=dead_pid())
    assert store.run(run_id).status == RunStatus.running


def test_a_pid_no_process_can_have_reads_lost(store: Store) -> None:
    run_id = new_run(store, host=HOST, pid=2**40)
    assert store.run(run_id).status == RunStatus.lost


def test_someone_elses_process_counts_as_alive(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_id = new_run(store, host=HOST, pid=12345)

    def refuse(pid: int, signal: int) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(store_module.os, "kill", refuse)
    assert store.run(run_id).status == RunStatus.running


# -- filters: status, limit, order ----------------------------------------------------------------


def test_a_status_filter_with_a_limit_counts_only_runs_of_that_status(store: Store) -> None:
    lost = [new_run(store, heartbeat_at=ago(3600)) for _ in range(2)]
    running = [new_run(store) for _ in range(2)]  # newer than the lost ones
    assert [r.id for r in store.runs(status="lost", limit=1)] == [lost[1]]
    assert [r.id for r in store.runs(status=RunStatus.lost)] == lost[::-1]
    assert [r.id for r in store.runs(limit=3)] == [running[1], running[0], lost[1]]


# -- the lease ------------------------------------------------------------------------------------


def test_taking_the_lease_of_a_lost_run_makes_it_running_and_clears_its_end(
    store: Store,
) -> None:
    run_id = new_run(store, heartbeat_at=ago(3600), owner="old", pid=1, host="elsewhere")
    set_columns(store, error="boom", finished_at=ago(3600))  # stale: a failure, then lost
    seen = store.run(run_id)
    assert seen.status == RunStatus.lost
    assert store.take_lease(seen, "new", os.getpid(), world_size=3)
    run = store.run(run_id)
    assert (run.status, run.owner, run.pid, run.host, run.world_size) == (
        RunStatus.running,
        "new",
        os.getpid(),
        socket.gethostname(),  # this machine: a read here can tell whether its process died
        3,
    )
    assert (run.error, run.finished_at) == (None, None)
    assert run.heartbeat_at > ago(60)


def test_a_lease_read_before_the_status_changed_is_refused(store: Store) -> None:
    run_id = new_run(store)
    store.set_status(run_id, "interrupted")
    seen = store.run(run_id)
    store.set_status(run_id, "failed", "boom")  # same owner (none), other status
    assert not store.take_lease(seen, "me", 1)
    assert store.run(run_id).status == RunStatus.failed


def test_the_lease_defaults_to_one_process(store: Store) -> None:
    run_id = new_run(store, world_size=4)
    store.set_status(run_id, "interrupted")
    assert store.take_lease(store.run(run_id), "me", 1)
    assert store.run(run_id).world_size == 1


# -- transactions: retried locks, one-line errors -------------------------------------------------


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
    store: Store, monkeypatch: pytest.MonkeyPatch, message: str
) -> None:
    monkeypatch.setattr("biobench.retry.time.sleep", lambda seconds: None)
    calls = []

    def work(connection: Any) -> str:
        calls.append(1)
        if len(calls) < 3:
            raise driver_error(message.upper())
        return "done"

    assert store._run(work) == "done" and len(calls) == 3


def test_a_lock_that_persists_gives_up_after_ten_tries_with_one_line(
    store: Store, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("biobench.retry.time.sleep", lambda seconds: None)
    calls = []

    def work(connection: Any) -> None:
        calls.append(1)
        raise driver_error("database is locked\nsecond line")

    with pytest.raises(StoreError) as caught:
        store._run(work, write=False)
    assert len(calls) == 10
    assert str(caught.value) == f"database {sqlite_url} failed: database is locked"


def test_any_other_driver_error_is_not_retried(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("biobench.retry.time.sleep", lambda seconds: None)
    calls = []

    def work(connection: Any) -> None:
        calls.append(1)
        raise driver_error("no such table: runs")

    with pytest.raises(StoreError, match="failed: no such table: runs$"):
        store._run(work)
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
def test_an_unreachable_database_says_so(store: Store, message: str) -> None:
    def work(connection: Any) -> None:
        raise driver_error(message.capitalize())

    with pytest.raises(StoreError, match=r"^cannot reach database .*: " + message.capitalize()):
        store._run(work)


def test_only_an_operational_error_reads_as_unreachable(store: Store) -> None:
    def work(connection: Any) -> None:
        raise driver_error("unable to open database file", sa_exc.IntegrityError)

    with pytest.raises(StoreError, match=r"^database .* failed: unable to open"):
        store._run(work)


def test_an_error_without_a_message_is_named_by_its_type(store: Store) -> None:
    def work(connection: Any) -> None:
        raise sa_exc.OperationalError("SELECT 1", {}, sqlite3.OperationalError())

    with pytest.raises(StoreError, match=r"failed: OperationalError$"):
        store._run(work)


def test_a_retry_waits_from_50_ms_doubling_up_to_2_s_and_jittered(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    pauses: list[float] = []
    monkeypatch.setattr("biobench.retry.time.sleep", pauses.append)

    def work(connection: Any) -> None:
        raise driver_error("database is locked")

    with pytest.raises(StoreError):
        store._run(work)
    assert 0.05 <= pauses[0] <= 0.1 and 0.1 <= pauses[1] <= 0.2
    assert all(2.0 <= pause <= 4.0 for pause in pauses[-3:])
    assert len({pause / 2**i for i, pause in enumerate(pauses[:5])}) > 1  # not lockstep


def test_an_error_line_masks_the_urls_password_and_secret_parameters(store: Store) -> None:
    store.url = make_url("postgresql://alice:hunter2@db/x?sslpassword=s3cret&application_name=app")
    error = RuntimeError("login alice:hunter2 (key s3cret) from app failed\nhint")
    assert store._detail(error) == "login alice:*** (key ***) from app failed"


# -- opening: which file, which folder, which errors ----------------------------------------------


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
    store: Store, sqlite_url: str
) -> None:
    other = sqlite3.connect(make_url(sqlite_url).database, timeout=0, isolation_level=None)
    with store._transaction(write=False):
        other.execute("BEGIN IMMEDIATE")  # a reader never blocks a writer
        other.execute("ROLLBACK")
    with (
        store._transaction(write=True),
        pytest.raises(sqlite3.OperationalError, match="database is locked"),
    ):
        other.execute("BEGIN IMMEDIATE")
    other.close()


def test_dispose_closes_the_connections_of_both_engines(store: Store) -> None:
    new_run(store)
    store.runs()
    store.dispose()
    assert store._read_engine.pool.checkedin() == 0
    assert store._write_engine.pool.checkedin() == 0


# -- writing: status, heartbeat, import, delete ---------------------------------------------------


def test_a_status_for_an_unknown_run_names_the_run(store: Store) -> None:
    with pytest.raises(StoreError, match="^no run with id 99; `biobench runs` lists them$"):
        store.set_status(99, "finished")


def test_lost_is_never_stored(store: Store) -> None:
    run_id = new_run(store)
    with pytest.raises(ValueError, match="status lost is never stored"):
        store.set_status(run_id, "lost")
    assert store.run(run_id).status == RunStatus.running


def test_a_run_set_running_again_has_no_end(store: Store) -> None:
    run_id = new_run(store)
    store.set_status(run_id, "interrupted")
    set_columns(store, finished_at=None)
    store.set_status(run_id, "running")
    assert store.run(run_id).finished_at is None


def test_a_heartbeat_keeps_a_run_from_reading_lost_and_needs_the_lease(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_id = new_run(store, heartbeat_at=ago(3600), owner="me")
    assert store.run(run_id).status == RunStatus.lost
    store.heartbeat(run_id, owner="me")
    assert store.run(run_id).status == RunStatus.running
    with pytest.raises(LeaseLost, match=f"run {run_id} was taken over by another process"):
        store.heartbeat(run_id, owner="someone-else")
    store.heartbeat(run_id)  # without an owner: any process may


def test_writing_an_epoch_refreshes_the_heartbeat(store: Store) -> None:
    run_id = new_run(store, heartbeat_at=ago(3600))
    store.write_epoch(run_id, 1, {"test_top1": 1.0})
    assert store.run(run_id).status == RunStatus.running


def test_import_writes_the_epochs_in_order_and_the_status_if_any(store: Store) -> None:
    run_id = new_run(store)
    store.import_rows(run_id, {2: {"test_top1": 2.0}, 1: {"test_top1": 1.0}}, None, None)
    assert store.run(run_id).status == RunStatus.running
    assert [(r["epoch"], r["test_top1"]) for r in store.epochs([run_id])] == [(1, 1.0), (2, 2.0)]
    store.import_rows(run_id, {}, RunStatus.failed, "boom")
    run = store.run(run_id)
    assert (run.status, run.error, run.epochs_done) == (RunStatus.failed, "boom", 2)
    assert run.finished_at is not None
    with pytest.raises(StoreError, match="no run with id 99"):
        store.import_rows(99, {}, RunStatus.failed, None)


def test_deleting_runs_counts_those_that_existed_and_takes_their_epochs(store: Store) -> None:
    kept, gone = new_run(store), new_run(store)
    for run_id in (kept, gone):
        store.write_epoch(run_id, 1, {"test_top1": 1.0})
    assert store.delete_runs([gone, 999]) == 1
    assert [r.id for r in store.runs()] == [kept]
    assert [r["run_id"] for r in store.epochs()] == [kept]


# -- reading: summaries, column filters, epochs ---------------------------------------------------


def test_a_run_reads_its_best_errors_and_epoch_count(store: Store) -> None:
    run_id = new_run(store)
    store.write_epoch(run_id, 1, {"test_top1": 9.0, "test_top5": 3.0, "train_top1": 8.0})
    store.write_epoch(run_id, 2, {"test_top1": 7.0, "test_top5": 4.0, "train_top1": 6.0})
    run = store.run(run_id)
    assert (run.epochs_done, run.best_test_top1, run.best_test_top5, run.best_train_top1) == (
        2,
        7.0,
        3.0,
        6.0,
    )
    assert store.run(new_run(store)).epochs_done == 0


def test_runs_filter_by_column_values(store: Store) -> None:
    bp = new_run(store, algorithm="bp", seed=1)
    fa = new_run(store, algorithm="fa", seed=1)
    new_run(store, algorithm="fa", seed=2)
    assert [r.id for r in store.runs(algorithm="bp")] == [bp]
    assert [r.id for r in store.runs(algorithm="fa", seed=1)] == [fa]
    assert [r.id for r in store.runs([bp, fa], algorithm="fa")] == [fa]


def test_a_lost_run_behind_a_newer_finished_one_still_reads_lost(store: Store) -> None:
    lost = new_run(store, heartbeat_at=ago(3600))
    finished = new_run(store)
    store.set_status(finished, "finished")
    assert {r.id: r.status for r in store.runs()} == {
        finished: RunStatus.finished,
        lost: RunStatus.lost,
    }


def test_epochs_of_every_run_read_by_run_then_epoch(store: Store) -> None:
    first, second = new_run(store), new_run(store)
    for run_id, epoch in ((second, 2), (first, 2), (second, 1), (first, 1)):
        store.write_epoch(run_id, epoch, {"test_top1": float(epoch)})
    assert [(r["run_id"], r["epoch"]) for r in store.epochs()] == [
        (first, 1),
        (first, 2),
        (second, 1),
        (second, 2),
    ]
    assert [r["run_id"] for r in store.epochs([second])] == [second, second]
    assert store.epochs([]) == []

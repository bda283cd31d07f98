"""Opening a results database by URL, keeping its schema at head, and reading/writing runs.

Habits borrowed from optuna's RDB storage and MLflow's tracking store:
- every transaction goes through one context manager that commits, rolls back, retries
  "database is locked" with bounded backoff, and maps driver errors to one `StoreError`;
- a new database is created at the Alembic head; one at an older revision is refused with the
  exact upgrade command; one newer than this code is refused with "upgrade biobench";
- SQLite runs in WAL mode with a busy timeout, foreign keys on, and `BEGIN IMMEDIATE` for
  writes, so several training processes can stream epochs into one file at once.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sqlite3
from collections.abc import Iterator, Mapping
from datetime import datetime, timezone
from importlib.resources import files
from pathlib import Path
from typing import Any
from urllib.parse import quote

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import (
    Connection,
    Engine,
    create_engine,
    event,
    func,
    inspect,
    select,
    text,
    type_coerce,
)
from sqlalchemy import exc as sa_exc

from biobench.errors import LeaseLost, StoreError
from biobench.paths import check_environment, default_db_url, env_seconds
from biobench.retry import retry
from biobench.store import rows, versions
from biobench.store.models import Epoch, Metric, Run
from biobench.store.records import STORED_STATUSES, RunRecord, RunStatus
from biobench.store.urls import is_secret_param, mask_url, parse_url

# A `running` run whose heartbeat is older than this was lost (SIGKILL, machine gone): reads
# show it as `lost`, at once when its process is gone on this very machine. Training refreshes
# the heartbeat every HEARTBEAT seconds.
LOST_AFTER_ENV, HEARTBEAT_ENV = "BIOBENCH_LOST_AFTER", "BIOBENCH_HEARTBEAT"


def lost_after() -> float:
    return env_seconds(LOST_AFTER_ENV, 300)


def heartbeat_interval() -> float:
    return env_seconds(HEARTBEAT_ENV, 60)


def _alive(pid: int) -> bool:
    """Is process `pid` running on this machine? (Signal 0 checks without signalling.)"""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    except (OverflowError, ValueError):
        return False
    return True


HOST = socket.gethostname()


_RETRIES = 10
_SQLITE_BUSY_MS = 30_000
# Serialises schema creation between processes that open a new PostgreSQL database at once.
_PG_SCHEMA_LOCK = 0x62696F62


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _first_line(error: BaseException) -> str:
    inner = getattr(error, "orig", None) or error
    lines = str(inner).strip().splitlines()
    return lines[0] if lines else type(inner).__name__


def _is_transient(error: sa_exc.DBAPIError) -> bool:
    message = str(error.orig).lower()
    return any(
        key in message
        for key in (
            "database is locked",
            "database table is locked",
            "deadlock detected",
            "could not serialize access",
        )
    )


class RunGone(StoreError):
    """What a process writes to is gone for good, not away for a while: the SQLite file it
    opened was deleted or replaced, or its run row was deleted. Waiting will not bring it
    back, and writing on would put rows where no one looks (or into another database)."""


class Store:
    """A results database. Thread-safe for reads; each process opens its own."""

    def __init__(self, url: str | None = None, *, check: bool = True) -> None:
        """Open the database at `url` (default: BIOBENCH_DB or the SQLite file in BIOBENCH_HOME).

        With `check`, a new database is created at head and an outdated or newer one refused;
        without, the schema is left alone (for `biobench db current` and `db upgrade`).
        """
        check_environment()
        self.url = parse_url(url or default_db_url())
        self.display_url = mask_url(self.url)
        self.is_sqlite = self.url.get_backend_name() == "sqlite"
        self.read_only: str | None = None  # why writes are impossible, for a read-only file
        self._writable_fix = "copy it somewhere writable or pass another --db"
        # Which SQLite file this store writes (device, inode), read at its first write: a
        # later write finding another file at the path refuses (RunGone).
        self._identity: tuple[int, int] | None = None
        if self.is_sqlite:
            self._prepare_sqlite_path()
        try:
            self._read_engine = self._make_engine(immediate=False)
            self._write_engine = (
                self._make_engine(immediate=True) if self.is_sqlite else self._read_engine
            )
        except (sa_exc.ArgumentError, sa_exc.NoSuchModuleError, ImportError) as error:
            raise StoreError(
                f"cannot open database {self.display_url}: {self._detail(error)}; "
                "check the URL's scheme and driver"
            ) from None
        if check:
            self._check_schema()

    # -- engines -------------------------------------------------------------------------------

    def _prepare_sqlite_path(self) -> None:
        database = self.url.database
        if not database or database == ":memory:":
            raise StoreError(
                "an in-memory SQLite database would lose every result; "
                "pass --db sqlite:///path/to/results.db"
            )
        # The driver's own parameters (timeout, uri...) would bypass or break how biobench
        # opens the file; only a read-only open is the user's to ask for.
        query = dict(self.url.query)
        asked_read_only = query == {"mode": "ro"}
        if query and not asked_read_only:
            raise StoreError(
                f"cannot open database {self.display_url}: a SQLite URL takes one parameter "
                "only, ?mode=ro to read it without writing; remove the others"
            )
        path = Path(database).expanduser()
        if asked_read_only:
            self._open_read_only(path)
            return
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise StoreError(
                f"cannot create the database folder {path.parent}: {error.strerror}; "
                "pass --db or set BIOBENCH_DB to a writable location"
            ) from None
        try:
            is_dir, exists = path.is_dir(), path.exists()
        except OSError as error:  # e.g. a name longer than the file system allows
            raise StoreError(
                f"cannot use the database file {path}: {error.strerror}; pass another --db"
            ) from None
        if is_dir:
            raise StoreError(
                f"{path} is a folder, not a database file; pass e.g. "
                f"--db sqlite:///{path / 'results.db'}"
            )
        # A file on a read-only mount (or without write permission) can still be read.
        writable_dir = os.access(path.parent, os.W_OK)
        if exists and not (os.access(path, os.W_OK) and writable_dir):
            self.read_only = "read-only mount" if not writable_dir else "no write permission"
            # immutable: nothing can write it, so SQLite needs no lock or WAL index files.
            self._ro_uri = (
                f"file:{quote(str(path))}?{'immutable=1' if not writable_dir else 'mode=ro'}"
            )
        self.url = self.url.set(database=str(path))

    def _open_read_only(self, path: Path) -> None:
        """`?mode=ro`: read an existing database, never create or write one."""
        try:
            is_file = path.is_file()
        except OSError as error:
            raise StoreError(
                f"cannot use the database file {path}: {error.strerror}; pass another --db"
            ) from None
        if not is_file:
            raise StoreError(
                f"database {self.display_url} does not exist; a read-only URL (?mode=ro) opens "
                "an existing database only"
            )
        self.read_only, self._writable_fix = "?mode=ro in its URL", "drop ?mode=ro to write"
        self._ro_uri = f"file:{quote(str(path))}?mode=ro"
        # What opens it elsewhere (Optuna's storage) opens it read-only too.
        self.url = self.url.set(
            database=f"file:{quote(str(path))}", query={"mode": "ro", "uri": "true"}
        )

    def _make_engine(self, *, immediate: bool) -> Engine:
        if not self.is_sqlite:
            args = {"connect_timeout": 10} if self.url.get_backend_name() == "postgresql" else {}
            return create_engine(self.url, pool_pre_ping=True, connect_args=args)
        if self.read_only:
            uri = self._ro_uri
            engine = create_engine(
                "sqlite://",
                creator=lambda: sqlite3.connect(uri, uri=True, check_same_thread=False),
            )
        else:
            engine = create_engine(self.url, connect_args={"timeout": _SQLITE_BUSY_MS / 1000})

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_connection: Any, _record: Any) -> None:
            # Let SQLAlchemy, not the sqlite3 module, decide when transactions begin.
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            if not self.read_only:  # both are writes to the file
                cursor.execute("PRAGMA journal_mode=WAL")
                cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute(f"PRAGMA busy_timeout={_SQLITE_BUSY_MS}")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _on_begin(connection: Connection) -> None:
            # Writers take the lock up front so two of them never deadlock upgrading a
            # shared lock; readers use a deferred transaction and never block writers (WAL).
            connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

        return engine

    def _file_identity(self) -> tuple[int, int] | None:
        if not self.is_sqlite or self.read_only:
            return None
        try:
            info = os.stat(self.url.database or "")
        except OSError:
            return None
        return info.st_dev, info.st_ino

    def _check_same_file(self) -> None:
        """Refuse to write once the file at the path is not the one this store opened: a
        pooled connection would write to the deleted file, a new one to its replacement."""
        now = self._file_identity()
        if self._identity is None:
            self._identity = now
        elif now != self._identity:
            raise RunGone(
                f"the database file {self.url.database} is no longer the one biobench opened "
                "(it was deleted or replaced)"
            )

    @contextlib.contextmanager
    def _transaction(self, *, write: bool) -> Iterator[Connection]:
        engine = self._write_engine if write else self._read_engine
        with engine.begin() as connection:
            if write and self.is_sqlite:  # checked under the write lock
                self._check_same_file()
            yield connection

    def _run(self, work: Any, *, write: bool = True) -> Any:
        """Run `work(connection)` in one transaction, retrying transient lock errors."""
        if write and self.read_only:
            raise StoreError(
                f"database {self.display_url} is read-only ({self.read_only}): biobench can "
                f"read it but not write to it; {self._writable_fix}"
            )

        def once() -> Any:
            with self._transaction(write=write) as connection:
                return work(connection)

        try:
            return retry(
                once,
                retry_on=lambda e: isinstance(e, sa_exc.DBAPIError) and _is_transient(e),
                delay=0.05,
                max_delay=2.0,
                attempts=_RETRIES,
                jitter=True,
            )
        except sa_exc.DBAPIError as error:
            raise self._error(error) from None

    def _detail(self, error: BaseException) -> str:
        """The first line of a driver's error, without any secret of the URL in it."""
        detail = _first_line(error)
        secrets = [self.url.password or ""] + [
            value
            for name, values in self.url.query.items()
            if is_secret_param(name)
            for value in ((values,) if isinstance(values, str) else values)
        ]
        for secret in filter(None, secrets):
            detail = detail.replace(secret, "***")
        return detail

    def _error(self, error: sa_exc.DBAPIError) -> StoreError:
        detail = self._detail(error)
        if isinstance(error, sa_exc.OperationalError) and any(
            key in detail.lower() for key in ("connect", "unable to open", "timeout", "resolve")
        ):
            return StoreError(
                f"cannot reach database {self.display_url}: {detail}; check that it is up "
                "and that the URL (--db or BIOBENCH_DB) is right"
            )
        return StoreError(f"database {self.display_url} failed: {detail}")

    # -- schema --------------------------------------------------------------------------------

    def alembic_config(self, connection: Connection | None = None) -> Config:
        config = Config()
        config.set_main_option("script_location", str(files("biobench.migrations")))
        config.attributes["connection"] = connection
        return config

    def head_revision(self) -> str:
        head = ScriptDirectory.from_config(self.alembic_config()).get_current_head()
        assert head is not None
        return head

    def current_revision(self) -> str | None:
        known = self._known_revisions()
        return self._run(lambda c: versions.current_revision(c, known), write=False)

    def _known_revisions(self) -> set[str]:
        scripts = ScriptDirectory.from_config(self.alembic_config())
        return {script.revision for script in scripts.walk_revisions()}

    def _check_schema(self) -> None:
        head, known = self.head_revision(), self._known_revisions()

        def work(connection: Connection) -> str | None:
            if connection.dialect.name == "postgresql":
                connection.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_SCHEMA_LOCK}
                )
            # On SQLite this transaction began IMMEDIATE, so check-then-create is atomic too.
            current = versions.current_revision(connection, known)
            if current is None:
                if set(inspect(connection).get_table_names()) & {"runs", "epochs"}:
                    return "foreign"
                command.upgrade(self.alembic_config(connection), "head")
                return head
            return current

        if self.read_only:  # nothing can be created: read the revision and compare
            current = self.current_revision()
            if current is None:
                raise StoreError(
                    f"database {self.display_url} is read-only ({self.read_only}) and holds "
                    "no biobench results; pass another --db"
                )
        else:
            current = self._run(work, write=True)
        if current == head:
            return
        if current == "foreign":
            raise StoreError(
                f"database {self.display_url} has tables named runs/epochs that biobench did "
                "not create; point --db at a new or a biobench database"
            )
        self._refuse_unknown(current)
        raise StoreError(
            f"database {self.display_url} is at schema {current}, this biobench needs "
            f"{head}; run `biobench db upgrade` with the same --db or BIOBENCH_DB"
        )

    def _refuse_unknown(self, current: str | None) -> None:
        if current is not None and current not in self._known_revisions():
            raise StoreError(
                f"database {self.display_url} is at schema {current}, newer than this "
                f"biobench knows (head {self.head_revision()}); upgrade biobench"
            )

    def upgrade(self) -> tuple[str | None, str]:
        """Bring the database to head; returns (revision before, revision after)."""
        before = self.current_revision()
        self._refuse_unknown(before)
        scripts = ScriptDirectory.from_config(self.alembic_config())

        def work(connection: Connection) -> None:
            versions.carry_over(connection, scripts)
            command.upgrade(self.alembic_config(connection), "head")

        self._run(work)
        return before, self.head_revision()

    # -- runs ----------------------------------------------------------------------------------

    def create_run(self, **fields: Any) -> int:
        """Insert a run in status `running` and return its id."""
        now = _now()
        values = {
            "status": RunStatus.running.value,
            "created_at": now,
            "started_at": now,
            "heartbeat_at": now,
            **fields,
        }

        def work(connection: Connection) -> int:
            result = connection.execute(Run.__table__.insert().values(**values))
            return int(result.inserted_primary_key[0])

        return self._run(work)

    def write_epoch(
        self,
        run_id: int,
        epoch: int,
        metrics: Mapping[str, float | None],
        *,
        owner: str | None = None,
    ) -> None:
        """Insert or replace the row of (run, epoch), with its per-layer rows (`metrics`'
        "layers", store/rows.py), and refresh the run's heartbeat; with `owner`, only while
        the run's lease is still that token (else LeaseLost, nothing written)."""

        def work(connection: Connection) -> None:
            # The lease check comes first, in the same transaction: a process that lost the run
            # writes nothing.
            now = _now()
            self._touch(connection, run_id, now, owner)
            rows.upsert_epoch(connection, run_id, epoch, metrics, now)

        self._run(work)

    def import_rows(
        self,
        run_id: int,
        epochs: Mapping[int, Mapping[str, float | None]],
        status: RunStatus | None,
        error: str | None,
    ) -> None:
        """Write rows a run could not deliver, and its final status, in one transaction."""

        def work(connection: Connection) -> None:
            now = _now()
            for epoch in sorted(epochs):
                rows.upsert_epoch(connection, run_id, epoch, epochs[epoch], now)
            if status is not None:
                self._update_owned(connection, run_id, None, self._status_values(status, error))

        self._run(work)

    @staticmethod
    def _update_owned(
        connection: Connection, run_id: int, owner: str | None, values: dict[str, Any]
    ) -> None:
        """Update the run, only while `owner` holds its lease (any owner when None)."""
        runs = Run.__table__
        where = runs.c.id == run_id
        if owner is not None:
            where = where & (runs.c.owner == owner)
        if connection.execute(runs.update().where(where).values(**values)).rowcount:
            return
        if owner is None:
            raise StoreError(f"no run with id {run_id}; `biobench runs` lists them")
        if connection.execute(select(runs.c.id).where(runs.c.id == run_id)).first() is None:
            raise RunGone(f"run {run_id} was deleted from the database while it trained")
        raise LeaseLost(
            f"run {run_id} was taken over by another process (resumed elsewhere); "
            "this one stops without writing"
        )

    def _touch(
        self, connection: Connection, run_id: int, now: datetime, owner: str | None
    ) -> None:
        self._update_owned(connection, run_id, owner, {"heartbeat_at": now})

    def heartbeat(self, run_id: int, *, owner: str | None = None) -> None:
        self._run(lambda c: self._touch(c, run_id, _now(), owner))

    def take_lease(self, run: RunRecord, owner: str, pid: int, world_size: int = 1) -> bool:
        """Make this process the run's only writer: one compare-and-set on the lease token and
        status read in `run`, so of several processes resuming it at once one wins. Marks the
        run `running` again, trained by `world_size` processes. False: another process got
        there first."""
        runs = Run.__table__
        seen = (
            runs.c.status
            == (RunStatus.running if run.status is RunStatus.lost else run.status).value
        )
        where = (runs.c.id == run.id) & seen & runs.c.owner.is_not_distinct_from(run.owner)
        values = {
            "status": RunStatus.running.value,
            "error": None,
            "finished_at": None,
            "heartbeat_at": _now(),
            "owner": owner,
            "pid": pid,
            "host": HOST,
            "world_size": world_size,
        }
        return bool(
            self._run(lambda c: c.execute(runs.update().where(where).values(**values)).rowcount)
        )

    def set_status(
        self,
        run_id: int,
        status: RunStatus | str,
        error: str | None = None,
        *,
        owner: str | None = None,
    ) -> None:
        """Record the run's status; with `owner`, only while that token holds the lease."""
        values = self._status_values(RunStatus(status), error)
        self._run(lambda c: self._update_owned(c, run_id, owner, values))

    @staticmethod
    def _status_values(status: RunStatus, error: str | None) -> dict[str, Any]:
        if status not in STORED_STATUSES:
            raise ValueError(f"status {status} is never stored")
        values: dict[str, Any] = {"status": status.value, "error": error, "heartbeat_at": _now()}
        if status.ended:
            values["finished_at"] = values["heartbeat_at"]
        return values

    def set_trial(self, run_id: int, trial: int, *, owner: str | None = None) -> None:
        """Link the run to trial number `trial` of its study: a retried trial (a new number in
        Optuna) continues the run its first attempt made. With `owner`, only under its lease."""
        self._run(lambda c: self._update_owned(c, run_id, owner, {"trial": trial}))

    def delete_runs(self, run_ids: list[int]) -> int:
        """Delete these runs, their epoch rows with them (ON DELETE CASCADE); returns how many
        runs there were to delete. Their checkpoint folders are the caller's to remove."""
        runs = Run.__table__
        return int(
            self._run(lambda c: c.execute(runs.delete().where(runs.c.id.in_(run_ids))).rowcount)
        )

    # -- reading -------------------------------------------------------------------------------

    def runs(
        self,
        run_ids: list[int] | None = None,
        limit: int | None = None,
        *,
        status: RunStatus | str | None = None,
        **columns: str,
    ) -> list[RunRecord]:
        """Runs, newest first, each with epochs_done and best test errors; optionally only
        those with this status (`lost` included) and these column values (algorithm=...)."""
        runs, epochs = Run.__table__, Epoch.__table__
        summary = (
            select(
                epochs.c.run_id,
                func.count().label("epochs_done"),
                type_coerce(func.min(epochs.c.test_top1), Metric).label("best_test_top1"),
                type_coerce(func.min(epochs.c.test_top5), Metric).label("best_test_top5"),
                type_coerce(func.min(epochs.c.train_top1), Metric).label("best_train_top1"),
            )
            .group_by(epochs.c.run_id)
            .subquery()
        )
        query = (
            select(
                runs,
                summary.c.epochs_done,
                summary.c.best_test_top1,
                summary.c.best_test_top5,
                summary.c.best_train_top1,
            )
            .outerjoin(summary, summary.c.run_id == runs.c.id)
            .order_by(runs.c.id.desc())
        )
        if run_ids is not None:
            query = query.where(runs.c.id.in_(run_ids))
        for column, value in columns.items():
            query = query.where(runs.c[column] == value)
        if limit is not None and status is None:  # a status filter applies after `lost` is known
            query = query.limit(limit)

        def work(connection: Connection) -> list[RunRecord]:
            rows = [dict(row._mapping) for row in connection.execute(query)]
            stale = _now().timestamp() - lost_after()
            for row in rows:
                beat = row["heartbeat_at"]
                if row["status"] != "running":
                    continue
                gone = row["host"] == HOST and row["pid"] is not None and not _alive(row["pid"])
                if gone or (beat is not None and beat.timestamp() < stale):
                    row["status"] = RunStatus.lost.value  # its process died without saying so
            records = [RunRecord.from_row(row) for row in rows]
            if status is not None:
                records = [r for r in records if r.status == RunStatus(status)][:limit]
            return records

        return self._run(work, write=False)

    def run(self, run_id: int) -> RunRecord:
        found = self.runs([run_id])
        if not found:
            raise StoreError(
                f"no run with id {run_id} in {self.display_url}; `biobench runs` lists them"
            )
        return found[0]

    def epochs(self, run_ids: list[int] | None = None) -> list[dict]:
        """Epoch rows ordered by run and epoch, metrics as floats (NaN kept)."""
        table = Epoch.__table__
        query = select(table).order_by(table.c.run_id, table.c.epoch)
        if run_ids is not None:
            query = query.where(table.c.run_id.in_(run_ids))
        return self._run(lambda c: [dict(row._mapping) for row in c.execute(query)], write=False)

    def layer_metrics(self, run_ids: list[int] | None = None) -> list[dict]:
        """Per-layer alignment rows (models.LayerMetric) ordered by run, epoch and layer."""
        query = rows.layer_query(run_ids)
        return self._run(lambda c: [dict(row._mapping) for row in c.execute(query)], write=False)

    def dispose(self) -> None:
        self._read_engine.dispose()
        if self._write_engine is not self._read_engine:
            self._write_engine.dispose()

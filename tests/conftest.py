"""Shared fixtures: fresh SQLite files, fresh databases on a real PostgreSQL server, MNIST files.

PostgreSQL tests use the server named by BIOBENCH_TEST_POSTGRES_URL (`.ci/postgres start` makes
one); each test gets a database of its own, dropped afterwards. Without the variable they are
skipped, except under CI, where a missing server is a failure.

The tests see the environment they need, not the one they were started in: biobench's own
rules, networks and datasets without the plugins installed beside it, and Ctrl-C as Python's
KeyboardInterrupt even when the suite was started with SIGINT ignored.
"""

from __future__ import annotations

import os
import signal
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from biobench import registry
from biobench.store import Store
from support.data import make_mnist

PG_ENV = "BIOBENCH_TEST_POSTGRES_URL"
_no_plugins = pytest.MonkeyPatch()


def pytest_configure(config: pytest.Config) -> None:
    """Before any test module is collected: an installed plugin (a feedback-family rule, say)
    would join every parametrisation over the registries and every in-process command, and fail
    tests written for biobench's own entries. The plugin tests install theirs in subprocesses,
    which this does not reach."""
    _no_plugins.setattr(registry, "entry_points", lambda group: ())


def pytest_unconfigure(config: pytest.Config) -> None:
    _no_plugins.undo()


@pytest.fixture(autouse=True, scope="session")
def _sigint_interrupts() -> Iterator[None]:
    """A suite started in the background (`pytest &` without job control) inherits SIGINT
    ignored, and Python then installs no handler: the tests that interrupt a run by SIGINT
    would see nothing happen. Python's own handler for the session; its subprocesses start with
    the default action again."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test reads or writes the user's real results database or data folder."""
    monkeypatch.setenv("BIOBENCH_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("BIOBENCH_DB", raising=False)
    monkeypatch.delenv("BIOBENCH_DATA_DIR", raising=False)
    monkeypatch.delenv("BIOBENCH_BENCHMARKS", raising=False)
    # Set (to none), not deleted: monkeypatch then restores it after a test whose in-process
    # command added files to it (`--presets`).
    monkeypatch.setenv("BIOBENCH_PRESETS", "")


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'db' / 'results.db'}"


def _pg_base_url() -> str:
    url = os.environ.get(PG_ENV)
    if not url:
        if os.environ.get("CI"):
            pytest.fail(f"{PG_ENV} is not set under CI: .ci/run must start PostgreSQL")
        pytest.skip(f'{PG_ENV} not set (start a server with `eval "$(bash .ci/postgres start)"`)')
    return url


@pytest.fixture
def postgres_url() -> Iterator[str]:
    base = make_url(_pg_base_url()).set(drivername="postgresql+psycopg")
    name = f"bb_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    yield base.set(database=name).render_as_string(hide_password=False)
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest) -> str:
    """Every store contract test runs on both backends."""
    if request.param == "sqlite":
        return request.getfixturevalue("sqlite_url")
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def sqlite_store(sqlite_url: str) -> Iterator[Store]:
    """An empty results store in a fresh SQLite file."""
    store = Store(sqlite_url)
    yield store
    store.dispose()


@pytest.fixture
def mnist_dir(tmp_path: Path) -> Path:
    return make_mnist(tmp_path / "data")

"""Hostile or careless input: no secret in the terminal or the database, no clobbered file.

(A CIFAR-10 file that would run code is in data/test_cifar10.py; bad-input lines are in
test_bad_input.py.)
"""

from __future__ import annotations

import errno
import json
import os
import shlex
import stat
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import pytest
import torch
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from biobench.cli import app
from biobench.cli.hints import command
from biobench.data import DataOptions, load_dataset
from biobench.errors import BiobenchError, DataError, StoreError
from biobench.files import atomic_write
from biobench.spec import resolve
from biobench.store import Store, mask_url
from biobench.store.urls import URL_OPTIONS, mask_argv
from biobench.training import checkpoint
from biobench.training.runner import environment, prepare

runner = CliRunner()

# Passwords written every way a user might, each with the fragments that must never show.
FRAGMENTS = ("s3cr", "et9x")
FORMS = {
    "unencoded /": "postgresql://u:s3cr/et9x@127.0.0.1:1/db",
    "unencoded :": "postgresql://u:s3cr:et9x@127.0.0.1:1/db",
    "unencoded @": "postgresql://u:s3cr@et9x@127.0.0.1:1/db",
    "?password=": "postgresql://u@127.0.0.1:1/db?sslmode=disable&Password=s3cr%2Fet9x",
    "no scheme": "u:s3cr/et9x@127.0.0.1",
}
ARGUMENTS = {**FORMS, "--db=URL": "--db=postgresql://u:s3cr/et9x@127.0.0.1:1/db"}


def assert_hidden(text: str) -> None:
    assert not any(fragment in text for fragment in FRAGMENTS), text


# -- secrets -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "masked"),
    [
        (FORMS["unencoded /"], "postgresql://u:***@127.0.0.1:1/db"),
        (FORMS["unencoded :"], "postgresql://u:***@127.0.0.1:1/db"),
        (FORMS["unencoded @"], "postgresql://u:***@127.0.0.1:1/db"),
        (FORMS["?password="], "postgresql://u@127.0.0.1:1/db?sslmode=disable&Password=***"),
        (FORMS["no scheme"], "u:***@127.0.0.1"),
        (ARGUMENTS["--db=URL"], "--db=postgresql://u:***@127.0.0.1:1/db"),
        (
            "postgresql://u:a?b@h/db?token=x&passwd=y&port=1",
            "postgresql://u:***@h/db?token=***&passwd=***&port=1",
        ),
        ("postgresql://u@h/db?password=s3cr@et9x", "postgresql://u@h/db?password=***"),
        ("postgresql://host:5432/db", "postgresql://host:5432/db"),
        ("sqlite:////tmp/results.db", "sqlite:////tmp/results.db"),
        ("lr=3e-4", "lr=3e-4"),
        ("--epochs", "--epochs"),
    ],
)
def test_mask_url_hides_the_secret_however_it_is_written(raw: str, masked: str) -> None:
    assert mask_url(raw) == masked


def test_mask_url_of_a_parsed_url_hides_its_query_password_too() -> None:
    url = make_url("postgresql://u:s3cr@h/db?password=et9x")
    assert mask_url(url) == "postgresql://u:***@h/db?password=***"


@pytest.mark.parametrize("argument", ARGUMENTS.values(), ids=ARGUMENTS)
def test_the_stored_argv_holds_no_secret(argument: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "argv", ["biobench", "run", "--db", argument])
    argv = environment(torch.device("cpu"))["argv"]
    assert argv[:2] == ["run", "--db"] and "***" in argv[2]
    assert_hidden(json.dumps(argv))


def test_a_run_stores_no_secret_from_its_command_line(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    argv = ["biobench", "run"] + [a for url in ARGUMENTS.values() for a in ("--db", url)]
    monkeypatch.setattr(sys, "argv", argv)
    result = runner.invoke(
        app, ["run", "--data", "synthetic", "--epochs", "1", "--db", sqlite_url]
    )
    assert result.exit_code == 0, result.output
    (run,) = Store(sqlite_url).runs()
    assert len(run.environment["argv"]) == len(argv) - 1
    assert_hidden(str(run))


@pytest.mark.parametrize(
    ("argv", "shown"),
    [
        (["--db", FORMS["unencoded /"]], ["--db", "postgresql://u:***@127.0.0.1:1/db"]),
        ([f"--db={FORMS['unencoded :']}"], ["--db=postgresql://u:***@127.0.0.1:1/db"]),
        (["--db", FORMS["no scheme"]], ["--db", "u:***@127.0.0.1"]),
        (["--db=" + FORMS["no scheme"]], ["--db=u:***@127.0.0.1"]),
        (["--db", FORMS["?password="]], ["--db", mask_url(FORMS["?password="])]),
        (["--set", "x=" + FORMS["unencoded @"]], ["--set", "x=postgresql://u:***@127.0.0.1:1/db"]),
        # Not a URL and not an URL option's value: shown as typed, so the hint still works.
        (["--study", "a:b@c", "--set", "lr=3e-4"], ["--study", "a:b@c", "--set", "lr=3e-4"]),
    ],
    ids=[
        "--db URL",
        "--db=URL",
        "--db no scheme",
        "--db=no scheme",
        "?password=",
        "--set",
        "no url",
    ],
)
def test_a_printed_command_masks_every_url_however_it_is_given(
    argv: list[str], shown: list[str]
) -> None:
    assert mask_argv(argv) == shown
    assert command(["search", *argv]) == shlex.join(["biobench", "search", *shown])


def test_every_option_that_takes_a_url_is_masked_in_hints() -> None:
    import typer

    def options(command: Any) -> set[str]:
        found = {name for param in command.params if param.metavar == "URL" for name in param.opts}
        for sub in getattr(command, "commands", {}).values():
            found |= options(sub)
        return found

    assert options(typer.main.get_command(app)) == set(URL_OPTIONS)


@pytest.mark.parametrize("form", ["--db URL", "--db=URL"])
def test_an_interrupted_search_prints_no_password_in_its_hint(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch, form: str
) -> None:
    from biobench.search.worker import Worker

    def interrupted(self, trials: int) -> None:
        raise KeyboardInterrupt

    url = FORMS["unencoded /"]
    given = ["--db", url] if form == "--db URL" else [f"--db={url}"]
    monkeypatch.setattr(Worker, "run", interrupted)
    cell = ["--study", "s", "--algo", "bp", "--arch", "fc", "--data", "synthetic", "--trials", "1"]
    monkeypatch.setattr(sys, "argv", ["biobench", "search", *cell, *given])
    result = runner.invoke(app, ["search", *cell, "--db", sqlite_url])
    assert result.exit_code == 130, result.output
    again = shlex.join(["biobench", "search", *cell, *mask_argv(given)])
    assert result.stderr == f"error: interrupted; go on with `{again}`\n"
    assert "postgresql://u:***@127.0.0.1:1/db" in again
    assert_hidden(result.output)


@pytest.mark.parametrize("url", FORMS.values(), ids=FORMS)
def test_store_display_url_and_errors_never_hold_the_secret(url: str) -> None:
    with pytest.raises(StoreError) as caught:  # unreachable, unparseable, or refused
        Store(url)
    assert_hidden(str(caught.value))
    try:
        display = Store(url, check=False).display_url  # opens no connection
    except StoreError as error:
        display = str(error)
    assert_hidden(display)


def test_an_at_sign_in_the_password_is_refused_with_the_encoding_to_use() -> None:
    with pytest.raises(StoreError, match="holds an '@'; write it as %40"):
        Store(FORMS["unencoded @"], check=False)


def test_a_driver_error_quoting_a_secret_parameter_shows_it_masked() -> None:
    url = "postgresql://u@127.0.0.1:1/db?password=s3cret9x&sslmode=s3cret9x"
    with pytest.raises(StoreError) as caught:
        Store(url)
    assert 'invalid sslmode value: "***"' in str(caught.value)
    assert "password=s3cret9x" not in str(caught.value)


@pytest.fixture
def secret_role(postgres_url: str) -> Iterator[tuple[str, str]]:
    """A role whose password holds a / and a :, owning the test database: (url parts, pw)."""
    base = make_url(postgres_url)
    role, password = f"bb_{uuid.uuid4().hex[:8]}", "s3cr/et9x:q"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'"))
        connection.execute(text(f'ALTER DATABASE "{base.database}" OWNER TO {role}'))
    admin.dispose()
    yield f"{role}@{base.host}:{base.port}/{base.database}", password
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:  # its database too goes back to the test user
        connection.execute(text(f'REASSIGN OWNED BY {role} TO "{base.username}"'))
        connection.execute(text(f"DROP ROLE {role}"))
    admin.dispose()


@pytest.mark.postgres
@pytest.mark.parametrize("form", ["user info", "query"])
def test_the_run_banner_and_the_run_row_hold_no_password(
    secret_role: tuple[str, str], form: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    where, password = secret_role
    role, rest = where.split("@", 1)
    url = (
        f"postgresql://{role}:{password}@{rest}"
        if form == "user info"
        else f"postgresql://{where}?password={password}"
    )
    monkeypatch.setattr(sys, "argv", ["biobench", "run", "--db", url])
    result = runner.invoke(app, ["run", "--data", "synthetic", "--epochs", "1", "--db", url])
    assert result.exit_code == 0, result.output
    assert "***" in result.output
    assert_hidden(result.output)
    store = Store(url)
    assert_hidden(store.display_url + str(store.runs()))


# -- files -----------------------------------------------------------------------------------


@pytest.fixture
def db(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'results.db'}"
    result = runner.invoke(app, ["run", "--data", "synthetic", "--epochs", "1", "--db", url])
    assert result.exit_code == 0, result.output
    return url


def test_export_writes_through_a_symlink(db: str, tmp_path: Path) -> None:
    folder = tmp_path / "out"
    folder.mkdir()
    target, link = folder / "real.csv", folder / "link.csv"
    target.write_text("old")
    link.symlink_to(target)
    result = runner.invoke(app, ["export", "--out", str(link), "--db", db])
    assert result.exit_code == 0, result.output
    assert link.is_symlink() and target.read_text().startswith("run_id,")
    assert sorted(p.name for p in folder.iterdir()) == ["link.csv", "real.csv"]


@pytest.mark.parametrize(
    "command", [["export", "--out"], ["check", "--junit"], ["plot", "1", "--out"]]
)
def test_a_character_device_is_refused_untouched(
    db: str, command: list[str], tmp_path: Path
) -> None:
    device = Path("/dev/full")
    if not device.is_char_device():
        pytest.skip("no /dev/full here")
    before = device.stat()
    out = device
    if command[0] == "plot":  # a figure needs an image suffix: reach the device by a link
        out = tmp_path / "figure.png"
        out.symlink_to(device)
    result = runner.invoke(app, [*command, str(out), "--db", db])
    assert result.exit_code == 2
    assert result.stderr == (
        f"error: cannot write {out}: it is a character device, not a regular file; "
        f"choose another {command[-1]}\n"
    )
    after = device.stat()
    assert (after.st_rdev, after.st_mode) == (before.st_rdev, before.st_mode)
    assert not [p for p in device.parent.iterdir() if p.name.startswith(".full.")]


def test_plot_writes_the_format_its_suffix_names_through_a_symlink(
    db: str, tmp_path: Path
) -> None:
    target, link = tmp_path / "real.svg", tmp_path / "curves.svg"
    link.symlink_to(target)
    result = runner.invoke(app, ["plot", "1", "--out", str(link), "--db", db])
    assert result.exit_code == 0, result.output
    assert link.is_symlink() and "<svg" in target.read_text()


def _fill_then(error: BaseException):
    def write(handle: BinaryIO) -> None:
        handle.write(b"half of it")
        raise error

    return write


@pytest.mark.parametrize(
    "error",
    [OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)), RuntimeError("bug"), KeyboardInterrupt()],
    ids=["disk full", "writer bug", "Ctrl-C"],
)
def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary_file(
    tmp_path: Path, error: BaseException
) -> None:
    path = tmp_path / "out.csv"
    path.write_text("old")
    with pytest.raises(BiobenchError if isinstance(error, OSError) else type(error)) as caught:
        atomic_write(path, _fill_then(error), fix="choose another --out")
    if isinstance(error, OSError):
        assert str(caught.value) == (
            f"cannot write {path}: No space left on device; choose another --out"
        )
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["out.csv"]


@pytest.mark.parametrize(
    ("where", "cause"),
    [
        (".", "it is a directory, not a regular file"),
        ("blocker/out.csv", "{tmp}/blocker is a file"),
        ("blocker/sub/out.csv", "Not a directory"),
    ],
)
def test_a_path_that_cannot_be_a_file_is_one_line(tmp_path: Path, where: str, cause: str) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where a folder should be")
    path = tmp_path / where
    with pytest.raises(BiobenchError) as caught:
        atomic_write(path, "text")
    assert str(caught.value) == f"cannot write {path}: {cause.format(tmp=tmp_path)}"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blocker"]


def test_a_replaced_file_keeps_its_permissions(tmp_path: Path) -> None:
    path = tmp_path / "report.xml"
    path.write_text("old")
    path.chmod(0o640)
    atomic_write(path, b"new")
    assert path.read_bytes() == b"new" and stat.S_IMODE(path.stat().st_mode) == 0o640


def test_a_saved_checkpoint_loads_and_nothing_else_is_left(tmp_path: Path) -> None:
    spec = resolve(algorithm="bp", architecture="fc", dataset="synthetic", epochs=1)
    job = prepare(spec, torch.device("cpu"), tmp_path / "data", download=False)
    folder = tmp_path / "run"
    for epoch in (1, 2):
        checkpoint.save(
            folder,
            run_id=1,
            epoch=epoch,
            spec_hash=spec.spec_hash(),
            learner=job.learner,
            generator=job.generator,
        )
    payload = checkpoint.load(folder, torch.device("cpu"))
    assert payload is not None and payload["epoch"] == 2
    assert [p.name for p in folder.iterdir()] == [checkpoint.FILE]


# -- other loaders: none unpickles -----------------------------------------------------------


def test_a_downsampled_imagenet_file_holding_pickled_objects_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "imagenet32"
    folder.mkdir()
    for name in ("train_data_batch_1.npz", "val_data.npz"):
        labels = np.array([1, 2], dtype=object)  # stored as a pickle inside the .npz
        np.savez(folder / name, data=np.zeros((2, 3072), np.uint8), labels=labels)
    with pytest.raises(DataError, match="Object arrays cannot be loaded when allow_pickle=False"):
        load_dataset("imagenet32", DataOptions(tmp_path))

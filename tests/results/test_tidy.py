"""Tidying the results folder (results/tidy.py): sizes read as people write them, `rm` and `gc`
remove only what biobench wrote and never a running run's files, and name what they refuse."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from biobench.cli import app
from biobench.results import tidy
from biobench.store import Store
from biobench.store.store import HOST
from biobench.training import checkpoint
from support.store import add_run, add_running


@pytest.mark.parametrize(
    ("size", "text"),
    [
        (0, "0 B"),
        (999, "999 B"),
        (1000, "1.0 kB"),
        (4_300_000, "4.3 MB"),
        (1_200_000_000, "1.2 GB"),
        (3_000_000_000_000, "3.0 TB"),
        (5 * 10**15, "5000.0 TB"),
    ],
)
def test_sizes_read_as_people_write_them(size: int, text: str) -> None:
    assert tidy.size_text(size) == text


def test_rm_and_gc_keep_a_link_and_a_folder_holding_files_biobench_did_not_write(
    tmp_path: Path,
) -> None:
    target = tmp_path / "someones-folder"
    target.mkdir()
    (target / checkpoint.FILE).write_bytes(b"x")
    link = tmp_path / "20260101-120000-bp-fc-synthetic-0000000a"
    link.symlink_to(target)
    dangling = tmp_path / "20260101-120000-bp-fc-synthetic-0000000b"
    dangling.symlink_to(tmp_path / "gone")
    for folder in (link, dangling):
        assert tidy.remove_folder(folder) == tidy.Removal(
            folder, "kept", why="not a folder biobench made"
        )
        assert folder.is_symlink()
    assert (target / checkpoint.FILE).read_bytes() == b"x"
    assert tidy.remove_folder(tmp_path / "never-made") == tidy.Removal(
        tmp_path / "never-made", "absent"
    )
    mixed = tmp_path / "20260101-120000-bp-fc-synthetic-0000000c"
    mixed.mkdir()
    (mixed / checkpoint.FILE).write_bytes(b"x")
    (mixed / "notes.txt").write_text("mine")
    assert tidy.remove_folder(mixed) == tidy.Removal(
        mixed, "kept", why="it holds 'notes.txt', which biobench did not write"
    )
    assert sorted(p.name for p in mixed.iterdir()) == [checkpoint.FILE, "notes.txt"]


def test_rm_names_an_unknown_id_and_removes_nothing(sqlite_store: Store) -> None:
    add_run(sqlite_store, [5.0])
    db = sqlite_store.url.render_as_string(hide_password=False)
    result = CliRunner().invoke(app, ["rm", "1", "7", "9", "--yes", "--db", db])
    assert result.exit_code == 2
    assert result.stderr == (
        f"error: no run with id 7 in {sqlite_store.display_url}; `biobench runs` lists them\n"
    )
    assert [run.id for run in sqlite_store.runs()] == [1]


def test_rm_refuses_a_running_run_and_names_its_process_only_when_known(
    sqlite_store: Store,
) -> None:
    db = sqlite_store.url.render_as_string(hide_password=False)
    for pid, host in ((None, HOST), (os.getpid(), None)):
        run_id = add_running(sqlite_store, pid, host)
        result = CliRunner().invoke(app, ["rm", str(run_id), "--yes", "--db", db])
        assert result.exit_code == 2 and result.stderr == (
            f"error: run {run_id} is still running; stop it first (Ctrl-C, or kill its "
            "process), then remove it\n"
        )
    assert len(sqlite_store.runs()) == 2

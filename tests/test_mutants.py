"""Tests for the gaps a mutation run (tools/mutation.sh) showed: each fails on a plausible
one-line bug (a mutant) in results/, store/records.py or training/checkpoint.py, asserting what a
user reads: a filter's rows, a status, a verdict on a checkpoint, a printed number.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import subprocess
import sys
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from biobench.cli import app
from biobench.errors import BiobenchError
from biobench.results import render, runs, tidy
from biobench.spec import RunSpec, canonical_hash, resolve
from biobench.store import RunRecord, RunStatus, Store
from biobench.store.store import HOST
from biobench.training import checkpoint
from biobench.training.sink import read_spool


def add_run(store: Store, errors: list[float], status: str = "finished", **spec_kw) -> int:
    """A run of `spec_kw` whose epochs have these test top-1 errors (no training)."""
    spec = resolve(**{"algorithm": "bp", "architecture": "fc", "dataset": "synthetic", **spec_kw})
    run_id = store.create_run(**spec.run_fields(), device="cpu", environment={})
    for epoch, error in enumerate(errors, 1):
        store.write_epoch(run_id, epoch, {"train_top1": error / 2, "test_top1": error})
    store.set_status(run_id, status)
    return run_id


@pytest.fixture
def store(sqlite_url: str) -> Store:
    return Store(sqlite_url)


def test_runs_filters_by_preset(store: Store) -> None:
    add_run(store, [5.0], algorithm="bp")
    add_run(store, [5.0], preset="mnist-fc-bp")
    frame = runs(store.url.render_as_string(hide_password=False), preset="mnist-fc-bp")
    assert list(frame["id"]) == [2] and list(frame["preset"]) == ["mnist-fc-bp"]


# -- store/records.py: each status reads back as itself; what ends a run and what resumes it ---


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def add_running(store: Store, pid: int | None, host: str | None = HOST) -> int:
    """A run that a process with this pid on this host is training (no epoch yet)."""
    spec = resolve(algorithm="bp", architecture="fc", dataset="synthetic")
    return store.create_run(**spec.run_fields(), device="cpu", environment={}, host=host, pid=pid)


ENDED = ("finished", "failed", "interrupted", "diverged")


def test_every_status_reads_back_and_filters_as_itself(store: Store) -> None:
    ids = {status: add_run(store, [5.0], status=status) for status in ENDED}
    ids["lost"] = add_running(store, dead_pid())  # its process died without a word
    ids["running"] = add_running(store, os.getpid())
    db = store.url.render_as_string(hide_password=False)
    for status, run_id in ids.items():
        frame = runs(db, status=status)
        assert list(frame["id"]) == [run_id] and list(frame["status"]) == [status], status
        assert str(store.run(run_id).status) == status
    # A run that ended has its end time (its duration stops); a running one has none yet.
    every = runs(db).set_index("status")
    assert every.loc[list(ENDED), "finished_at"].notna().all()
    assert every.loc[["running", "lost"], "finished_at"].isna().all()


def test_show_offers_to_resume_exactly_the_runs_that_can_continue(store: Store) -> None:
    ids = {status: add_run(store, [5.0], status=status) for status in ENDED}
    ids["lost"] = add_running(store, dead_pid())
    for status, run_id in ids.items():
        run = store.run(run_id)
        assert run.status == status
        shown = shown_text(render.run_detail(run, store.epochs([run_id])))
        offered = f"continue it with `biobench run --resume {run_id}`" in shown
        assert offered == (status in ("failed", "interrupted", "lost")), status


def shown_text(renderable: object) -> str:
    console = Console(width=200, record=True, file=io.StringIO())
    console.print(renderable)
    return console.export_text()


# -- training/checkpoint.py: which checkpoint a resume accepts ----------------------------------

CREATED = datetime(2026, 1, 1, tzinfo=timezone.utc)


def run_record(run_id: int, spec: RunSpec, epochs_done: int) -> RunRecord:
    return RunRecord(
        id=run_id,
        **spec.run_fields(),
        device="cpu",
        status=RunStatus.interrupted,
        error=None,
        created_at=CREATED,
        started_at=CREATED,
        finished_at=None,
        heartbeat_at=CREATED,
        host=None,
        git_sha=None,
        torch_version=None,
        biobench_version=None,
        environment={},
        checkpoint=None,
        epochs_done=epochs_done,
    )


def test_resume_accepts_the_runs_checkpoint_and_only_it(tmp_path: Path) -> None:
    spec = resolve(preset="mnist-fc-bp")
    run = run_record(7, spec, epochs_done=3)
    payload = {"run_id": 7, "spec_hash": spec.spec_hash(), "epoch": 3}
    checkpoint.check_belongs(payload, tmp_path, run)
    # Rows are written before the checkpoint: one row more than the checkpoint's epoch is the
    # run killed between the two, still resumable; two more, or one fewer, is not its checkpoint.
    checkpoint.check_belongs({**payload, "epoch": 2}, tmp_path, run)
    for epoch in (1, 4):
        with pytest.raises(BiobenchError, match=f"is at epoch {epoch} but run 7 has 3 epoch"):
            checkpoint.check_belongs({**payload, "epoch": epoch}, tmp_path, run)
    # Written before checkpoints named their run: no run_id, accepted by its spec and epoch.
    checkpoint.check_belongs({k: v for k, v in payload.items() if k != "run_id"}, tmp_path, run)
    with pytest.raises(BiobenchError, match="is run 8's, not run 7's; not resuming"):
        checkpoint.check_belongs({**payload, "run_id": 8}, tmp_path, run)
    other = resolve(preset="mnist-fc-bp", seed=1).spec_hash()
    with pytest.raises(BiobenchError, match="belongs to another spec; not resuming"):
        checkpoint.check_belongs({**payload, "spec_hash": other}, tmp_path, run)


def test_resume_accepts_a_checkpoint_hashed_before_presets_were_named_so(tmp_path: Path) -> None:
    # Runs recorded before schema 0003 hashed their spec with the preset under "benchmark".
    spec = resolve(preset="mnist-fc-bp")
    legacy = {("benchmark" if key == "preset" else key): v for key, v in spec.to_dict().items()}
    payload = {"run_id": 7, "spec_hash": canonical_hash(legacy), "epoch": 3}
    checkpoint.check_belongs(payload, tmp_path, run_record(7, spec, epochs_done=3))


# -- results/tidy.py: what rm and gc say and what they leave -------------------------------------


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


def test_rm_names_an_unknown_id_and_removes_nothing(store: Store) -> None:
    add_run(store, [5.0])
    db = store.url.render_as_string(hide_password=False)
    result = CliRunner().invoke(app, ["rm", "1", "7", "9", "--yes", "--db", db])
    assert result.exit_code == 2
    assert result.stderr == (
        f"error: no run with id 7 in {store.display_url}; `biobench runs` lists them\n"
    )
    assert [run.id for run in store.runs()] == [1]


def test_rm_refuses_a_running_run_and_names_its_process_only_when_known(store: Store) -> None:
    db = store.url.render_as_string(hide_password=False)
    for pid, host in ((None, HOST), (os.getpid(), None)):
        run_id = add_running(store, pid, host)
        result = CliRunner().invoke(app, ["rm", str(run_id), "--yes", "--db", db])
        assert result.exit_code == 2 and result.stderr == (
            f"error: run {run_id} is still running; stop it first (Ctrl-C, or kill its "
            "process), then remove it\n"
        )
    assert len(store.runs()) == 2


# -- results/render.py: what `runs`, `show` and `export` print, to the digit ---------------------


def test_durations_and_errors_read_to_the_digit() -> None:
    shown = [render.format_duration(s) for s in (None, 0, 59.4, 59.6, 125, 3599.6, 3725)]
    assert shown == ["-", "0s", "59s", "1m00s", "2m05s", "1h00m", "1h02m"]
    shown = [render.format_error(v) for v in (None, 7.126, 0.0, math.nan, math.inf)]
    assert shown == ["-", "7.13", "0.00", "nan", "inf"]


def test_the_epoch_table_shows_each_metric_to_its_digits() -> None:
    row = {
        "epoch": 4,
        "train_top1": 12.3456,
        "train_top5": 1.0,
        "train_loss": 0.123456,
        "test_top1": math.nan,
        "test_top5": None,
        "test_loss": math.inf,
        "wall_time": 12.34,
        "images_per_s": 12345.6,
    }
    (line,) = [x for x in shown_text(render.epochs_table([row])).splitlines() if "12,346" in x]
    assert line.split() == ["4", "12.35", "1.00", "0.1235", "nan", "-", "inf", "12.3", "12,346"]
    row.update(train_loss=None, wall_time=math.nan, images_per_s=0.4)
    (line,) = [x for x in shown_text(render.epochs_table([row])).splitlines() if "12.35" in x]
    assert line.split()[3:] == ["-", "nan", "-", "inf", "nan", "0"]


def test_show_says_why_a_run_failed_and_where_its_checkpoints_are(store: Store) -> None:
    run_id = add_run(store, [], status="failed")
    store.set_status(run_id, "failed", "CUDA out of memory")
    run = replace(store.run(run_id), checkpoint="/ckpt/run-1", environment={})
    shown = shown_text(render.run_detail(run, []))
    assert "error: CUDA out of memory" in shown and "no epoch finished yet" in shown
    assert "checkpoints: /ckpt/run-1\n" in shown  # kept: a failed run keeps its checkpoint
    finished = replace(run, status=RunStatus.finished, environment={"keep_checkpoint": "none"})
    assert "checkpoints: /ckpt/run-1 (deleted when the run finished: --keep-checkpoint none)" in (
        shown_text(render.run_detail(finished, []))
    )
    kept = replace(finished, environment={"keep_checkpoint": "last"})
    assert "checkpoints: /ckpt/run-1\n" in shown_text(render.run_detail(kept, []))


def test_exports_list_a_run_without_epochs_once_and_spell_nan_as_null(store: Store) -> None:
    first = add_run(store, [10.0, 8.0])
    store.write_epoch(first, 2, {"test_top1": 8.0, "test_loss": math.nan})
    empty = add_run(store, [], status="interrupted")
    runs_, epochs_ = [store.run(empty), store.run(first)], store.epochs()
    assert [run.epochs_done for run in runs_] == [0, 2]  # as `runs` and `show` print them
    table = list(csv.DictReader(io.StringIO(render.export_csv(runs_, epochs_))))
    assert [(row["run_id"], row["epoch"], row["test_top1"]) for row in table] == [
        (str(first), "1", "10.0"),
        (str(first), "2", "8.0"),
        (str(empty), "", ""),
    ]
    exported = json.loads(render.export_json(runs_, epochs_))["runs"]
    assert [run["id"] for run in exported] == [first, empty]
    assert [row["test_loss"] for row in exported[0]["epoch_rows"]] == [None, None]
    assert [row["test_top1"] for row in exported[0]["epoch_rows"]] == [10.0, 8.0]
    assert exported[1]["epoch_rows"] == [] and exported[1]["status"] == "interrupted"


def test_a_spool_file_may_end_a_run_only_with_a_status_that_ends_it(tmp_path: Path) -> None:
    spool = tmp_path / "pending.json"
    for status in (*ENDED, None):
        spool.write_text(
            json.dumps({"run_id": 1, "spec_hash": "ab", "epochs": {}, "status": status})
        )
        assert read_spool(spool) == (1, "ab", {}, status, None)
    for status in ("running", "lost"):
        spool.write_text(
            json.dumps({"run_id": 1, "spec_hash": "ab", "epochs": {}, "status": status})
        )
        with pytest.raises(BiobenchError, match=f"status '{status}' is not one of finished, "):
            read_spool(spool)

"""Never lose a result: checkpoints and exact resume, lost runs, divergence, out-of-memory,
the database going away mid-run, concurrent writers, and schema upgrades."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from biobench.cli import app
from biobench.errors import BiobenchError
from biobench.learners.bp import Backprop
from biobench.spec import resolve
from biobench.store import Store
from biobench.store.models import COST_COLUMNS
from biobench.training.loop import Reporter
from biobench.training.runner import execute
from biobench.training.sink import SPOOL
from support.faults import disk_full_in_torchs_zip_writer

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = Path(__file__).parents[1] / "support" / "fixtures" / "schema-0001.db"
TIMING = (*COST_COLUMNS, "recorded_at", "run_id")
runner = CliRunner()


def metrics(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in row.items() if k not in TIMING} for row in rows]


def train(url: str, epochs: int = 3, reporter: Reporter | None = None) -> int:
    spec = resolve(algorithm="bp", architecture="fc", dataset="synthetic", epochs=epochs)
    return execute(
        spec,
        store=Store(url),
        device=torch.device("cpu"),
        data_dir=Path("unused"),
        reporter=reporter,
    )


# -- kill -9 and resume ----------------------------------------------------------------------


def test_a_killed_run_is_lost_then_resumes_to_exactly_the_uninterrupted_metrics(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'results.db'}"
    env = {
        **os.environ,
        "BIOBENCH_DB": url,
        "BIOBENCH_HEARTBEAT": "0.2",
        "BIOBENCH_LOST_AFTER": "1.5",
        "BIOBENCH_HOME": str(tmp_path / "home"),
    }
    args = ["run", "--algo", "dtp", "--data", "synthetic", "--epochs", "4", "--device", "cpu",
            "--set", "mode=alternating", "--seed", "3", "--batch-size", "100"]  # fmt: skip
    process = subprocess.Popen(
        [sys.executable, "-m", "biobench", *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    store = None
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if (tmp_path / "results.db").exists():
            store = store or Store(url)
            runs = store.runs()
            if runs and runs[0].epochs_done >= 2:
                break
        time.sleep(0.05)
    assert store is not None and store.run(1).status == "running"
    process.send_signal(signal.SIGKILL)  # mid-epoch: no chance to say goodbye
    process.wait(timeout=30)
    # Its process is gone from this machine: lost at once, no waiting for the heartbeat.
    listing = runner.invoke(app, ["runs", "--db", url])
    assert "lost" in listing.stdout

    resumed = subprocess.run(
        [sys.executable, "-m", "biobench", "run", "--resume", "1", "--device", "cpu"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming at epoch" in resumed.stdout
    run = store.run(1)
    assert run.status == "finished" and run.epochs_done == 4

    whole = subprocess.run(
        [sys.executable, "-m", "biobench", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert whole.returncode == 0, whole.stderr
    assert metrics(store.epochs([1])) == metrics(store.epochs([2]))


@pytest.mark.parametrize(
    ("status", "message"),
    [("finished", "already finished"), ("running", "still running"), ("diverged", "diverged")],
)
def test_resume_refuses_runs_that_must_not_continue(
    sqlite_url: str, status: str, message: str
) -> None:
    run_id = train(sqlite_url, epochs=1)
    store = Store(sqlite_url)
    if status == "running":  # held by a live process on this machine (this one)
        assert store.take_lease(store.run(run_id), "another-writer", os.getpid())
    elif status != "finished":
        store.set_status(run_id, status)
    result = runner.invoke(app, ["run", "--resume", str(run_id), "--db", sqlite_url])
    assert result.exit_code == 2 and message in result.stderr


def test_resume_of_an_unknown_run_names_the_listing_command(sqlite_url: str) -> None:
    result = runner.invoke(app, ["run", "--resume", "77", "--db", sqlite_url])
    assert result.exit_code == 2 and "no run with id 77" in result.stderr


def test_resume_with_spec_options_is_refused(sqlite_url: str) -> None:
    result = runner.invoke(app, ["run", "--resume", "1", "--epochs", "9", "--db", sqlite_url])
    assert result.exit_code == 2 and "drop --epochs" in result.stderr


def test_a_checkpoint_that_is_not_plain_data_is_refused(sqlite_url: str) -> None:
    run_id = train(sqlite_url, epochs=2)
    store = Store(sqlite_url)
    store.set_status(run_id, "interrupted")
    # A pickle that would run code when unpickled: weights_only loading must refuse it.
    target = Path(store.run(run_id).checkpoint) / "last.pt"
    torch.save({"format": 1, "payload": subprocess.Popen}, target)
    result = runner.invoke(app, ["run", "--resume", str(run_id), "--db", sqlite_url])
    assert result.exit_code == 2 and "is unreadable" in result.stderr
    assert result.stderr.count("\n") == 1 and "weights_only" not in result.stderr


def test_a_checkpoint_of_another_shape_is_refused_and_the_run_stays_resumable(
    sqlite_url: str,
) -> None:
    run_id = train(sqlite_url, epochs=2)
    store = Store(sqlite_url)
    store.set_status(run_id, "interrupted")
    folder = Path(store.run(run_id).checkpoint)
    payload = torch.load(folder / "last.pt", weights_only=True)
    payload["learner"]["net"]["layers.0.op.weight"] = torch.zeros(256, 63)
    torch.save(payload, folder / "last.pt")
    result = runner.invoke(app, ["run", "--resume", str(run_id), "--db", sqlite_url])
    assert result.exit_code == 2, result.output
    assert result.stderr == (
        f"error: checkpoint in {folder} does not fit this run (learner.net.layers.0.op.weight "
        "is a float32 tensor of shape (256, 63), not a float32 tensor of shape (256, 64)); it "
        "cannot be resumed from\n"
    )
    assert store.run(run_id).status == "interrupted"


# -- divergence and out of memory --------------------------------------------------------------


def _poison_after(batches: int, exception: BaseException | None = None):
    calls: dict[int | str, int] = {}
    original = Backprop.train_step

    def train_step(self, x, y):
        # Counted per learner: the copies that count FLOPs and measure alignment step too.
        calls[id(self)] = calls.get(id(self), 0) + 1
        result = original(self, x, y)
        if calls[id(self)] == batches and "done" not in calls:  # one learner, once
            calls["done"] = 1
            if exception is not None:
                raise exception
            with torch.no_grad():
                self.net.layers[0].op.weight[0, 0] = float("nan")
        return result

    return train_step


def test_divergence_ends_the_run_as_diverged_and_keeps_its_rows(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Backprop, "train_step", _poison_after(32 + 5))  # during epoch 2
    run_id = train(sqlite_url, epochs=5)
    run = Store(sqlite_url).run(run_id)
    assert run.status == "diverged" and run.epochs_done == 2
    assert "diverged at epoch 2" in run.error
    last = Store(sqlite_url).epochs([run_id])[-1]
    assert last["test_loss"] != last["test_loss"]  # NaN, stored as such


def test_a_suite_goes_on_after_a_diverged_benchmark(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(Backprop, "train_step", _poison_after(3))
    result = runner.invoke(app, ["run", "--suite", "smoke", "--epochs", "1", "--db", sqlite_url])
    statuses = [run.status for run in reversed(Store(sqlite_url).runs())]
    assert (
        statuses[0] == "diverged"
        and len(statuses) == len(resolve_suite("smoke"))
        and "finished" in statuses
    )
    assert result.exit_code == 0, result.output  # a diverged run ended properly
    assert "diverged" in result.stdout


def resolve_suite(name: str) -> list[str]:
    from biobench.spec import load_presets

    return load_presets().suite(name)


def test_out_of_memory_names_the_batch_size_to_lower(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        Backprop, "train_step", _poison_after(2, torch.cuda.OutOfMemoryError("CUDA out of memory"))
    )
    result = runner.invoke(
        app, ["run", "--data", "synthetic", "--batch-size", "64", "--db", sqlite_url]
    )
    assert result.exit_code == 2
    assert "out of GPU memory with batch size 64; lower it, e.g. --batch-size 32" in result.stderr
    assert Store(sqlite_url).run(1).status == "failed"


def test_a_full_disk_during_a_checkpoint_is_one_line_and_the_run_resumes(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    saved = torch.save
    calls = []

    def full_at_the_second(payload: object, handle) -> None:
        calls.append(1)
        (saved if len(calls) == 1 else disk_full_in_torchs_zip_writer)(payload, handle)

    monkeypatch.setattr(torch, "save", full_at_the_second)
    args = ["run", "--data", "synthetic", "--epochs", "3", "--db", sqlite_url]
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    (line,) = result.stderr.splitlines()
    assert line.startswith("error: cannot write ") and line.endswith(
        "last.pt: No space left on device; free some space or pass --checkpoint-dir on "
        "another disk"
    )
    run = Store(sqlite_url).run(1)
    assert run.status == "failed" and run.epochs_done == 2
    monkeypatch.setattr(torch, "save", saved)
    resumed = runner.invoke(app, ["run", "--resume", "1", "--db", sqlite_url])
    assert resumed.exit_code == 0, resumed.output
    assert Store(sqlite_url).run(1).status == "finished"


@pytest.mark.parametrize("where", ["no-such-folder/run-id", "a-folder"])
def test_a_run_id_file_that_cannot_be_written_is_refused_before_the_run_exists(
    sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    (tmp_path / "a-folder").mkdir()
    note = tmp_path / where
    monkeypatch.setenv("BIOBENCH_RUN_ID_FILE", str(note))
    checkpoints = tmp_path / "checkpoints"
    args = ["run", "--data", "synthetic", "--epochs", "1", "--db", sqlite_url]
    result = runner.invoke(app, [*args, "--checkpoint-dir", str(checkpoints)])
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith(f"error: cannot write the run id to {note} (")
    assert result.stderr.endswith("; point it at a writable file\n")
    assert Store(sqlite_url).runs() == [] and not checkpoints.exists()
    writable = tmp_path / "run-id"
    monkeypatch.setenv("BIOBENCH_RUN_ID_FILE", str(writable))
    assert runner.invoke(app, args).exit_code == 0
    assert writable.read_text() == "1"


# -- the database going away ---------------------------------------------------------------------


@pytest.fixture
def private_postgres() -> tuple[str, str]:
    """A PostgreSQL server of this test's own, which it may stop and start."""
    if shutil.which("initdb") is None and not Path("/usr/lib/postgresql/15/bin/initdb").exists():
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL 15 (initdb) is needed for the fault tests")
        pytest.skip("PostgreSQL's initdb is not installed")
    out = subprocess.run(
        ["bash", str(ROOT / ".ci" / "postgres"), "start"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    values = dict(line.removeprefix("export ").split("=", 1) for line in out.splitlines())
    yield values["BIOBENCH_TEST_POSTGRES_URL"], values["PGSTOP_DIR"]
    subprocess.run(
        ["bash", str(ROOT / ".ci" / "postgres"), "stop", values["PGSTOP_DIR"]], check=False
    )


def server(action: str, folder: str) -> None:
    subprocess.run(["bash", str(ROOT / ".ci" / "postgres"), action, folder], check=True)


class Outage(Reporter):
    """Stops the database after epoch `down`, starts it again after epoch `up` (if any)."""

    def __init__(self, folder: str, down: int, up: int | None) -> None:
        self.folder, self.down, self.up = folder, down, up

    def epoch_done(self, epoch: int, epochs: int, row: dict[str, float]) -> None:
        if epoch == self.down:
            server("pause", self.folder)
        if epoch == self.up:
            server("resume", self.folder)


def test_training_goes_on_while_the_database_is_down_and_rows_arrive_once(
    private_postgres: tuple[str, str],
) -> None:
    url, folder = private_postgres
    run_id = train(url, epochs=5, reporter=Outage(folder, down=1, up=3))
    store = Store(url)
    assert [row["epoch"] for row in store.epochs([run_id])] == [1, 2, 3, 4, 5]
    assert store.run(run_id).status == "finished"


def test_a_database_that_never_returns_leaves_a_file_to_import(
    private_postgres: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, folder = private_postgres
    monkeypatch.setenv("BIOBENCH_DB_WAIT", "1")
    with pytest.raises(BiobenchError, match="biobench import .*pending.json") as caught:
        train(url, epochs=3, reporter=Outage(folder, down=1, up=None))
    spool = Path(str(caught.value).split("`biobench import ")[1].split(" ")[0])
    assert spool.exists()
    server("resume", folder)
    result = runner.invoke(app, ["import", str(spool), "--db", url])
    assert result.exit_code == 0, result.output
    (run,) = Store(url).runs()
    assert run.status == "finished" and run.epochs_done == 3


class SwapDatabase(Reporter):
    """After epoch 1, moves the run's database away (its WAL files too), then puts another
    database at its path (`replace`) or leaves none (`delete`)."""

    def __init__(self, path: Path, aside: Path, other: Path | None) -> None:
        self.path, self.aside, self.other = path, aside, other

    def epoch_done(self, epoch: int, epochs: int, row: dict[str, float]) -> None:
        if epoch == 1:
            for suffix in ("", "-wal", "-shm"):
                moved = Path(f"{self.path}{suffix}")
                if moved.exists():
                    os.replace(moved, f"{self.aside}{suffix}")
            if self.other is not None:
                shutil.copy(self.other, self.path)


@pytest.mark.parametrize("how", ["replace", "delete"])
def test_a_database_file_replaced_or_deleted_mid_run_keeps_every_row_and_the_checkpoint(
    tmp_path: Path, how: str
) -> None:
    other = tmp_path / "other.db"
    train(f"sqlite:///{other}", epochs=1)  # another database, whose run 1 is finished
    with closing(sqlite3.connect(other)) as connection:  # all of it in the one file
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    before = Store(f"sqlite:///{other}").epochs()
    path, aside = tmp_path / "results.db", tmp_path / "aside.db"
    url = f"sqlite:///{path}"
    swap = SwapDatabase(path, aside, other if how == "replace" else None)
    with pytest.raises(BiobenchError) as caught:
        train(url, epochs=3, reporter=swap)
    message = str(caught.value)
    spool = Path(message.split("`biobench import ")[1].split(" ")[0])
    assert message == (
        f"the database file {path} is no longer the one biobench opened (it was deleted or "
        f"replaced): run 1 stops, its 2 epoch row(s) and its end (failed) kept in {spool} and "
        f"its checkpoint beside it; with the run's database back in place, run `biobench "
        f"import {spool} --db URL`"
    )
    saved = json.loads(spool.read_text())
    assert sorted(saved["epochs"]) == ["1", "2"] and saved["status"] == "failed"
    assert (spool.parent / "last.pt").exists()
    if how == "replace":  # the other database is as it was
        replaced = Store(url)
        assert replaced.epochs() == before and replaced.run(1).status == "finished"
        replaced.dispose()
    for suffix in ("", "-wal", "-shm"):  # the run's database back in place
        Path(f"{path}{suffix}").unlink(missing_ok=True)
        if Path(f"{aside}{suffix}").exists():
            os.replace(f"{aside}{suffix}", f"{path}{suffix}")
    assert runner.invoke(app, ["import", str(spool), "--db", url]).exit_code == 0
    resumed = runner.invoke(app, ["run", "--resume", "1", "--db", url])
    assert resumed.exit_code == 0, resumed.output
    store = Store(url)
    assert [row["epoch"] for row in store.epochs([1])] == [1, 2, 3]
    assert store.run(1).status == "finished"


def test_a_run_whose_row_is_deleted_mid_run_stops_and_keeps_its_rows(sqlite_url: str) -> None:
    class DeleteTheRun(Reporter):
        def epoch_done(self, epoch: int, epochs: int, row: dict[str, float]) -> None:
            if epoch == 1:
                Store(sqlite_url).delete_runs([1])

    with pytest.raises(BiobenchError, match="^run 1 was deleted from the database while it"):
        train(sqlite_url, epochs=3, reporter=DeleteTheRun())


# -- migrations ----------------------------------------------------------------------------------


def test_a_database_at_the_first_schema_upgrades_with_its_data_intact(tmp_path: Path) -> None:
    copy = tmp_path / "old.db"
    shutil.copy(FIXTURE, copy)
    url = f"sqlite:///{copy}"
    refused = runner.invoke(app, ["runs", "--db", url])
    assert refused.exit_code == 2 and "run `biobench db upgrade" in refused.stderr
    assert runner.invoke(app, ["db", "upgrade", "--db", url]).exit_code == 0
    store = Store(url)
    runs = {run.id: run for run in store.runs()}
    assert {i: (r.algorithm, r.status, r.epochs_done) for i, r in runs.items()} == {
        1: ("bp", "finished", 2),
        2: ("dtp", "interrupted", 1),
    }
    assert [row["test_top1"] for row in store.epochs([1])] == [12.0, 6.0]
    assert runs[1].checkpoint is None  # the new column, empty for old runs
    assert runs[1].preset is None and "preset" not in runs[1].spec  # 0003 left them alone


def test_migration_0003_renames_benchmark_to_preset_and_rehashes_the_spec(
    tmp_path: Path,
) -> None:
    from alembic import command
    from sqlalchemy import text

    from biobench.spec import canonical_hash

    url = f"sqlite:///{tmp_path / 'old.db'}"
    old = Store(url, check=False)
    spec = {"algorithm": "bp", "benchmark": "smoke-digits-fc-bp", "seed": 0}
    with old._write_engine.begin() as connection:
        command.upgrade(old.alembic_config(connection), "0002")
        connection.execute(
            text(
                "INSERT INTO runs (id, spec_hash, benchmark, algorithm, architecture, dataset,"
                " hparams, spec, seed, epochs, batch_size, device, status, created_at,"
                " environment) VALUES (1, :hash, 'smoke-digits-fc-bp', 'bp', 'fc', 'digits',"
                " '{}', :spec, 0, 6, 32, 'cpu', 'finished', '2026-11-28 10:00:00', '{}')"
            ),
            {"hash": canonical_hash(spec), "spec": json.dumps(spec)},
        )
    old.dispose()
    assert runner.invoke(app, ["db", "upgrade", "--db", url]).exit_code == 0
    run = Store(url).run(1)
    assert run.preset == "smoke-digits-fc-bp"
    assert run.spec == {"algorithm": "bp", "preset": "smoke-digits-fc-bp", "seed": 0}
    assert run.spec_hash == canonical_hash(run.spec)


def test_the_migrations_build_exactly_the_models(db_url: str) -> None:
    from alembic.autogenerate import compare_metadata

    from biobench.store.models import Base
    from biobench.store.versions import version_context

    store = Store(db_url)
    with store._read_engine.connect() as connection:
        assert compare_metadata(version_context(connection), Base.metadata) == []


def test_passwords_never_reach_stored_run_rows(sqlite_url: str, monkeypatch) -> None:
    monkeypatch.setattr(sys, "argv", ["biobench", "run", "--db", "postgresql://u:hunter2@h/db"])
    run_id = train(sqlite_url, epochs=1)
    assert "hunter2" not in str(Store(sqlite_url).run(run_id))


def test_resume_first_delivers_rows_the_database_missed(sqlite_url: str) -> None:
    run_id = train(sqlite_url, epochs=2)
    store = Store(sqlite_url)
    folder = Path(store.run(run_id).checkpoint)
    rows = store.epochs([run_id])
    # As if the process had died with epoch 2 checkpointed but its row only in the spool file.
    (folder / SPOOL).write_text(
        json.dumps(
            {
                "run_id": run_id,
                "spec_hash": store.run(run_id).spec_hash,
                "epochs": {"2": {k: rows[1][k] for k in ("train_top1", "test_top1", "test_loss")}},
                "status": None,
                "error": None,
            }
        )
    )
    with store._write_engine.begin() as connection:
        connection.exec_driver_sql(f"DELETE FROM epochs WHERE run_id = {run_id} AND epoch = 2")
    store.set_status(run_id, "interrupted")
    result = runner.invoke(app, ["run", "--resume", str(run_id), "--db", sqlite_url])
    assert result.exit_code == 0, result.output
    assert [r["epoch"] for r in store.epochs([run_id])] == [1, 2]
    assert not (folder / SPOOL).exists()


def test_resume_of_a_run_whose_spool_holds_its_end_imports_it_and_stops(
    sqlite_url: str,
) -> None:
    run_id = train(sqlite_url, epochs=2)
    store = Store(sqlite_url)
    run = store.run(run_id)
    spool = Path(run.checkpoint) / SPOOL
    content = {"run_id": run_id, "spec_hash": run.spec_hash, "epochs": {}, "status": "finished"}
    spool.write_text(json.dumps(content))
    store.set_status(run_id, "interrupted")  # as if the database missed the run's end
    result = runner.invoke(app, ["run", "--resume", str(run_id), "--db", sqlite_url])
    assert result.exit_code == 2, result.output
    assert result.stderr == (
        f"error: run {run_id} has finished (the rows and status in {spool} were imported); "
        "there is nothing to resume\n"
    )
    assert store.run(run_id).status == "finished" and not spool.exists()


def test_a_checkpoint_copied_from_another_run_is_refused(sqlite_url: str) -> None:
    first, second = train(sqlite_url), train(sqlite_url)  # the same spec
    store = Store(sqlite_url)
    copied = Path(store.run(first).checkpoint) / "last.pt"
    shutil.copy(copied, Path(store.run(second).checkpoint) / "last.pt")
    store.set_status(second, "interrupted")
    result = runner.invoke(app, ["run", "--resume", str(second), "--db", sqlite_url])
    assert result.exit_code == 2
    assert f"is run {first}'s, not run {second}'s; not resuming" in result.stderr


def test_a_checkpoint_whose_epoch_does_not_meet_the_rows_is_refused(sqlite_url: str) -> None:
    run_id = train(sqlite_url)
    store = Store(sqlite_url)
    target = Path(store.run(run_id).checkpoint) / "last.pt"
    payload = torch.load(target, weights_only=True)
    del payload["run_id"]  # as written before checkpoints named their run
    payload["epoch"] = 1  # an older checkpoint, while the rows reach epoch 3
    torch.save(payload, target)
    store.set_status(run_id, "interrupted")
    result = runner.invoke(app, ["run", "--resume", str(run_id), "--db", sqlite_url])
    assert result.exit_code == 2
    assert "is at epoch 1 but run 1 has 3 epoch row(s)" in result.stderr
    assert store.run(run_id).epochs_done == 3 and store.run(run_id).status == "interrupted"


@pytest.mark.parametrize("rows", [1, 2])
def test_a_run_killed_before_its_first_checkpoint_starts_over_and_a_later_one_is_refused(
    sqlite_url: str, rows: int
) -> None:
    from sqlalchemy import text

    run_id = train(sqlite_url)
    store = Store(sqlite_url)
    uninterrupted = metrics(store.epochs([run_id]))
    for saved in Path(store.run(run_id).checkpoint).glob("*.pt"):
        saved.unlink()  # as a kill between epoch 1's row and its checkpoint leaves it (rows=1)
    with store._write_engine.begin() as connection:
        connection.execute(
            text("DELETE FROM epochs WHERE run_id = :run AND epoch > :rows"),
            {"run": run_id, "rows": rows},
        )
    store.set_status(run_id, "interrupted")
    result = runner.invoke(app, ["run", "--resume", str(run_id), "--db", sqlite_url])
    if rows == 1:  # nothing learned is lost: epoch 1 is trained again from the seed
        assert result.exit_code == 0, result.stderr
        assert metrics(store.epochs([run_id])) == uninterrupted
        assert store.run(run_id).status == "finished"
    else:  # two epochs of training gone: not resumable exactly
        assert result.exit_code == 2
        assert f"run {run_id} has 2 epoch(s) but no checkpoint" in result.stderr


def test_a_run_on_another_host_is_lost_only_when_its_heartbeat_is_stale(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sqlalchemy import text

    store = Store(sqlite_url)
    run_id = store.create_run(
        spec_hash="0" * 64, algorithm="bp", architecture="fc", dataset="digits", hparams={},
        spec={}, seed=0, epochs=1, batch_size=1, device="cpu", environment={},
        host="elsewhere", pid=1_999_999_999, owner="x",
    )  # fmt: skip
    assert store.run(run_id).status == "running"  # its pid means nothing on this machine
    with store._write_engine.begin() as connection:
        connection.execute(text("UPDATE runs SET heartbeat_at = '2000-01-01 00:00:00'"))
    assert store.run(run_id).status == "lost"

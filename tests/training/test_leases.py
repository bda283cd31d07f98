"""One process writes a run, ever: the lease, and what a resume remembers and refuses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from biobench.cli import app
from biobench.errors import BiobenchError, LeaseLost
from biobench.spec import resolve
from biobench.store import RunStatus, Store
from biobench.training.loop import Reporter
from biobench.training.runner import execute
from biobench.training.sink import SPOOL, EpochSink
from support.data import make_mnist

runner = CliRunner()


def train(url: str, epochs: int = 2, reporter: Reporter | None = None) -> int:
    spec = resolve(algorithm="bp", architecture="fc", dataset="synthetic", epochs=epochs)
    return execute(
        spec, store=Store(url), device=torch.device("cpu"), data_dir=Path("x"), reporter=reporter
    )


class TakeOver(Reporter):
    """Another process takes the run's lease after epoch 1 (a resume elsewhere)."""

    def __init__(self, url: str) -> None:
        self.store = Store(url)

    def run_started(self, run_id, spec, parameters, first_epoch, device) -> None:  # noqa: ANN001
        self.run_id = run_id

    def epoch_done(self, epoch: int, epochs: int, row: dict[str, float]) -> None:
        if epoch == 1:
            run = self.store.run(self.run_id)
            assert self.store.take_lease(run, "the-other-process", 1)


def test_a_process_that_lost_its_lease_stops_without_writing(sqlite_url: str) -> None:
    with pytest.raises(LeaseLost, match="taken over by another process"):
        train(sqlite_url, epochs=3, reporter=TakeOver(sqlite_url))
    store = Store(sqlite_url)
    (run,) = store.runs()
    assert [row["epoch"] for row in store.epochs([run.id])] == [1]  # epoch 2 was never written
    assert (run.owner, run.status, run.error) == ("the-other-process", "running", None)


def test_writes_and_status_need_the_lease(db_url: str) -> None:
    run_id = train(db_url, epochs=1)
    store = Store(db_url)
    owner = store.run(run_id).owner
    assert owner and store.take_lease(store.run(run_id), "new-owner", os.getpid())
    sink = EpochSink(store, run_id, Path("/nonexistent") / SPOOL, "h", owner)
    with pytest.raises(LeaseLost):
        sink.write(2, {"test_top1": 1.0})
    with pytest.raises(LeaseLost):
        store.set_status(run_id, "finished", owner=owner)
    assert [row["epoch"] for row in store.epochs([run_id])] == [1]
    assert store.run(run_id).status == "running"


def test_of_two_processes_taking_one_lease_one_wins(db_url: str) -> None:
    run_id = train(db_url, epochs=1)
    store = Store(db_url)
    store.set_status(run_id, "interrupted")
    seen = store.run(run_id)  # both read the same state, then race
    assert store.take_lease(seen, "first", os.getpid())
    assert not store.take_lease(seen, "second", os.getpid())
    assert store.run(run_id).owner == "first"


def test_three_resumes_at_once_one_runs_the_others_are_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'results.db'}"
    env = {**os.environ, "BIOBENCH_DB": url, "BIOBENCH_HOME": str(tmp_path / "home")}
    run_id = train(url, epochs=1)
    store = Store(url)
    store.set_status(run_id, "interrupted")
    command = [sys.executable, "-m", "biobench", "run", "--resume", str(run_id)]
    processes = [
        subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(3)
    ]
    results = [(p.wait(timeout=300), p.stderr.read()) for p in processes]
    assert sorted(code for code, _ in results) == [0, 2, 2], results
    for code, stderr in results:
        if code == 2:
            assert "is being resumed by another process" in stderr or "still running" in stderr, (
                stderr
            )
    assert store.run(run_id).status == "finished"
    assert [row["epoch"] for row in store.epochs([run_id])] == [1]


def test_resume_finds_the_data_and_checkpoints_where_the_run_left_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = make_mnist(tmp_path / "elsewhere", n_train=40, n_test=20)
    url = f"sqlite:///{tmp_path / 'results.db'}"
    monkeypatch.chdir(tmp_path)
    started = runner.invoke(
        app,
        ["run", "--data", "mnist", "--data-dir", str(data), "--epochs", "1",
         "--checkpoint-dir", "ckpt", "--batch-size", "20", "--keep-checkpoint", "last",
         "--db", url],
    )  # fmt: skip
    assert started.exit_code == 0, started.output
    store = Store(url)
    run = store.run(1)
    assert Path(run.checkpoint).is_absolute() and run.environment["data_dir"] == str(data)
    store.set_status(1, "interrupted")
    monkeypatch.chdir(tmp_path / "elsewhere")  # neither relative path would resolve here
    resumed = runner.invoke(app, ["run", "--resume", "1", "--db", url])
    assert resumed.exit_code == 0, resumed.output
    assert store.run(1).status == "finished"


@pytest.mark.parametrize(
    ("option", "flag"),
    [
        (["--epochs", "0"], "--epochs"),
        (["--seed", "0"], "--seed"),
        (["--seeds", "0,1"], "--seeds"),
        (["--set", "lr=1e-3"], "--set"),
        (["--preset", "smoke-digits-fc-bp"], "--preset"),
    ],
)
def test_resume_refuses_every_spec_option_even_a_falsy_one(
    sqlite_url: str, option: list[str], flag: str
) -> None:
    result = runner.invoke(app, ["run", "--resume", "1", *option, "--db", sqlite_url])
    assert result.exit_code == 2
    assert f"--resume continues a run with its own spec; drop {flag}" in result.stderr


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ({"status": "running"}, "status 'running' is not one of"),
        ({"status": "done"}, "status 'done' is not one of"),
        ({"epochs": {"-1": {}}}, "epoch '-1' is not an epoch number"),
        ({"epochs": {"99999999999999999999": {}}}, "is not an epoch number"),
        ({"epochs": [1, 2]}, "epochs is not a mapping"),
        ({"epochs": {"2": None}}, "epoch 2 must map metric names"),
        ({"epochs": {"2": {"accuracy": 1}}}, "epoch 2 must map metric names"),
        ({"epochs": {"2": {"test_top1": "high"}}}, "epoch 2 test_top1 is 'high'"),
        ({"extra": 1}, "its keys must be run_id, spec_hash, epochs (and status, error)"),
    ],
)
def test_import_validates_the_whole_file_before_writing(
    sqlite_url: str, tmp_path: Path, content: dict, problem: str
) -> None:
    run_id = train(sqlite_url, epochs=1)
    store = Store(sqlite_url)
    store.set_status(run_id, "interrupted")
    spool = {
        "run_id": run_id,
        "spec_hash": store.run(run_id).spec_hash,
        "epochs": {"2": {"test_top1": 50.0}},  # a good row first: it must not land either
        "status": "failed",
        "error": None,
        **content,
    }
    path = tmp_path / "pending.json"
    path.write_text(json.dumps(spool))
    result = runner.invoke(app, ["import", str(path), "--db", sqlite_url])
    assert result.exit_code == 2 and problem in result.stderr, result.stderr
    assert "nothing imported" in result.stderr
    assert [row["epoch"] for row in store.epochs([run_id])] == [1]
    assert store.run(run_id).status == "interrupted"


@pytest.mark.parametrize("name", ["BIOBENCH_HEARTBEAT", "BIOBENCH_LOST_AFTER", "BIOBENCH_DB_WAIT"])
def test_a_seconds_variable_that_is_not_a_number_is_one_line(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    monkeypatch.setenv(name, "soon")
    result = runner.invoke(app, ["runs", "--db", sqlite_url])
    assert result.exit_code == 2
    default = {"BIOBENCH_HEARTBEAT": 60, "BIOBENCH_LOST_AFTER": 300, "BIOBENCH_DB_WAIT": 120}
    assert result.stderr.strip() == (
        f"error: {name}='soon' is not a number of seconds; set it to e.g. {default[name]}, "
        "or unset it"
    )


def test_ctrl_c_while_waiting_for_the_database_keeps_rows_and_status(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    # A real PostgreSQL URL on a port where nothing listens: every write fails to connect.
    store = Store("postgresql://u:secret@127.0.0.1:9/nowhere", check=False)
    spool = tmp_path / SPOOL
    sink = EpochSink(store, 7, spool, "hash", "owner")
    sink.write(1, {"test_top1": 3.0})

    def interrupt(seconds: float) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("biobench.retry.time.sleep", interrupt)
    with pytest.raises(BiobenchError, match="biobench import"):
        sink.close(RunStatus.finished)
    saved = json.loads(spool.read_text())
    assert saved["status"] == "interrupted" and list(saved["epochs"]) == ["1"]
    assert "waiting up to 120 s for the database" in capsys.readouterr().err


def test_a_checkpoint_without_its_keys_is_one_line(sqlite_url: str) -> None:
    run_id = train(sqlite_url, epochs=1)
    store = Store(sqlite_url)
    target = Path(store.run(run_id).checkpoint) / "last.pt"
    torch.save({"format": 1, "epoch": 1}, target)
    store.set_status(run_id, "interrupted")
    result = runner.invoke(app, ["run", "--resume", str(run_id), "--db", sqlite_url])
    assert result.exit_code == 2
    assert "lacks spec_hash, learner, rng, generator; it cannot be resumed from" in result.stderr
    assert store.run(run_id).status == "interrupted"

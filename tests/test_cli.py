"""The command line, driven through typer's CliRunner as a user would type it."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from biobench.cli import app
from biobench.learners.bp import Backprop
from biobench.store import Store

runner = CliRunner()
METRICS = ("train_top1", "train_top5", "test_top1", "test_top5")


def invoke(*args: str):
    return runner.invoke(app, list(args))


def train(db: str, *extra: str) -> None:
    result = invoke("run", "--data", "synthetic", "--epochs", "2", "--db", db, *extra)
    assert result.exit_code == 0, result.output


def test_mnist_end_to_end_streams_epochs_into_the_database(mnist_dir: Path, db_url: str) -> None:
    result = invoke(
        "run",
        "--algo",
        "bp",
        "--arch",
        "fc",
        "--data",
        "mnist",
        "--data-dir",
        str(mnist_dir),
        "--epochs",
        "2",
        "--batch-size",
        "32",
        "--device",
        "cpu",
        "--db",
        db_url,
    )
    assert result.exit_code == 0, result.output
    assert "epoch 2/2" in result.stdout and "finished" in result.stdout
    store = Store(db_url)
    (run,) = store.runs()
    assert (run.status, run.algorithm, run.dataset, run.epochs) == (
        "finished",
        "bp",
        "mnist",
        2,
    )
    assert run.spec["batch_size"] == 32 and run.spec_hash and run.environment["torch"]
    rows = store.epochs([run.id])
    assert [row["epoch"] for row in rows] == [1, 2]
    for row in rows:
        assert all(0.0 <= row[key] <= 100.0 for key in METRICS)
        assert row["train_top5"] <= row["train_top1"] and row["images_per_s"] > 0
        assert row["wall_time"] > 0 and row["test_loss"] > 0


def test_runs_show_and_export_agree_with_the_database(sqlite_url: str, tmp_path: Path) -> None:
    train(sqlite_url)
    train(sqlite_url, "--seed", "3", "--set", "lr=0.002")
    store = Store(sqlite_url)
    runs = {run.id: run for run in store.runs()}
    epochs = store.epochs()

    listing = invoke("runs", "--db", sqlite_url)
    assert listing.exit_code == 0
    for run in runs.values():
        assert f"{run.best_test_top1:.2f}" in listing.stdout
    assert listing.stdout.count("finished") == 2 and "2/2" in listing.stdout

    shown = invoke("show", "2", "--db", sqlite_url)
    assert shown.exit_code == 0
    assert '"lr": 0.002' in shown.stdout and runs[2].spec_hash[:20] in shown.stdout
    for row in (r for r in epochs if r["run_id"] == 2):
        assert f"{row['test_top1']:.2f}" in shown.stdout

    out = tmp_path / "export" / "all.csv"
    assert (
        invoke("export", "--format", "csv", "--out", str(out), "--db", sqlite_url).exit_code == 0
    )
    table = list(csv.DictReader(out.open()))
    assert len(table) == len(epochs) == 4
    for line in table:
        stored = next(
            r
            for r in epochs
            if r["run_id"] == int(line["run_id"]) and r["epoch"] == int(line["epoch"])
        )
        assert float(line["test_top1"]) == pytest.approx(stored["test_top1"])
        assert line["algorithm"] == "bp" and line["status"] == "finished"

    exported = json.loads(invoke("export", "--format", "json", "--db", sqlite_url).stdout)
    assert [run["id"] for run in exported["runs"]] == [1, 2]
    assert exported["runs"][1]["hparams"]["lr"] == 0.002
    assert [e["test_top1"] for e in exported["runs"][0]["epochs"]] == [
        r["test_top1"] for r in epochs if r["run_id"] == 1
    ]

    only = invoke("export", "--run", "2", "--db", sqlite_url).stdout
    assert {row["run_id"] for row in csv.DictReader(io.StringIO(only))} == {"2"}


def test_db_current_and_upgrade(sqlite_url: str) -> None:
    fresh = invoke("db", "current", "--db", sqlite_url)
    assert fresh.exit_code == 0 and "(none)" in fresh.stdout
    head = Store(sqlite_url, check=False).head_revision()
    upgraded = invoke("db", "upgrade", "--db", sqlite_url)
    assert upgraded.exit_code == 0 and f"(empty) -> {head}" in upgraded.stdout
    assert "up to date" in invoke("db", "current", "--db", sqlite_url).stdout
    assert f"already at schema {head}" in invoke("db", "upgrade", "--db", sqlite_url).stdout


def test_the_default_database_lives_in_biobench_home(tmp_path: Path) -> None:
    train_default = invoke("run", "--data", "synthetic", "--epochs", "1")
    assert train_default.exit_code == 0, train_default.output
    assert (tmp_path / "home" / "results.db").exists()  # BIOBENCH_HOME, set by conftest
    assert "1/1" in invoke("runs").stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["run", "--algo", "dtpp"],
            "unknown algorithm 'dtpp'; choose one of: ao-sdtp, bp, dfa, dtp, ",
        ),
        (["run", "--arch", "resnet"], "architecture 'resnet'; choose one of: conv, fc, lc"),
        (["run", "--data", "cifar"], "dataset 'cifar'; choose one of: cifar10, digits"),
        (["run", "--device", "tpu"], "unknown device 'tpu'; choose one of: auto, cpu, cuda"),
        (["run", "--set", "lr=fast"], "lr='fast' is not a float"),
        (["run", "--set", "momentum=0.9"], "bp has no hyperparameter 'momentum'"),
        (["run", "--epochs", "0"], "--epochs must be > 0"),
        (["run", "--batch-size", "0"], "--batch-size must be > 0"),
        (
            ["run", "--data", "mnist", "--data-dir", "/nonexistent/mnist"],
            "MNIST not found: expected /nonexistent/mnist/MNIST/raw/train-images-idx3-ubyte",
        ),
        (
            ["runs", "--db", "postgresql://alice:hunter2@127.0.0.1:1/results"],
            "cannot reach database postgresql+psycopg://alice:***@127.0.0.1:1/results",
        ),
        (
            ["run", "--db", "postgresql://alice:hunter2@127.0.0.1:1/results"],
            "cannot reach database",
        ),
        (["runs", "--db", "mysqll://alice:hunter2@host/db"], "unknown database scheme 'mysqll'"),
        (["show", "42"], "no run with id 42"),
        (["export", "--run", "42"], "no run with id 42"),
    ],
)
def test_bad_input_gets_one_line_and_a_nonzero_exit(args: list[str], message: str) -> None:
    result = invoke(*args)
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1
    assert "Traceback" not in result.output and "hunter2" not in result.output


def test_bad_input_leaves_the_database_as_it_was(sqlite_url: str) -> None:
    train(sqlite_url)
    before = Store(sqlite_url).runs()
    assert (
        invoke("run", "--data", "mnist", "--data-dir", "/none", "--db", sqlite_url).exit_code == 2
    )
    assert invoke("run", "--set", "lr=-1", "--db", sqlite_url).exit_code == 2
    assert Store(sqlite_url).runs() == before


def test_debug_shows_the_traceback() -> None:
    result = invoke("--debug", "run", "--algo", "dtpp")
    assert result.exit_code != 0 and result.exception is not None
    assert "dtpp" in str(result.exception)


def _raise_on_second_step(exception: BaseException):
    calls = {"n": 0}
    original = Backprop.train_step

    def train_step(self, x, y):
        calls["n"] += 1
        if calls["n"] == 2 + 32:  # during the second epoch of synthetic/32 (32 batches each)
            raise exception
        return original(self, x, y)

    return train_step


@pytest.mark.parametrize(
    ("exception", "status", "code", "line"),
    [
        (KeyboardInterrupt(), "interrupted", 130, "error: interrupted"),
        (RuntimeError("exploded"), "failed", 1, "internal error: RuntimeError: exploded"),
    ],
)
def test_a_run_that_stops_early_is_never_left_running(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch, exception, status, code, line
) -> None:
    monkeypatch.setattr(Backprop, "train_step", _raise_on_second_step(exception))
    result = invoke("run", "--data", "synthetic", "--epochs", "3", "--db", sqlite_url)
    assert result.exit_code == code and line in result.stderr
    (run,) = Store(sqlite_url).runs()
    assert run.status == status and run.finished_at is not None
    assert run.epochs_done == 1  # the finished epoch is kept
    assert "biobench run --resume 1" in invoke("show", "1", "--db", sqlite_url).stdout
    if status == "failed":
        assert run.error == "RuntimeError: exploded"


def test_several_seeds_give_a_mean_and_std(sqlite_url: str) -> None:
    result = invoke(
        "run", "--data", "synthetic", "--epochs", "1", "--seeds", "0,1,2", "--db", sqlite_url
    )
    assert result.exit_code == 0, result.output
    assert sorted(run.seed for run in Store(sqlite_url).runs()) == [0, 1, 2]
    assert "(n=3)" in result.stdout  # the comparison printed at the end averages the seeds


def test_runs_can_be_filtered(sqlite_url: str) -> None:
    train(sqlite_url)
    train(sqlite_url, "--algo", "fa")
    only_fa = invoke("runs", "--algo", "fa", "--db", sqlite_url).stdout
    assert " fa " in only_fa and " bp " not in only_fa
    assert "no run matches" in invoke("runs", "--status", "failed", "--db", sqlite_url).stdout
    assert invoke("runs", "--status", "done", "--db", sqlite_url).exit_code == 2
    store = Store(sqlite_url)
    assert [r.algorithm for r in store.runs(status="finished", limit=1)] == ["fa"]
    assert [r.id for r in store.runs(dataset="synthetic", algorithm="bp")] == [1]

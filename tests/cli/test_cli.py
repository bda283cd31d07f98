"""The command line, driven through typer's CliRunner as a user would type it."""

from __future__ import annotations

import csv
import inspect
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from biobench.cli import app, progress
from biobench.cli.app import handle_errors
from biobench.data.base import download_with
from biobench.errors import DataError
from biobench.learners.bp import Backprop
from biobench.registry import ALGORITHMS, ARCHITECTURES, DATASETS, load_all
from biobench.results import tidy
from biobench.spec import resolve
from biobench.store import Store
from biobench.store.store import HOST
from biobench.training import checkpoint

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
    assert exported["runs"][0]["epochs"] == 2  # configured, as in the CSV; the rows:
    assert [e["test_top1"] for e in exported["runs"][0]["epoch_rows"]] == [
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
            "unknown algorithm 'dtpp'; choose one of: ao-sdtp, bp, ",
        ),
        (["run", "--arch", "resnet"], "architecture 'resnet'; choose one of: conv, fc, lc"),
        (["run", "--data", "cifar"], "dataset 'cifar'; choose one of: cifar10, digits"),
        (["run", "--device", "tpu"], "unknown device 'tpu'; choose one of: auto, cpu, cuda"),
        (["run", "--set", "lr=fast"], "lr='fast' is not a float"),
        (["run", "--set", "alpha=0.9"], "bp has no hyperparameter 'alpha'"),
        (["run", "--epochs", "0"], "--epochs must be > 0"),
        (["run", "--batch-size", "0"], "--batch-size must be > 0"),
        (["run", "--threads", "0"], "Invalid value for '--threads'"),
        (
            ["run", "--threads", "2", "--launcher", "local"],
            "--threads applies to runs on this machine; a launched job uses the cores of its "
            "allocation: drop --threads",
        ),
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
    calls: dict[int, int] = {}
    original = Backprop.train_step

    def train_step(self, x, y):
        # Counted per learner: the copies that count FLOPs and measure alignment step too.
        calls[id(self)] = calls.get(id(self), 0) + 1
        if calls[id(self)] == 2 + 32:  # during the second epoch of synthetic/32 (32 batches)
            raise exception
        return original(self, x, y)

    return train_step


@pytest.mark.parametrize(
    ("exception", "status", "code", "line"),
    [
        (
            KeyboardInterrupt(),
            "interrupted",
            130,
            "error: interrupted; continue it with `biobench run --resume 1 --db {db}`\n",
        ),
        (RuntimeError("exploded"), "failed", 1, "internal error: RuntimeError: exploded"),
    ],
)
def test_a_run_that_stops_early_is_never_left_running(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch, exception, status, code, line
) -> None:
    monkeypatch.setattr(Backprop, "train_step", _raise_on_second_step(exception))
    result = invoke("run", "--data", "synthetic", "--epochs", "3", "--db", sqlite_url)
    assert result.exit_code == code and line.format(db=sqlite_url) in result.stderr
    (run,) = Store(sqlite_url).runs()
    assert run.status == status and run.finished_at is not None
    assert run.epochs_done == 1  # the finished epoch is kept
    assert (Path(run.checkpoint) / checkpoint.FILE).is_file()  # and what resumes it
    assert "biobench run --resume 1" in invoke("show", "1", "--db", sqlite_url).stdout
    if status == "failed":
        assert run.error == "RuntimeError: exploded"


TORCHVISION_DOWNLOAD_ERROR = (  # what torchvision raises offline, one line per mirror tried
    "Error downloading train-images-idx3-ubyte.gz:\nTried https://a/, got:\n"
    "<urlopen error [Errno -2] Name or service not known>\n"
)


def test_a_failed_download_is_one_line_without_literal_line_breaks(tmp_path: Path) -> None:
    class Offline:
        def __init__(self, root: str, train: bool, download: bool) -> None:
            raise RuntimeError(TORCHVISION_DOWNLOAD_ERROR)

    with pytest.raises(DataError) as caught:
        download_with(Offline, tmp_path, "MNIST", "copy the files by hand")
    assert str(caught.value) == (
        f"downloading MNIST into {tmp_path} failed (Error downloading train-images-idx3-ubyte.gz:"
        " Tried https://a/, got: <urlopen error [Errno -2] Name or service not known>); "
        "copy the files by hand"
    )


def test_an_internal_errors_message_of_several_lines_is_shown_on_one(
    capsys: pytest.CaptureFixture[str],
) -> None:
    @handle_errors
    def command() -> None:
        raise RuntimeError(TORCHVISION_DOWNLOAD_ERROR)

    with pytest.raises(typer.Exit):
        command()
    assert capsys.readouterr().err == (
        "error: internal error: RuntimeError: Error downloading train-images-idx3-ubyte.gz: "
        "Tried https://a/, got: <urlopen error [Errno -2] Name or service not known> "
        "(rerun with `biobench --debug ...` for the traceback)\n"
    )


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


def test_the_interrupted_line_is_the_command_that_continues_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = Backprop.train_step
    monkeypatch.setattr(Backprop, "train_step", _raise_on_second_step(KeyboardInterrupt()))
    stopped = invoke("run", "--data", "synthetic", "--epochs", "3")  # the default database
    assert stopped.exit_code == 130
    assert stopped.stderr == "error: interrupted; continue it with `biobench run --resume 1`\n"
    monkeypatch.setattr(Backprop, "train_step", original)
    resumed = invoke("run", "--resume", "1")
    assert resumed.exit_code == 0, resumed.output
    (run,) = Store().runs()
    assert (run.status, run.epochs_done) == ("finished", 3)
    assert not Path(run.checkpoint).exists()  # finished as it began: --keep-checkpoint none


def test_interrupted_before_a_run_exists_has_nothing_to_continue(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def stop(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("biobench.training.runner.prepare", stop)  # Ctrl-C while data loads
    result = invoke("run", "--data", "synthetic", "--db", sqlite_url)
    assert result.exit_code == 130 and result.stderr == "error: interrupted\n"
    assert Store(sqlite_url).runs() == []


# -- help --------------------------------------------------------------------------------------


def command_tree(group: Any, path: list[str]) -> dict[tuple[str, ...], Any]:
    """Every command and group under `group` (Typer's click group), depth first, by the words
    that name it."""
    found = {}
    for name, command in group.commands.items():
        found[(*path, name)] = command
        if hasattr(command, "commands"):  # a group
            found.update(command_tree(command, [*path, name]))
    return found


ROOT = typer.main.get_command(app)
TREE = {(): ROOT, **command_tree(ROOT, [])}
COMMANDS = [list(path) for path in TREE]
GROUPS = [list(path) for path, command in TREE.items() if hasattr(command, "commands")]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "biobench")
def test_help_shows_what_to_type_not_python_types(command: list[str]) -> None:
    result = invoke(*command, "--help")
    assert result.exit_code == 0, result.output
    for typer_word in ("<bool>", "<str>", "<int>", "<path>", "<list", "{"):
        assert typer_word not in result.stdout, typer_word


@pytest.mark.parametrize("group", GROUPS, ids=lambda c: " ".join(c) or "biobench")
def test_every_commands_summary_is_one_sentence_on_one_line(group: list[str]) -> None:
    result = runner.invoke(app, [*group, "--help"], env={"COLUMNS": "400"})
    assert result.exit_code == 0, result.output
    panel = result.stdout.split("─ Commands ─", 1)[1]
    rows = [line.strip("│ ").split(None, 1) for line in panel.splitlines() if "│" in line]
    listed = TREE[tuple(group)]
    # at 400 columns every summary fits one line: a second line is a break in its text
    assert [row[0] for row in rows] == list(listed.commands)
    for name, summary in rows:
        paragraph = inspect.cleandoc(listed.commands[name].help).split("\n\n")[0]
        assert summary == " ".join(paragraph.split()), name
        assert summary.endswith(".") and ". " not in summary, name  # one sentence


def test_run_help_names_every_algorithm_architecture_and_dataset() -> None:
    result = runner.invoke(app, ["run", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    load_all()
    words = set(re.findall(r"[\w-]+", result.stdout))
    for registry in (ALGORITHMS, ARCHITECTURES, DATASETS):
        assert set(registry.names()) <= words
    assert "`biobench list algorithms`" in result.stdout  # where the --set names are
    assert "--keep-checkpoint" in result.stdout and "NAME=VALUE" in result.stdout
    assert re.search(r"show \[OPTIONS\] RUN_ID\s*\n", invoke("show", "--help").stdout)


def test_the_epoch_line_names_which_error_is_top_1_and_which_top_5() -> None:
    row = {
        "train_top1": 10.4,
        "train_top5": 0.2,
        "train_loss": 0.38349,
        "test_top1": 27.0,
        "test_top5": 2.6,
        "test_loss": 0.83,
        "images_per_s": 2012.3,
        "wall_time": 5.04,
    }
    assert progress.epoch_line(3, 30, row) == (
        "epoch  3/30  train top-1 10.40% top-5  0.20% loss 0.3835"
        "  test top-1 27.00% top-5  2.60% loss 0.8300  2,012 img/s 5.0s"
    )


@pytest.mark.slow  # a fresh interpreter, to see what `biobench --help` imports
def test_biobench_help_starts_without_torch() -> None:
    probe = (
        "import sys\n"
        "from biobench.cli import main\n"
        "sys.argv = ['biobench', '--help']\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print('torch' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert result.stdout.splitlines()[-1] == "False", result.stderr


# -- a tidy disk: --keep-checkpoint, rm, gc ----------------------------------------------------


def test_a_finished_run_deletes_its_checkpoint_unless_asked_to_keep_it(sqlite_url: str) -> None:
    train(sqlite_url)
    train(sqlite_url, "--keep-checkpoint", "last")
    store = Store(sqlite_url)
    tidied, kept = store.run(1), store.run(2)
    assert tidied.environment["keep_checkpoint"] == "none"
    assert not Path(tidied.checkpoint).exists()
    assert kept.environment["keep_checkpoint"] == "last"
    assert (Path(kept.checkpoint) / checkpoint.FILE).is_file()
    shown = invoke("show", "1", "--db", sqlite_url).stdout
    assert "(deleted when the run finished: --keep-checkpoint none)" in shown
    assert tidy.CHECKPOINT == checkpoint.FILE  # what rm and gc may delete is what training wrote


def run_folder(base: Path, tag: str, *files: str) -> Path:
    """A checkpoint folder named as training names them, holding these files."""
    folder = base / f"20260101-120000-bp-fc-synthetic-{tag}"
    folder.mkdir(parents=True)
    for name in files:
        (folder / name).write_bytes(b"x" * 100)
    return folder


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def add_run(
    store: Store, status: str = "finished", folder: Path | None = None, pid: int | None = None
) -> int:
    """A run with two epoch rows, written straight into the store (no training)."""
    spec = resolve(algorithm="bp", architecture="fc", dataset="synthetic", epochs=2)
    run_id = store.create_run(
        **spec.run_fields(),
        device="cpu",
        environment={},
        checkpoint=str(folder) if folder else None,
        host=HOST,
        pid=pid or os.getpid(),
    )
    for epoch in (1, 2):
        store.write_epoch(run_id, epoch, {"test_top1": 10.0 / epoch})
    if status != "running":
        store.set_status(run_id, status)
    return run_id


def test_rm_deletes_runs_with_their_epochs_and_checkpoints(db_url: str, tmp_path: Path) -> None:
    store = Store(db_url)
    folders = [run_folder(tmp_path, f"0000000{i}", checkpoint.FILE) for i in range(4)]
    done = add_run(store, folder=folders[0])
    stopped = add_run(store, "interrupted", folder=folders[1])
    lost = add_run(store, "running", folder=folders[2], pid=dead_pid())  # its process is gone
    other = add_run(store, folder=folders[3])
    assert store.run(lost).status == "lost"
    result = invoke("rm", str(done), str(stopped), str(lost), "--yes", "--db", db_url)
    assert result.exit_code == 0, result.output
    assert [run.id for run in store.runs()] == [other]
    assert {row["run_id"] for row in store.epochs()} == {other}  # the epochs went with them
    assert [folder.exists() for folder in folders] == [False, False, False, True]
    assert f"deleted run {done}; removed {folders[0]} (100 B)" in result.stdout


def test_rm_asks_first(sqlite_url: str, tmp_path: Path) -> None:
    store = Store(sqlite_url)
    folder = run_folder(tmp_path, "0000000a", checkpoint.FILE)
    add_run(store, folder=folder)
    declined = runner.invoke(app, ["rm", "1", "--db", sqlite_url], input="n\n")
    assert declined.exit_code == 1
    assert "run 1: bp / fc / synthetic, seed 0, finished, 2/2 epochs, checkpoints 100 B" in (
        declined.stdout
    )
    assert "Delete 1 run(s) from" in declined.stdout and "nothing removed" in declined.stdout
    assert len(store.runs()) == 1 and folder.exists()
    agreed = runner.invoke(app, ["rm", "1", "--db", sqlite_url], input="y\n")
    assert agreed.exit_code == 0 and store.runs() == [] and not folder.exists()


def test_rm_refuses_a_running_run_and_removes_nothing(sqlite_url: str, tmp_path: Path) -> None:
    store = Store(sqlite_url)
    folders = [run_folder(tmp_path, f"0000000{i}", checkpoint.FILE) for i in range(2)]
    done = add_run(store, folder=folders[0])
    running = add_run(store, "running", folder=folders[1])  # this process: alive
    result = invoke("rm", str(done), str(running), "--yes", "--db", sqlite_url)
    assert result.exit_code == 2
    assert result.stderr == (
        f"error: run {running} is still running (pid {os.getpid()} on {HOST}); stop it first "
        "(Ctrl-C, or kill its process), then remove it\n"
    )
    assert len(store.runs()) == 2 and len(store.epochs()) == 4
    assert all(folder.exists() for folder in folders)


def test_rm_keeps_a_folder_holding_files_biobench_did_not_write(
    sqlite_url: str, tmp_path: Path
) -> None:
    store = Store(sqlite_url)
    folder = run_folder(tmp_path, "0000000a", checkpoint.FILE, "notes.txt")
    add_run(store, folder=folder)
    result = invoke("rm", "1", "--yes", "--db", sqlite_url)
    assert result.exit_code == 0 and store.runs() == []
    assert f"kept {folder}: it holds 'notes.txt', which biobench did not write" in result.stdout
    assert sorted(p.name for p in folder.iterdir()) == [checkpoint.FILE, "notes.txt"]


def test_gc_removes_only_run_folders_no_run_points_at(sqlite_url: str, tmp_path: Path) -> None:
    store = Store(sqlite_url)
    base = tmp_path / "checkpoints"
    pointed = run_folder(base, "0000000a", checkpoint.FILE)
    add_run(store, "interrupted", folder=pointed)
    finished = run_folder(base, "0000000f")  # a finished run's, its checkpoint deleted
    add_run(store, folder=finished)
    orphan = run_folder(base, "0000000b", checkpoint.FILE, "pending.json", ".last.pt.1234abcd.tmp")
    empty = run_folder(base, "0000000c")
    foreign = run_folder(base, "0000000d", checkpoint.FILE, "notes.txt")
    (base / "my-data").mkdir()  # not named as training names run folders
    (base / "README").write_text("mine")
    result = invoke("gc", "--checkpoint-dir", str(base), "--yes", "--db", sqlite_url)
    assert result.exit_code == 0, result.output
    assert (pointed / checkpoint.FILE).is_file() and finished.exists()
    assert not orphan.exists() and not empty.exists()
    assert f"removed {orphan} (300 B)" in result.stdout
    assert f"kept {foreign}: it holds 'notes.txt'" in result.stdout
    assert (base / "my-data").is_dir() and (base / "README").read_text() == "mine"
    assert result.stdout.endswith("freed 300 B\n")
    again = invoke("gc", "--checkpoint-dir", str(base), "--yes", "--db", sqlite_url)
    assert [p.name for p in tidy.orphan_folders(store, base)] == [foreign.name]
    assert f"kept {foreign}" in again.stdout


def test_gc_asks_first_and_reads_the_default_checkpoint_folder(
    sqlite_url: str, tmp_path: Path
) -> None:
    orphan = run_folder(tmp_path / "home" / "checkpoints", "0000000b", checkpoint.FILE)
    declined = runner.invoke(app, ["gc", "--db", sqlite_url], input="n\n")
    assert declined.exit_code == 1 and f"{orphan} (100 B)" in declined.stdout
    assert orphan.exists()
    agreed = runner.invoke(app, ["gc", "--db", sqlite_url], input="y\n")
    assert agreed.exit_code == 0 and not orphan.exists()
    assert "nothing to remove" in invoke("gc", "--db", sqlite_url).stdout


def test_gc_spares_a_folder_a_run_came_to_point_at_while_it_asked(
    sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = Store(sqlite_url)
    base = tmp_path / "checkpoints"
    folder = run_folder(base, "0000000a", checkpoint.FILE)

    def a_run_begins_then_yes(question: str) -> bool:
        add_run(store, "running", folder=folder)
        return True

    monkeypatch.setattr(typer, "confirm", a_run_begins_then_yes)
    result = invoke("gc", "--checkpoint-dir", str(base), "--db", sqlite_url)
    assert result.exit_code == 0 and result.stdout.endswith("freed 0 B\n")
    assert (folder / checkpoint.FILE).is_file()

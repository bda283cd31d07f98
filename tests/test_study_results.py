"""A study's result put to use: its best trial written as a preset (`biobench study NAME
--preset NEW`)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from biobench.cli import app
from biobench.search.report import best_run
from biobench.spec import load_presets, resolve, seedless_hash
from biobench.spec.presets import USER_PRESETS_ENV
from biobench.store import Store

runner = CliRunner()
CELL = {"algorithm": "bp", "architecture": "fc", "dataset": "digits"}


@pytest.fixture(autouse=True)
def _no_user_presets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(USER_PRESETS_ENV, "")


def write(path: Path, presets: dict) -> Path:
    path.write_text(yaml.safe_dump({"presets": presets}))
    return path


def home_file() -> Path:
    return Path(os.environ["BIOBENCH_HOME"]) / "presets.yaml"


@pytest.fixture(scope="module")
def searched(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A database holding study 's': 2 trials of BP on the synthetic data, 1 epoch each."""
    folder = tmp_path_factory.mktemp("study")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("BIOBENCH_HOME", str(folder / "home"))
        args = ["search", "--study", "s", "--algo", "bp", "--arch", "fc", "--data", "synthetic"]
        args += ["--trials", "2", "--epochs", "1", "--batch-size", "256", "--device", "cpu"]
        result = runner.invoke(app, [*args, "--db", f"sqlite:///{folder / 'results.db'}"])
        assert result.exit_code == 0, result.output
    yield folder / "results.db"


@pytest.fixture
def study_db(searched: Path, tmp_path: Path) -> str:
    """A copy of that database of this test's own (its write-ahead log too: SQLite in WAL)."""
    for part in searched.parent.glob(f"{searched.name}*"):
        shutil.copy(part, tmp_path / part.name)
    return f"sqlite:///{tmp_path / 'results.db'}"


# -- `biobench study NAME --preset NEW` --------------------------------------------------------


def test_the_best_trial_becomes_a_preset_that_runs_its_spec(study_db: str) -> None:
    result = runner.invoke(app, ["study", "s", "--preset", "tuned", "--db", study_db])
    assert result.exit_code == 0, result.output
    row, run = best_run("s", Store(study_db))
    assert result.stdout == (
        f"wrote preset tuned (study s, trial {row['trial']}, run {run.id}: "
        f"{run.best_test_top1:.2f}%) to {home_file()}; run it with `biobench run --preset "
        "tuned`\n"
    )
    preset = load_presets().presets["tuned"]
    assert (preset.source, preset.reference, preset.tolerance) == (home_file(), {}, None)
    assert preset.note.startswith(f"study s, trial {row['trial']} (run {run.id}, best test top-1")
    assert seedless_hash(resolve(preset="tuned").to_dict()) == seedless_hash(run.spec)
    assert resolve(preset="tuned").seed == run.seed
    ran = runner.invoke(app, ["run", "--preset", "tuned", "--device", "cpu", "--db", study_db])
    assert ran.exit_code == 0, ran.output
    checked = runner.invoke(app, ["check", "--preset", "tuned", "--db", study_db])
    assert checked.exit_code == 0 and checked.stdout.startswith("no reference  tuned  test top-1")


def test_a_preset_goes_to_the_file_named(study_db: str, tmp_path: Path) -> None:
    path = write(tmp_path / "lab.yaml", {"kept": CELL})
    args = ["study", "s", "--preset", "tuned", "--presets", str(path), "--db", study_db]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert f"`BIOBENCH_PRESETS={path} biobench run --preset tuned`" in result.stdout
    assert list(yaml.safe_load(path.read_text())["presets"]) == ["kept", "tuned"]
    assert not home_file().exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["study", "nope", "--preset", "x"],
            "no study 'nope' in sqlite:///{tmp}/results.db; `biobench studies` lists them",
        ),
        (
            ["study", "s", "--preset", "mnist-fc-bp"],
            "'mnist-fc-bp' is a built-in preset of benchmarks.yaml; choose another name",
        ),
        (
            ["study", "s", "--preset", "x", "--presets", "{tmp}/broken.yaml"],
            "{tmp}/broken.yaml line 3 is not valid YAML; fix the file",
        ),
        (
            ["study", "s", "--presets", "{tmp}/broken.yaml"],
            "--presets names the file --preset writes; add --preset NAME",
        ),
        (
            ["study", "s", "--preset", "x", "--plot", "history"],
            "give --preset or --plot, not both",
        ),
    ],
    ids=["unknown study", "built-in name", "broken file", "no --preset", "with --plot"],
)
def test_a_preset_that_cannot_be_written_is_one_line_and_nothing_written(
    study_db: str, tmp_path: Path, argv: list[str], message: str
) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("presets:\n  [\n")
    argv = [arg.replace("{tmp}", str(tmp_path)) for arg in argv]
    result = runner.invoke(app, [*argv, "--db", study_db])
    assert result.exit_code == 2
    assert result.stderr == f"error: {message.replace('{tmp}', str(tmp_path))}\n"
    assert not home_file().exists() and broken.read_text() == "presets:\n  [\n"

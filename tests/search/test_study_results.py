"""A study's result put to use: its best trial written as a preset (`biobench study NAME
--preset NEW`) and shown beside the reference and the plain runs (`biobench compare --study`)."""

from __future__ import annotations

import json
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


def add_run(url: str, test: float, **spec_kw: object) -> int:
    """A finished one-epoch run of this spec whose test top-1 error is `test`."""
    store = Store(url)
    spec = resolve(**spec_kw)
    run_id = store.create_run(**spec.run_fields(), device="cpu", environment={})
    store.write_epoch(
        run_id, 1, {"train_top1": test / 2, "test_top1": test, "train_top5": 0.0, "test_top5": 0.0}
    )
    store.set_status(run_id, "finished")
    return run_id


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


@pytest.mark.parametrize("defaults_run", [None, "close", "far better"])
def test_a_best_trial_far_worse_than_the_rules_defaults_is_warned_of(
    study_db: str, defaults_run: str | None
) -> None:
    # Study s searched Table 4's lr range, [1e-5, 3e-4], which leaves out BP's default 1e-3.
    from biobench.search.study import load

    store = Store(study_db)
    best = best_run("s", store)[0]["objective"]
    spec = load("s", store)[1]
    if defaults_run is not None:
        defaults = spec.run_spec({})
        run_id = store.create_run(**defaults.run_fields(), device="cpu", environment={})
        test = best - 1.0 if defaults_run == "close" else 0.0  # within 5 points, or far off
        store.write_epoch(run_id, 1, {"train_top1": 0.0, "test_top1": test, "train_top5": 0.0,
                                      "test_top5": 0.0})  # fmt: skip
        store.set_status(run_id, "finished")
    result = runner.invoke(app, ["study", "s", "--preset", "tuned", "--db", study_db])
    assert result.exit_code == 0 and result.stdout.startswith("wrote preset tuned"), result.output
    warning = " ".join(result.stderr.split())
    run_it = (
        f"`biobench run --algo bp --arch fc --data synthetic --epochs 1 --batch-size 256 "
        f"--seed {spec.seed}`"
    )
    left_out = "bp's default lr 0.001 (searched: [1e-05, 0.0003] log)"
    if defaults_run is None:
        assert warning == (
            f"warning: the space leaves out {left_out}, and no run at the defaults is here to "
            f"compare the best trial ({best:.2f}%) with; {run_it} makes one"
        )
    elif defaults_run == "close":
        assert warning == ""
    else:
        assert warning == (
            f"warning: the best trial ({best:.2f}%) is far worse than bp at its defaults "
            f"(0.00%, {run_it}); the space leaves out the default lr 0.001 (searched: [1e-05, "
            "0.0003] log); widen the space (--space FILE) before using it"
        )


def test_a_preset_goes_to_the_file_named(study_db: str, tmp_path: Path) -> None:
    path = write(tmp_path / "lab.yaml", {"kept": CELL})
    args = ["study", "s", "--preset", "tuned", "--presets", str(path), "--db", study_db]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert f"`biobench run --preset tuned --presets {path}`" in result.stdout
    assert list(yaml.safe_load(path.read_text())["presets"]) == ["kept", "tuned"]
    assert not home_file().exists()
    ran = runner.invoke(
        app,
        ["run", "--preset", "tuned", "--presets", str(path), "--epochs", "1", "--db", study_db],
    )
    assert ran.exit_code == 0, ran.output


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


# -- `biobench compare --study NAME` -----------------------------------------------------------

PROTOCOL = {"dataset": "synthetic", "architecture": "fc", "epochs": 1, "batch_size": 256}


def test_compare_shows_a_studys_best_beside_the_plain_runs_of_its_protocol(study_db: str) -> None:
    add_run(study_db, 50.0, algorithm="bp", **PROTOCOL)
    add_run(study_db, 60.0, algorithm="fa", **PROTOCOL)
    add_run(study_db, 10.0, algorithm="bp", **{**PROTOCOL, "epochs": 2})  # another table
    _, best = best_run("s", Store(study_db))
    shown = runner.invoke(app, ["compare", "--study", "s", "--format", "json", "--db", study_db])
    assert shown.exit_code == 0, shown.output
    rows = {(r["label"], r["study"]): r for r in json.loads(shown.stdout)}
    assert list(rows) == [("BP", None), ("BP (study s)", "s"), ("FA", None)]
    tuned = rows[("BP (study s)", "s")]
    assert (tuned["method"], tuned["run_ids"]) == ("bp", str(best.id))
    assert tuned["test_top1"] == pytest.approx(best.best_test_top1)
    assert {r["protocol"] for r in rows.values()} == {"1 epoch, batch 256"}
    assert rows[("FA", None)]["gap_to_bp"] == pytest.approx(10.0)  # to the plain BP runs
    assert tuned["gap_to_bp"] == 0.0
    table = runner.invoke(app, ["compare", "--study", "s", "--db", study_db]).stdout
    lines = table.splitlines()
    assert lines[2].split()[:2] == ["backprop", "BP"] and lines[3].split()[:3] == [
        "BP",
        "(study",
        "s)",
    ]
    assert "(study NAME): the study's best finished trial" in table
    plain = runner.invoke(app, ["compare", "--format", "json", "--db", study_db]).stdout
    assert all("study" not in row for row in json.loads(plain))  # trials stay out unasked


def test_plot_compare_draws_a_studys_best_beside_the_plain_runs_of_its_protocol(
    study_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from biobench.results import plot

    add_run(study_db, 50.0, algorithm="fa", **PROTOCOL)
    add_run(study_db, 10.0, algorithm="bp", **{**PROTOCOL, "epochs": 2})  # no study: no panel
    drawn: list = []
    monkeypatch.setattr(plot, "_save", lambda figure, out: drawn.append(figure))
    args = ["plot", "--compare", "all", "--study", "s", "--out", str(tmp_path / "bars.png")]
    result = runner.invoke(app, [*args, "--db", study_db])
    assert result.exit_code == 0, result.output
    (axis,) = drawn[0].axes
    assert axis.get_title(loc="left") == "synthetic: 1 epoch, batch 256"
    assert [t.get_text() for t in axis.get_xticklabels()] == ["BP (study s)", "FA"]
    refused = runner.invoke(app, ["plot", "--study", "s", "--db", study_db])
    assert refused.exit_code == 2 and refused.stderr.count("\n") == 1
    assert "pass --compare DATASET too" in refused.stderr


@pytest.mark.parametrize(
    ("study", "message"),
    [
        ("nope", "no study 'nope' in sqlite:///{tmp}/results.db; `biobench studies` lists them"),
        ("empty", "study 'empty' has no finished trial yet; `biobench study empty` shows its "),
    ],
)
def test_compare_of_a_study_with_no_result_is_one_line(
    study_db: str, tmp_path: Path, study: str, message: str
) -> None:
    from biobench.search.study import make_spec, open_study

    spec = make_spec(
        algorithm="bp",
        architecture="fc",
        dataset="synthetic",
        epochs=1,
        batch_size=None,
        seed=None,
        overrides=[],
        space=None,
    )
    open_study("empty", spec, Store(study_db))
    result = runner.invoke(app, ["compare", "--study", study, "--db", study_db])
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr.startswith(f"error: {message.replace('{tmp}', str(tmp_path))}")
    assert result.stderr.count("\n") == 1

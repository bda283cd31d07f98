"""`biobench search`: real Optuna studies in the real results database (SQLite and PostgreSQL),
trials as biobench runs, several worker processes sharing one study, screening, retries."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState
from sqlalchemy import create_engine, inspect, text
from typer.testing import CliRunner

from biobench.cli import app
from biobench.errors import SpecError
from biobench.registry import ALGORITHMS, load_all
from biobench.search.report import trial_rows
from biobench.search.space import TrialSeededSampler, load_space, suggest
from biobench.search.study import _is_race, load, make_spec, open_study
from biobench.search.worker import Surplus, Worker
from biobench.spec.params import default_space
from biobench.store import Store
from biobench.training import checkpoint

runner = CliRunner()
TABLE4 = {
    "lr": (1e-5, 3e-4),
    "inverse_lr": (1e-5, 3e-4),
    "beta1": {0.9},
    "inverse_beta1": {0.9},
    "beta2": {0.99, 0.999},
    "inverse_beta2": {0.99, 0.999},
    "eps": {1e-4, 1e-6, 1e-8},
    "inverse_eps": {1e-4, 1e-6, 1e-8},
    "alpha": (0.01, 0.2),
    "sigma": (0.01, 0.3),
}


def search(url: str, *extra: str, study: str = "s", data: str = "synthetic") -> str:
    args = ["search", "--study", study, "--arch", "fc", "--data", data, "--device", "cpu"]
    args += ["--batch-size", "256"]  # a few steps an epoch: the search is under test
    result = runner.invoke(app, [*args, *extra, "--db", url])
    assert result.exit_code == 0, result.output
    return result.output


def trials(url: str, name: str = "s") -> list[optuna.trial.FrozenTrial]:
    study, _ = load(name, Store(url))
    return study.get_trials()


def sampled(url: str, name: str = "s") -> list[dict]:
    return [t.params for t in sorted(trials(url, name), key=lambda t: t.number)]


def in_table4(name: str, value: object) -> bool:
    allowed = TABLE4[name]
    if isinstance(allowed, set):
        return value in allowed
    return allowed[0] <= value <= allowed[1]


# -- the space --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("algorithm", "searched"),
    [
        ("bp", {"lr", "beta1", "beta2", "eps"}),
        ("fa", {"lr", "beta1", "beta2", "eps"}),
        (
            "sdtp",
            {
                "lr",
                "beta1",
                "beta2",
                "eps",
                *(f"inverse_{n}" for n in ["lr", "beta1", "beta2", "eps"]),
                "sigma",
            },
        ),  # noqa: E501
        ("dtp", set(TABLE4)),
    ],
)
def test_the_default_space_is_table4_restricted_to_the_rules_hyperparameters(
    algorithm: str, searched: set[str]
) -> None:
    load_all()
    space = default_space(ALGORITHMS.entry(algorithm).hparams)
    assert set(space) == searched
    assert space["lr"].log and (space["lr"].low, space["lr"].high) == (1e-5, 3e-4)
    assert space["beta2"].choices == (0.99, 0.999)
    assert space["eps"].choices == (1e-4, 1e-6, 1e-8)


def test_list_algorithms_says_what_a_search_draws_each_hyperparameter_from() -> None:
    result = runner.invoke(app, ["list", "algorithms"], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    header, *lines = result.stdout.splitlines()
    lines = lines[: lines.index("")] if "" in lines else lines  # the table, not the notes below
    name_at, searched_at, end = (header.index(c) for c in ("--set", "searched", "meaning"))
    searched, algorithm = {}, ""
    for line in lines:
        algorithm = algorithm if line.startswith(" ") else line.split()[0]
        searched[algorithm, line[name_at:].split()[0]] = line[searched_at:end].strip()
    load_all()
    for entry in ALGORITHMS.entries():
        space = default_space(entry.hparams)
        for name in entry.hparams:
            want = space[name].describe() if name in space else "-"
            assert searched[entry.name, name] == want, (entry.name, name)
    assert searched["fa", "lr"] == "[1e-05, 0.0003] log"  # FA's default 1e-3 lies outside


def test_a_space_file_replaces_the_space(tmp_path: Path) -> None:
    load_all()
    path = tmp_path / "space.yaml"
    path.write_text("lr: {low: 1e-4, high: 1e-3, log: true}\nbeta2: 0.999\n")
    space = load_space(path, ALGORITHMS.entry("bp").hparams, "bp")
    assert set(space) == {"lr", "beta2"}
    assert (space["lr"].low, space["lr"].high, space["lr"].log) == (1e-4, 1e-3, True)
    assert space["beta2"].fixed


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("lrr: {low: 1e-4, high: 1e-3}\n", "bp has no hyperparameter 'lrr'"),
        ("beta2: {low: 0.5, high: 1.5}\n", "beta2=1.5 is out of range"),
        ("lr: {low: 1e-3, high: 1e-4}\n", "low 0.001 is not below high 0.0001"),
        ("lr: {low: 1e-4, hi: 1e-3}\n", "unknown key(s) hi"),
        ("lr: [unclosed\n", "is not valid YAML"),
        ("- lr\n", "must map hyperparameter names to ranges"),
        ("lr: !!python/object/apply:os.system ['true']\n", "is not valid YAML"),
    ],
)
def test_a_bad_space_file_is_one_clear_error(tmp_path: Path, content: str, message: str) -> None:
    load_all()
    path = tmp_path / "space.yaml"
    path.write_text(content)
    with pytest.raises(SpecError, match="space file") as error:
        load_space(path, ALGORITHMS.entry("bp").hparams, "bp")
    assert message in str(error.value)


# -- one worker -------------------------------------------------------------------------------


def test_every_trial_is_a_run_linked_to_its_study(db_url: str) -> None:
    search(db_url, "--algo", "bp", "--trials", "3", "--epochs", "2", "--seed", "1")
    store = Store(db_url)
    runs = sorted(store.runs(study="s"), key=lambda run: run.trial)
    done = [t for t in trials(db_url) if t.state == TrialState.COMPLETE]
    assert len(done) == 3 and [run.trial for run in runs] == [0, 1, 2]
    for trial, run in zip(sorted(done, key=lambda t: t.number), runs, strict=True):
        assert trial.user_attrs["run_id"] == run.id
        assert trial.value == run.best_test_top1  # the best test top-1 over the epochs
        assert run.status == "finished" and run.epochs_done == 2 and run.seed == 1
        assert {k: run.hparams[k] for k in trial.params} == trial.params
        assert all(in_table4(name, value) for name, value in trial.params.items())
    # Optuna's version table is Optuna's; biobench's schema checks see only their own.
    engine = create_engine(Store(db_url).url)
    with engine.connect() as connection:
        assert connection.execute(text("SELECT version_num FROM biobench_version")).scalar() == (
            store.head_revision()
        )
        optuna_rev = connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
        assert optuna_rev not in {"0001", "0002", "0003", "0004", "0005", "0006", "0007"}
        assert {"studies", "trials", "runs", "epochs"} <= set(
            inspect(connection).get_table_names()
        )
    engine.dispose()
    assert runner.invoke(app, ["db", "upgrade", "--db", db_url]).exit_code == 0
    assert runner.invoke(app, ["runs", "--db", db_url]).exit_code == 0


def test_the_validation_objective_keeps_the_test_set_out_of_the_choice(sqlite_url: str) -> None:
    args = ("--algo", "bp", "--trials", "2", "--epochs", "2", "--objective", "val")
    refused = runner.invoke(app, ["search", "--study", "v", "--arch", "fc", "--data",
                                  "synthetic", *args, "--db", sqlite_url])  # fmt: skip
    assert refused.exit_code == 2 and "add --set val_split=N" in refused.output
    assert Store(sqlite_url).runs() == []  # nothing written
    search(sqlite_url, *args, "--set", "val_split=40", study="v")
    store = Store(sqlite_url)
    for trial in trials(sqlite_url, "v"):
        rows = store.epochs([trial.user_attrs["run_id"]])
        assert trial.value == min(row["val_top1"] for row in rows)
    shown = runner.invoke(app, ["study", "v", "--format", "json", "--db", sqlite_url])
    objectives = [t["objective"] for t in json.loads(shown.output)["trials"]]
    assert sorted(objectives) == sorted(t.value for t in trials(sqlite_url, "v"))


@pytest.mark.slow  # 24 epochs
def test_a_real_pruner_and_sampler_judge_trials_by_their_best_validation_error(
    sqlite_url: str, tmp_path: Path
) -> None:
    # Rates high enough that the validation error goes up and down over 4 epochs, so a trial's
    # last epoch is not its best; the median pruner and TPE as Optuna ships them.
    space = tmp_path / "space.yaml"
    space.write_text("lr: {low: 3e-3, high: 3e-1, log: true}\n")
    search(sqlite_url, "--algo", "bp", "--trials", "6", "--epochs", "4", "--objective", "val",
           "--set", "val_split=200", "--pruner", "median", "--sampler", "tpe",
           "--space", str(space), "--seed", "0", study="p")  # fmt: skip
    store = Store(sqlite_url)
    study, _ = load("p", store)
    done = study.get_trials(states=(TrialState.COMPLETE, TrialState.PRUNED))
    complete = [t for t in done if t.state == TrialState.COMPLETE]
    pruned = [t for t in done if t.state == TrialState.PRUNED]
    assert len(done) == 6
    lasts = []
    for trial in done:
        rows = sorted(store.epochs([trial.user_attrs["run_id"]]), key=lambda r: r["epoch"])
        val = {row["epoch"]: row["val_top1"] for row in rows}
        assert trial.intermediate_values == val  # pruned by the validation error, not test's
        assert any(row["test_top1"] != row["val_top1"] for row in rows)
        if trial.state == TrialState.COMPLETE:
            assert trial.value == min(val.values())  # its best epoch, not its last
            lasts.append(val[max(val)])
    assert any(last != t.value for last, t in zip(lasts, complete, strict=True))
    assert pruned and len(complete) >= 4
    # Minimised: Optuna's best is the lowest error, and the median pruner cut trials whose
    # best so far was worse than the median of the trials completed before them.
    assert study.best_trial.value == min(t.value for t in complete)
    for trial in pruned:
        step = max(trial.intermediate_values)
        before = [t.intermediate_values[step] for t in complete if t.number < trial.number]
        assert min(trial.intermediate_values.values()) > float(np.median(before))
    assert study.direction == optuna.study.StudyDirection.MINIMIZE


def test_a_seeded_random_search_samples_the_same_configurations_twice(sqlite_url: str) -> None:
    for name, seed in (("a", "3"), ("b", "3"), ("c", "4")):
        search(sqlite_url, "--algo", "bp", "--trials", "2", "--epochs", "1", "--seed", seed,
               study=name)  # fmt: skip
    assert sampled(sqlite_url, "a") == sampled(sqlite_url, "b")
    assert sampled(sqlite_url, "a") != sampled(sqlite_url, "c")
    assert len({tuple(sorted(p.items())) for p in sampled(sqlite_url, "a")}) == 2


def test_trial_n_samples_the_same_values_whichever_worker_draws_it() -> None:
    """Two workers' samplers, seeded alike, give trial n the same DTP configuration, inside
    Table 4; a worker's own sampler state (how many trials it drew) does not matter."""
    load_all()
    space = default_space(ALGORITHMS.entry("dtp").hparams)
    kinds = {name: float for name in space}

    def draw(numbers: list[int]) -> dict[int, dict]:
        study = optuna.create_study(sampler=TrialSeededSampler(7))
        drawn = {}
        for number in range(max(numbers) + 1):
            trial = study.ask()
            values = suggest(trial, space, kinds)
            study.tell(trial, 0.0)
            if number in numbers:
                drawn[number] = values
        return drawn

    one, other = draw([0, 5, 11]), draw([5, 11])
    assert one[5] == other[5] and one[11] == other[11] and one[0] != one[5]
    assert all(in_table4(k, v) for values in one.values() for k, v in values.items())
    assert {"alpha", "sigma", "inverse_lr"} <= set(one[0])


def test_set_fixes_a_hyperparameter(sqlite_url: str) -> None:
    search(sqlite_url, "--algo", "bp", "--trials", "2", "--epochs", "1", "--set", "beta2=0.999")
    assert all("beta2" not in t.params for t in trials(sqlite_url))
    assert {run.hparams["beta2"] for run in Store(sqlite_url).runs(study="s")} == {0.999}


def test_joining_a_study_with_another_spec_is_refused(sqlite_url: str) -> None:
    search(sqlite_url, "--algo", "bp", "--trials", "1", "--epochs", "1")
    args = ["search", "--study", "s", "--algo", "bp", "--arch", "fc", "--data", "synthetic"]
    args += ["--batch-size", "256", "--trials", "2", "--epochs", "2"]
    result = runner.invoke(app, [*args, "--db", sqlite_url])
    assert result.exit_code == 2
    assert "study 's' exists with another spec (epochs: 1 in the study, 2 asked)" in (
        " ".join(result.output.split())
    )
    assert len(Store(sqlite_url).runs()) == 1
    search(sqlite_url, "--algo", "bp", "--trials", "2", "--epochs", "1")  # the same: joins
    assert len(Store(sqlite_url).runs(study="s")) == 2


@pytest.mark.parametrize("trials_made", [0, 1])
def test_a_study_another_tool_made_is_refused_not_adopted(
    sqlite_url: str, trials_made: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    from biobench.search import study as study_module

    monkeypatch.setattr(study_module, "ADOPT_WAIT_S", 0.3)  # an empty one waits this long
    Store(sqlite_url)
    other = optuna.create_study(study_name="theirs", storage=sqlite_url)
    other.optimize(lambda trial: trial.suggest_float("x", 0, 1), n_trials=trials_made)
    args = ["search", "--study", "theirs", "--algo", "bp", "--arch", "fc", "--data"]
    args += ["synthetic", "--trials", "1", "--epochs", "1", "--db", sqlite_url]
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert result.stderr == (
        f"error: study 'theirs' in {Store(sqlite_url).display_url} was not made by "
        "`biobench search`; pass another --study\n"
    )
    assert optuna.load_study(study_name="theirs", storage=sqlite_url).user_attrs == {}
    assert Store(sqlite_url).runs() == []


def test_a_retried_trial_names_its_run_and_the_run_names_it(
    sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    from biobench.search.worker import TrialReporter

    epoch = TrialReporter.epoch
    stops: list[int] = []

    def ctrl_c_in_epoch_2(self, number: int, epochs: int, batches: int):
        if number == 2 and not stops:  # after epoch 1's checkpoint: the run is resumable
            stops.append(number)
            raise KeyboardInterrupt
        return epoch(self, number, epochs, batches)

    monkeypatch.setattr(TrialReporter, "epoch", ctrl_c_in_epoch_2)
    spec = make_spec(algorithm="bp", architecture="fc", dataset="synthetic", epochs=2,
                     batch_size=256, seed=0, overrides=[], space=None)  # fmt: skip
    store = Store(sqlite_url)

    def worker() -> Worker:
        return Worker(name="s", spec=spec, store=store, device=torch.device("cpu"),
                      data_dir=tmp_path, checkpoint_dir=tmp_path / "ck")  # fmt: skip

    with pytest.raises(KeyboardInterrupt):
        worker().run(1)
    worker().run(1)  # trial 1, the retry of trial 0, continues trial 0's run
    (run,) = store.runs(study="s")
    assert run.status == "finished" and run.epochs_done == 2
    study, _ = load("s", store)
    rows = {row["trial"]: row for row in trial_rows(study, spec, store)}
    assert rows[1]["run"] == run.id and rows[1]["state"] == "complete"
    assert run.trial == 1  # `runs` and `study` name the same trial


def test_a_diverged_trial_fails_and_the_search_goes_on(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from biobench.training import loop

    calls = []

    def first_diverges(learner, row):  # the first trial's first epoch "blows up"
        calls.append(1)
        return "train loss is nan" if len(calls) == 1 else None

    monkeypatch.setattr(loop, "divergence", first_diverges)
    search(sqlite_url, "--algo", "bp", "--trials", "2", "--epochs", "1")
    states = [t.state for t in sorted(trials(sqlite_url), key=lambda t: t.number)]
    assert states == [TrialState.FAIL, TrialState.COMPLETE, TrialState.COMPLETE]
    assert [run.status for run in Store(sqlite_url).runs(study="s")][-1] == "diverged"


def test_a_pruned_trial_counts_as_finished_and_leaves_its_run_resumable(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    reported = []
    monkeypatch.setattr(optuna.Trial, "report", lambda self, value, step: reported.append(step))
    monkeypatch.setattr(optuna.Trial, "should_prune", lambda self: True)
    search(sqlite_url, "--algo", "bp", "--trials", "2", "--epochs", "3", "--pruner", "median")
    assert [t.state for t in trials(sqlite_url)] == [TrialState.PRUNED] * 2 and reported == [1, 1]
    for run in Store(sqlite_url).runs(study="s"):
        assert run.status == "interrupted" and run.epochs_done == 1
        assert run.error == "pruned after epoch 1 by the median pruner"


def test_a_trial_handed_out_after_the_study_is_full_never_trains(
    sqlite_url: str, tmp_path: Path
) -> None:
    import torch

    spec = make_spec(algorithm="bp", architecture="fc", dataset="synthetic", epochs=1,
                     batch_size=256, seed=0, overrides=[], space=None)  # fmt: skip
    store = Store(sqlite_url)
    worker = Worker(name="s", spec=spec, store=store, device=torch.device("cpu"),
                    data_dir=tmp_path)  # fmt: skip
    study = open_study("s", spec, store)
    study.ask()  # another worker's trial, running: the study's one trial
    study.optimize(lambda trial: worker.objective(trial, 1), n_trials=1, catch=(Surplus,))
    late = study.get_trials()[-1]
    assert late.state == TrialState.FAIL and late.user_attrs == {"surplus": True}
    assert store.runs() == []


def test_screening_promotes_exactly_k_and_never_repeats_an_epoch(db_url: str) -> None:
    search(db_url, "--algo", "bp", "--trials", "4", "--epochs", "4", "--screen-epochs", "2",
           "--promote", "1", "--set", "lr=3e-4")  # fmt: skip
    store = Store(db_url)
    runs = {run.id: run for run in store.runs(study="s")}
    epochs: dict[int, list[int]] = {run_id: [] for run_id in runs}
    for row in store.epochs(list(runs)):
        epochs[row["run_id"]].append(row["epoch"])
    done = sorted(
        (t for t in trials(db_url) if t.state == TrialState.COMPLETE),
        key=lambda t: (t.value, t.number),
    )
    best = done[0].user_attrs["run_id"]
    assert len(done) == 4 and len(runs) == 4
    assert epochs[best] == [1, 2, 3, 4] and runs[best].status == "finished"
    for run_id in set(runs) - {best}:
        assert epochs[run_id] == [1, 2] and runs[run_id].status == "interrupted"
        assert "paused after epoch 2 of 4" in runs[run_id].error
    study, spec = load("s", store)
    assert trial_rows(study, spec, store)[0]["run"] == best  # the promoted trial leads


def test_the_study_commands_show_the_trials_best_first(sqlite_url: str, tmp_path: Path) -> None:
    import csv
    import io
    import json

    search(sqlite_url, "--algo", "bp", "--trials", "3", "--epochs", "1")
    shown = runner.invoke(app, ["study", "s", "--format", "json", "--db", sqlite_url])
    rows = json.loads(shown.output)["trials"]
    assert [row["objective"] for row in rows] == sorted(row["objective"] for row in rows)
    assert {row["run"] for row in rows} == {run.id for run in Store(sqlite_url).runs()}
    table = runner.invoke(app, ["study", "s", "--format", "csv", "--db", sqlite_url]).output
    assert [r["trial"] for r in csv.DictReader(io.StringIO(table))] == [
        str(row["trial"]) for row in rows
    ]
    listing = runner.invoke(app, ["studies", "--db", sqlite_url]).output
    assert "3 / 3" in listing and f"{rows[0]['objective']:.2f}" in listing
    for kind in ("history", "importance"):
        out = tmp_path / f"{kind}.png"
        args = ["study", "s", "--plot", kind, "--out", str(out), "--db", sqlite_url]
        assert runner.invoke(app, args).exit_code == 0
        assert out.read_bytes().startswith(b"\x89PNG")


def test_a_database_from_before_search_upgrades_and_keeps_its_runs(sqlite_url: str) -> None:
    assert runner.invoke(app, ["run", "--data", "synthetic", "--epochs", "1", "--db", sqlite_url])
    engine = create_engine(Store(sqlite_url).url)
    with engine.begin() as connection:  # as biobench 0005 left it: its revision in alembic_version
        connection.execute(text("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)"))
        connection.execute(text("INSERT INTO alembic_version VALUES ('0005')"))
        connection.execute(text("DROP TABLE biobench_version"))
        connection.execute(text("DROP TABLE layer_metrics"))  # and without 0007's additions
        connection.execute(text("ALTER TABLE runs DROP COLUMN flops_per_step"))
        for column in ("val_top1", "val_top5", "val_loss", "step_ms", "step_ms_forward",
                       "step_ms_signal", "step_ms_update", "step_ms_inverse", "eval_ms",
                       "peak_memory_mb"):  # fmt: skip
            connection.execute(text(f"ALTER TABLE epochs DROP COLUMN {column}"))
    engine.dispose()
    refused = runner.invoke(app, ["runs", "--db", sqlite_url])
    assert refused.exit_code == 2 and "at schema 0005" in refused.output
    assert runner.invoke(app, ["db", "upgrade", "--db", sqlite_url]).exit_code == 0
    assert len(Store(sqlite_url).runs()) == 1
    search(sqlite_url, "--algo", "bp", "--trials", "1", "--epochs", "1")
    assert len(Store(sqlite_url).runs()) == 2


# -- many workers -----------------------------------------------------------------------------


def worker(url: str, *extra: str, env: dict | None = None) -> subprocess.Popen:
    command = [sys.executable, "-m", "biobench", "search", "--study", "w", "--algo", "bp",
               "--arch", "fc", "--data", "digits", "--batch-size", "128", "--device", "cpu",
               "--db", url, *extra]  # fmt: skip
    return subprocess.Popen(
        command,
        env={
            **os.environ,
            "BIOBENCH_HEARTBEAT": "0.5",
            "BIOBENCH_LOST_AFTER": "2",
            "OMP_NUM_THREADS": "1",
            **(env or {}),
        },  # fmt: skip
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        # Ctrl-C as a terminal delivers it: a suite started in the background (`... &` without
        # job control) ignores SIGINT, and a Python started so keeps ignoring it.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def check_six(url: str) -> list[optuna.trial.FrozenTrial]:
    done = [t for t in trials(url, "w") if t.state == TrialState.COMPLETE]
    runs = Store(url).runs(study="w")
    assert len(done) == 6 and len(runs) == 6
    assert {t.user_attrs["run_id"] for t in done} == {run.id for run in runs}
    assert all(run.status == "finished" and run.epochs_done == 2 for run in runs)
    assert all(in_table4(k, v) for t in done for k, v in t.params.items())
    return done


@pytest.mark.parametrize(
    ("message", "race"),
    [
        ('relation "studies" already exists', True),
        ("duplicate key value violates unique constraint", True),
        ("UNIQUE constraint failed: alembic_version.version_num", True),  # SQLite, 3 workers
        ("database is locked", True),
        ("no such table: studies", False),
    ],
)
def test_workers_creating_optunas_tables_together_retry_what_a_race_raises(
    message: str, race: bool
) -> None:
    assert _is_race(Exception(message)) is race


@pytest.mark.slow
def test_three_workers_share_a_study_and_end_with_exactly_its_trials(db_url: str) -> None:
    workers = [worker(db_url, "--trials", "6", "--epochs", "2") for _ in range(3)]
    outputs = [w.communicate(timeout=240)[0] for w in workers]
    assert [w.returncode for w in workers] == [0, 0, 0], outputs
    check_six(db_url)
    assert sum("trial " in out and " of study w:" in out for out in outputs) >= 2  # shared


@pytest.mark.slow
def test_a_killed_workers_trial_is_retried_from_its_checkpoint(db_url: str) -> None:
    # Small batches: epochs long enough that the kill lands inside the trial's run, and that
    # the others have trials left to run when its heartbeat goes stale (BIOBENCH_LOST_AFTER):
    # a retry asked for once the study is full is surplus, and the study ends without it.
    args = ("--trials", "6", "--epochs", "2", "--batch-size", "2")
    victim = worker(db_url, *args)
    deadline = time.monotonic() + 120
    store = Store(db_url)
    # Killed once its first epoch is checkpointed (the epoch row is written first: a kill in
    # between retrains epoch 1, tested in test_resilience, and would not say "resuming").
    while not any(
        run.epochs_done >= 1 and (Path(run.checkpoint) / checkpoint.FILE).exists()
        for run in store.runs(study="w")
    ):
        assert time.monotonic() < deadline and victim.poll() is None
        time.sleep(0.1)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    killed = store.runs(study="w")[0]
    others = [worker(db_url, *args) for _ in range(2)]
    outputs = [w.communicate(timeout=240)[0] for w in others]
    assert [w.returncode for w in others] == [0, 0], outputs
    done = check_six(db_url)
    retried = [t for t in done if t.system_attrs.get("failed_trial") == killed.trial]
    assert len(retried) == 1 and retried[0].user_attrs["run_id"] == killed.id
    assert store.run(killed.id).trial == retried[0].number  # the run names the retry too
    assert [row["epoch"] for row in store.epochs([killed.id])] == [1, 2]
    assert any(f"resuming at epoch {killed.epochs_done + 1}" in out for out in outputs)


@pytest.mark.slow
def test_ctrl_c_interrupts_the_run_and_queues_its_trial_again(sqlite_url: str) -> None:
    victim = worker(sqlite_url, "--trials", "2", "--epochs", "30")
    store = Store(sqlite_url)
    deadline = time.monotonic() + 120
    while not any(run.epochs_done >= 1 for run in store.runs(study="w")):
        assert time.monotonic() < deadline and victim.poll() is None
        time.sleep(0.1)
    victim.send_signal(signal.SIGINT)
    output = victim.communicate(timeout=60)[0]
    assert victim.returncode == 130 and "trial 0 goes back to the study" in output, output
    assert store.runs(study="w")[0].status == "interrupted"
    states = [t.state for t in trials(sqlite_url, "w")]
    assert states == [TrialState.FAIL, TrialState.WAITING]


@pytest.mark.parametrize("command", ["search", "studies", "study"])
def test_help_shows_what_to_type(command: str) -> None:
    result = runner.invoke(app, [command, "--help"])
    assert result.exit_code == 0, result.output
    for typer_word in ("<bool>", "<str>", "<int>", "<path>", "<list", "{"):
        assert typer_word not in result.stdout, typer_word

"""What `biobench studies` and `biobench study NAME` show: plain rows, no rendering."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from biobench.errors import BiobenchError
from biobench.registry import ALGORITHMS
from biobench.search.study import (
    SPEC_ATTR,
    StudySpec,
    load,
    objective_of,
    storage,
    study_names,
)
from biobench.store import RunRecord, RunStatus, Store


def trial_rows(study: optuna.Study, spec: StudySpec, store: Store) -> list[dict[str, Any]]:
    """One row per trial, best first: number, run, state, searched values, objective (the
    run's best test, or validation, top-1 error over the epochs it trained; for a screened
    study also the epochs each trained, so a promoted trial shows its full-length error)."""
    runs = {run.id: run for run in store.runs(study=study.study_name)}
    searched = spec.searched()
    trials = study.get_trials(deepcopy=False)
    retried = {n for t in trials for n in t.system_attrs.get("retry_history", [])}
    rows = []
    for trial in trials:
        if trial.user_attrs.get("surplus"):
            continue  # handed out after the study was full; it never trained
        run = runs.get(trial.user_attrs.get("run_id"))
        row: dict[str, Any] = {
            "trial": trial.number,
            "run": run.id if run else None,
            "state": "retried" if trial.number in retried else trial.state.name.lower(),
            **{name: trial.params.get(name) for name in searched},
            "objective": (
                objective_of(store, run, spec) if run and trial.state in _SCORED else trial.value
            ),
            "epochs": run.epochs_done if run else 0,
        }
        if trial.state == TrialState.FAIL and trial.user_attrs.get("diverged"):
            row["state"] = "diverged"
        rows.append(row)
    return sorted(rows, key=_best_first)


_SCORED = (TrialState.COMPLETE, TrialState.PRUNED)


def _best_first(row: dict[str, Any]) -> tuple:
    scored = row["state"] in ("complete", "pruned") and row["objective"] is not None
    # Longer runs first (a promoted trial beats its screened peers), then lower error.
    return (not scored, -row["epochs"] if scored else 0, row["objective"] or 0, row["trial"])


def best(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    scored = [row for row in rows if row["state"] == "complete" and row["objective"] is not None]
    return scored[0] if scored else None


def best_run(name: str, store: Store) -> tuple[dict[str, Any], RunRecord]:
    """Study `name`'s best finished trial (the first of `biobench study NAME`'s rows whose
    run finished: a screened trial left paused is not a result) and its run."""
    study, spec = load(name, store)
    runs = {run.id: run for run in store.runs(study=name)}
    for row in trial_rows(study, spec, store):
        run = runs.get(row["run"])
        scored = row["state"] == "complete" and row["objective"] is not None
        if scored and run is not None and run.status == RunStatus.finished:
            return row, run
    raise BiobenchError(
        f"study {name!r} has no finished trial yet; `biobench study {name}` shows its trials"
    )


def best_preset(name: str, store: Store) -> tuple[dict[str, Any], RunRecord, dict[str, Any]]:
    """Study `name`'s best finished trial, its run, and that run's configuration as a preset
    entry (what `biobench study NAME --preset NEW` writes to a user preset file)."""
    row, run = best_run(name, store)
    spec = run.spec
    entry: dict[str, Any] = {
        key: spec[key]
        for key in ("algorithm", "architecture", "dataset", "epochs", "batch_size", "seed")
    }
    entry["hparams"] = dict(spec["hparams"])
    for key in ("data_settings", "settings"):  # settings: val_split, precision
        if spec.get(key):
            entry[key] = dict(spec[key])
    epochs = f"{run.epochs_done} epoch{'s' if run.epochs_done != 1 else ''}"
    entry["note"] = (
        f"study {name}, trial {row['trial']} (run {run.id}, best test top-1 "
        f"{run.best_test_top1:.2f}% over {epochs}) in {store.display_url}"
    )
    return row, run, entry


def study_rows(store: Store) -> list[dict[str, Any]]:
    """One row per study: its cell and options, finished / total trials, best and its run."""
    rows = []
    if not study_names(store):
        return rows
    for summary in optuna.get_all_study_summaries(storage(store)):
        attrs = summary.user_attrs.get(SPEC_ATTR)
        if attrs is None:
            continue  # an Optuna study biobench did not make
        study, spec = load(summary.study_name, store)
        trials = trial_rows(study, spec, store)
        top = best(trials)
        rows.append(
            {
                "study": summary.study_name,
                "algorithm": spec.algorithm,
                "architecture": spec.architecture,
                "dataset": spec.dataset,
                "epochs": spec.epochs,
                "sampler": spec.sampler,
                "finished": sum(row["state"] in ("complete", "pruned") for row in trials),
                "trials": len(trials),
                "best": top["objective"] if top else None,
                "best_run": top["run"] if top else None,
            }
        )
    return rows


# "Far worse" than the rule's defaults: an error above theirs by more than FAR_POINTS
# percentage points and by more than FAR_SHARE of theirs: well beyond seed-to-seed noise (a
# point or so on the paper's cells), and still meaningful where errors are high (ImageNet).
FAR_POINTS = 5.0
FAR_SHARE = 0.25


def against_defaults(spec: StudySpec, best_value: float | None, store: Store) -> str | None:
    """A warning when the study's best trial is far worse than the rule at its defaults (the
    best finished run of the same cell and --set values at the rule's defaults, in the same
    database, scored like a trial), or when no such run exists and the space leaves out a
    default: then the search may have looked only where the rule does not learn."""
    if best_value is None:
        return None
    defaults = spec.run_spec({})
    hparams = ALGORITHMS.entry(spec.algorithm).hparams
    outside = [
        f"{name} {_show(defaults.hparams[name])} (searched: {dist.describe()})"
        for name, dist in spec.dists().items()
        if not dist.fixed and not _holds(dist, defaults.hparams.get(name, hparams[name].default))
    ]
    runs = store.runs(status=RunStatus.finished, spec_hash=defaults.spec_hash())
    scores = [v for run in runs if (v := objective_of(store, run, spec)) is not None]
    run_it = f"`biobench run {shlex.join(_run_args(spec))}`"
    if not scores:
        if not outside:
            return None
        return (
            f"the space leaves out {spec.algorithm}'s default {', '.join(outside)}, and no run "
            f"at the defaults is here to compare the best trial ({best_value:.2f}%) with; "
            f"{run_it} makes one"
        )
    reference = min(scores)
    if best_value - reference <= max(FAR_POINTS, FAR_SHARE * reference):
        return None
    why = f"; the space leaves out the default {', '.join(outside)}" if outside else ""
    return (
        f"the best trial ({best_value:.2f}%) is far worse than {spec.algorithm} at its defaults "
        f"({reference:.2f}%, {run_it}){why}; widen the space (--space FILE) before using it"
    )


def _holds(dist: Any, value: Any) -> bool:
    if dist.choices is not None:
        return value in dist.choices
    return dist.low <= value <= dist.high


def _show(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _run_args(spec: StudySpec) -> list[str]:
    args = ["--algo", spec.algorithm, "--arch", spec.architecture, "--data", spec.dataset]
    args += ["--epochs", str(spec.epochs), "--batch-size", str(spec.batch_size)]
    args += ["--seed", str(spec.seed)]
    for name, value in spec.fixed.items():
        args += ["--set", f"{name}={value}"]
    return args


PLOTS = ("history", "importance")


def plot(study: optuna.Study, kind: str, out: Path) -> None:
    """Optuna's optimisation history or hyperparameter importances (fANOVA), drawn with
    matplotlib into `out` (.png, .pdf or .svg)."""
    from biobench.results.plot import _save, figure_format

    figure_format(out)  # refused before anything is drawn
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if kind == "importance" and (len(complete) < 2 or not complete[0].distributions):
        raise BiobenchError(
            f"study {study.study_name} needs at least 2 finished trials with searched values "
            "for importances; use --plot history"
        )
    if not complete:
        raise BiobenchError(f"study {study.study_name} has no finished trial to plot yet")
    from optuna.visualization import matplotlib as optuna_plots

    draw = {
        "history": optuna_plots.plot_optimization_history,
        "importance": optuna_plots.plot_param_importances,
    }[kind]
    axes = draw(study, target_name="best test top-1 error (%)")
    _save(axes.figure, out)

"""`biobench search` (run a study's trials), `biobench studies` and `biobench study NAME`."""

from __future__ import annotations

import csv
import io
import json
import math
import shlex
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

from biobench.cli.app import (
    DbOption,
    app,
    console,
    database_int,
    err_console,
    handle_errors,
    printable,
)
from biobench.cli.launching import (
    GpusOption,
    JobsDirOption,
    LauncherOption,
    PartitionOption,
    SlurmSetOption,
    TimeOption,
    WaitOption,
    refuse_unused,
)


class Sampler(str, Enum):
    random = "random"
    tpe = "tpe"


class Pruner(str, Enum):
    none = "none"
    median = "median"
    hyperband = "hyperband"


class Objective(str, Enum):
    test = "test"
    val = "val"


class Plot(str, Enum):
    history = "history"
    importance = "importance"


class StudyFormat(str, Enum):
    table = "table"
    json = "json"
    csv = "csv"


def _absolute(path: Path | None) -> Path | None:
    """A path as a job on another node or folder must be given it."""
    return path.expanduser().resolve() if path is not None else None


def _name(help_text: str) -> Any:
    return typer.Option(help=help_text, show_default=False, metavar="NAME")


@app.command()
@handle_errors
def search(
    study: Annotated[str, typer.Option("--study", help="The study's name.", metavar="NAME")],
    algo: Annotated[str, typer.Option("--algo", help="Learning algorithm.", metavar="NAME")],
    arch: Annotated[str, typer.Option("--arch", help="Architecture.", metavar="NAME")],
    data: Annotated[str, typer.Option("--data", help="Dataset.", metavar="NAME")],
    trials: Annotated[
        int,
        typer.Option(
            "--trials",
            help="Run trials until the study holds this many finished ones (the paper: 60).",
            callback=database_int,
            metavar="N",
        ),
    ],
    epochs: Annotated[
        int | None, typer.Option(help="Epochs of each trial (default: as `run`).", metavar="N")
    ] = None,
    batch_size: Annotated[
        int | None, typer.Option("--batch-size", help="Minibatch size.", metavar="N")
    ] = None,
    seed: Annotated[
        int | None,
        typer.Option(help="Seed of the sampler and of every trial's run.", metavar="N"),
    ] = None,
    sampler: Annotated[
        Sampler, typer.Option(help="random (the paper's) or tpe; seeded by --seed.")
    ] = Sampler.random,
    pruner: Annotated[
        Pruner, typer.Option(help="Stop poor trials early: none, median or hyperband.")
    ] = Pruner.none,
    objective: Annotated[
        Objective,
        typer.Option(
            help="test: the best test top-1 error over the epochs; val: the best validation "
            "error (needs --set val_split=N), which keeps the test set out of the choice."
        ),
    ] = Objective.test,
    screen_epochs: Annotated[
        int | None,
        typer.Option(
            "--screen-epochs",
            help="Run every trial this many epochs first, then only the --promote best on.",
            show_default=False,
            metavar="E",
        ),
    ] = None,
    promote: Annotated[
        int | None,
        typer.Option(
            help="How many screened trials continue to --epochs.",
            show_default=False,
            metavar="K",
        ),
    ] = None,
    space: Annotated[
        Path | None,
        typer.Option(
            "--space",
            help="A YAML file that replaces the search space (docs: 'Tune a rule with "
            "search'). Default: the rule's own ranges, else the paper's Table 4 "
            "(lr [1e-5, 3e-4] log, ...); "
            "`biobench list algorithms` shows each rule's ('searched').",
            show_default=False,
            metavar="FILE",
        ),
    ] = None,
    overrides: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            help="Fix a hyperparameter or dataset setting (repeatable), e.g. beta2=0.999.",
            show_default=False,
            metavar="NAME=VALUE",
        ),
    ] = None,
    device: Annotated[
        str, typer.Option(help="cpu, cuda, cuda:N or auto.", metavar="DEVICE")
    ] = "auto",
    db: DbOption = None,
    data_dir: Annotated[
        Path | None,
        typer.Option(
            "--data-dir",
            help="Dataset root. Default: $BIOBENCH_DATA_DIR, else $BIOBENCH_HOME/data.",
            show_default=False,
            metavar="DIR",
        ),
    ] = None,
    checkpoint_dir: Annotated[
        Path | None,
        typer.Option(
            "--checkpoint-dir",
            help="Where trials' runs keep their checkpoints.",
            show_default=False,
            metavar="DIR",
        ),
    ] = None,
    launcher: LauncherOption = None,
    workers: Annotated[
        int | None,
        typer.Option(
            help="Worker jobs to start with --launcher (default 1); they share the study.",
            show_default=False,
            min=1,
            metavar="K",
        ),
    ] = None,
    slurm_partition: PartitionOption = None,
    slurm_time: TimeOption = None,
    gpus_per_job: GpusOption = 0,
    slurm_set: SlurmSetOption = None,
    jobs_dir: JobsDirOption = None,
    wait: WaitOption = False,
) -> None:
    """Search a cell's hyperparameters: create the study or join it, run trials until it
    holds --trials finished ones.

    Start it in several terminals or jobs to share the work."""
    from biobench.cli.progress import RichReporter
    from biobench.paths import default_data_dir
    from biobench.search.space import load_space
    from biobench.search.study import make_spec
    from biobench.search.worker import Worker
    from biobench.store import Store
    from biobench.training.runner import resolve_device

    refuse_unused(
        launcher,
        **{
            "--workers": workers,
            "--slurm-partition": slurm_partition,
            "--slurm-time": slurm_time,
            "--gpus-per-job": gpus_per_job,
            "--slurm-set": slurm_set,
            "--jobs-dir": jobs_dir,
            "--wait": wait,
        },
    )
    spec = make_spec(
        algorithm=algo,
        architecture=arch,
        dataset=data,
        epochs=epochs,
        batch_size=batch_size,
        seed=seed,
        overrides=list(overrides or ()),
        space=None,
        space_loader=(lambda params, name: load_space(space, params, name)) if space else None,
        sampler=sampler.value,
        pruner=pruner.value,
        objective=objective.value,
        screen_epochs=screen_epochs,
        promote=promote,
    )
    torch_device = resolve_device(device)
    store = Store(db)
    if launcher is not None:
        from biobench.cli.submit import submit_tasks
        from biobench.errors import BiobenchError
        from biobench.launch import Options
        from biobench.search.study import open_study

        if gpus_per_job > 1:
            raise BiobenchError(
                f"--gpus-per-job {gpus_per_job}: a search worker trains on one device; "
                "start more workers with --workers instead"
            )
        argv = ["search", "--study", study, "--algo", algo, "--arch", arch, "--data", data]
        argv += ["--trials", str(trials), "--sampler", sampler.value, "--pruner", pruner.value]
        argv += ["--objective", objective.value, "--device", device]
        for flag, value in (
            ("--epochs", epochs),
            ("--batch-size", batch_size),
            ("--seed", seed),
            ("--screen-epochs", screen_epochs),
            ("--promote", promote),
            ("--space", _absolute(space)),
            ("--db", db),
            ("--data-dir", data_dir.expanduser().resolve() if data_dir else None),
            (
                "--checkpoint-dir",
                checkpoint_dir.expanduser().resolve() if checkpoint_dir else None,
            ),
        ):
            if value is not None:
                argv += [flag, str(value)]
        for override in overrides or ():
            argv += ["--set", override]
        options = Options(
            launcher=launcher.value,
            workers=workers or 1,
            partition=slurm_partition,
            time=slurm_time,
            gpus_per_job=gpus_per_job,
            slurm_set=tuple(slurm_set or ()),
            folder=jobs_dir,
            name=f"biobench-search-{study}",
        )
        open_study(study, spec, store)  # created (or its spec checked) before any job starts
        submit_tasks(
            [argv] * (workers or 1),
            options,
            store,
            wait_for=wait,
            what=f"search worker(s) for study {study!r}",
        )
        return
    reporter = RichReporter(console, err_console, store.display_url)
    worker = Worker(
        name=study,
        spec=spec,
        store=store,
        device=torch_device,
        data_dir=data_dir or default_data_dir(),
        checkpoint_dir=checkpoint_dir,
        reporter=reporter,
        say=lambda line: console.print(line, highlight=False, markup=False),
    )
    try:
        worker.run(trials)
    except KeyboardInterrupt:
        from biobench.cli.hints import command

        # The same command, its database password masked for the user to fill in.
        again = command(sys.argv[1:])
        back = (
            f"; trial {worker.requeued} goes back to the study, for this or another worker"
            if worker.requeued is not None
            else ""
        )
        raise KeyboardInterrupt(f"interrupted{back}; go on with `{again}`") from None
    _print_trials(study, store, StudyFormat.table, limit=5)
    _warn_against_defaults(study, store)


def _warn_against_defaults(name: str, store: Any, best_value: float | None = None) -> None:
    """Warn when the study's best trial is far worse than its rule at the defaults."""
    from biobench.search.report import against_defaults, best, trial_rows
    from biobench.search.study import load

    study, spec = load(name, store)
    if best_value is None:
        top = best(trial_rows(study, spec, store))
        best_value = top["objective"] if top else None
    warning = against_defaults(spec, best_value, store)
    if warning is not None:
        err_console.print(
            f"warning: {printable(warning)}", style="yellow", highlight=False, markup=False
        )


@app.command()
@handle_errors
def studies(db: DbOption = None) -> None:
    """List the studies: cell, finished / total trials, best error and its run."""
    from biobench.results.render import _table, format_error, print_natural
    from biobench.search.report import study_rows
    from biobench.store import Store

    rows = study_rows(Store(db))
    if not rows:
        console.print("no studies yet: start one with `biobench search`", markup=False)
        return
    table = _table("studies (best: lowest test top-1 error, %)")
    for column in ("study", "cell", "epochs", "sampler", "finished", "best", "run"):
        table.add_column(column, no_wrap=True)
    for row in rows:
        table.add_row(
            row["study"],
            f"{row['algorithm']} / {row['architecture']} / {row['dataset']}",
            str(row["epochs"]),
            row["sampler"],
            f"{row['finished']} / {row['trials']}",
            format_error(row["best"]),
            str(row["best_run"] or "-"),
        )
    print_natural(console, table)


@app.command("study")
@handle_errors
def show_study(
    name: Annotated[str, typer.Argument(help="The study's name.", metavar="NAME")],
    format: Annotated[StudyFormat, typer.Option("--format", help="Output format.")] = (
        StudyFormat.table
    ),
    plot: Annotated[
        Plot | None,
        typer.Option(
            help="Draw Optuna's optimisation history or parameter importances into --out.",
            show_default=False,
        ),
    ] = None,
    out: Annotated[
        Path,
        typer.Option(help="The figure's file (.png, .pdf or .svg), with --plot.", metavar="FILE"),
    ] = Path("study.png"),
    preset: Annotated[
        str | None,
        typer.Option(
            "--preset",
            help="Instead: write the best trial's configuration as preset NAME to a user "
            "preset file, for `biobench run --preset NAME`.",
            show_default=False,
            metavar="NAME",
        ),
    ] = None,
    presets: Annotated[
        Path | None,
        typer.Option(
            "--presets",
            help="The user preset file --preset writes (default: $BIOBENCH_HOME/presets.yaml).",
            show_default=False,
            metavar="FILE",
        ),
    ] = None,
    db: DbOption = None,
) -> None:
    """Show a study's trials, the best first: number, run, state, values, objective."""
    from biobench.errors import BiobenchError
    from biobench.store import Store

    if presets is not None and preset is None:
        raise BiobenchError("--presets names the file --preset writes; add --preset NAME")
    if preset is not None:
        if plot is not None:
            raise BiobenchError("give --preset or --plot, not both")
        _write_preset(name, preset, presets, Store(db))
        return
    if plot is None:
        _print_trials(name, Store(db), format)
        return
    from biobench.search.report import plot as draw
    from biobench.search.study import load

    study, _ = load(name, Store(db))
    draw(study, plot.value, out)
    console.print(f"wrote {out}", highlight=False, markup=False)


def _write_preset(study: str, name: str, file: Path | None, store: Any) -> None:
    """`study NAME --preset NEW`: the best trial's run, as a preset of a user preset file."""
    from biobench.search.report import best_preset
    from biobench.spec.presets import save_user_preset, user_presets_path

    row, run, entry = best_preset(study, store)
    target = file if file is not None else user_presets_path()
    save_user_preset(target, name, entry)
    how = f"biobench run --preset {name}"
    if file is not None:  # a file beside the default one is read when named
        how = f"{how} --presets {shlex.quote(str(target.expanduser().absolute()))}"
    console.print(
        f"wrote preset {name} (study {study}, trial {row['trial']}, run {run.id}: "
        f"{run.best_test_top1:.2f}%) to {printable(str(target))}; run it with `{how}`",
        highlight=False,
        markup=False,
    )
    _warn_against_defaults(study, store, row["objective"])


def _print_trials(name: str, store: Any, format: StudyFormat, limit: int | None = None) -> None:
    from biobench.results.render import _table, format_error, print_natural
    from biobench.search.report import trial_rows
    from biobench.search.study import load

    study, spec = load(name, store)
    rows = trial_rows(study, spec, store)
    if format == StudyFormat.json:
        clean = [{k: _finite(v) for k, v in row.items()} for row in rows]
        sys.stdout.write(json.dumps({"study": name, "spec": spec.to_dict(), "trials": clean}))
        sys.stdout.write("\n")
        return
    if format == StudyFormat.csv:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]) if rows else ["trial"])
        writer.writeheader()
        writer.writerows(rows)
        sys.stdout.write(buffer.getvalue())
        return
    shown = rows[:limit] if limit else rows
    title = f"study {name}: {spec.algorithm} / {spec.architecture} / {spec.dataset}"
    more = f", best {len(shown)} of {len(rows)}" if limit and len(rows) > limit else ""
    which = "validation" if spec.objective == "val" else "test"
    table = _table(f"{title}{more} (objective: best {which} top-1 error, %)")
    columns = ["trial", "run", "state", *spec.searched(), "epochs", "objective"]
    for column in columns:
        table.add_column(column, no_wrap=True)
    for row in shown:
        table.add_row(
            *(
                format_error(row[c])
                if c == "objective"
                else f"{row[c]:.4g}"
                if isinstance(row[c], float)
                else "-"
                if row[c] is None
                else str(row[c])
                for c in columns
            )
        )
    print_natural(console, table)


def _finite(value: Any) -> Any:
    return None if isinstance(value, float) and not math.isfinite(value) else value

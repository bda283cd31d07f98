"""The `biobench` command. Commands parse options, call the library, render; nothing more.

Errors a user can fix arrive as `BiobenchError` and print as one red line with a non-zero exit;
anything else is a bug, shown as one line too unless `--debug` asks for the traceback.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console

from biobench.errors import BiobenchError

app = typer.Typer(
    help="Benchmark biologically-motivated learning rules against backprop.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
db_app = typer.Typer(help="Manage the results database's schema.", no_args_is_help=True)
app.add_typer(db_app, name="db")

console = Console()
err_console = Console(stderr=True)
_state = {"debug": False}
F = TypeVar("F", bound=Callable[..., Any])

DbOption = Annotated[
    str | None,
    typer.Option(
        "--db",
        help="Results database URL (SQLAlchemy). Default: $BIOBENCH_DB, else "
        "sqlite:///$BIOBENCH_HOME/results.db.",
        show_default=False,
    ),
]


class ExportFormat(str, Enum):
    csv = "csv"
    json = "json"


def _fail(message: str, code: int) -> typer.Exit:
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def handle_errors(command: F) -> F:
    """Turn exceptions into one line and an exit code (2: bad input, 1: bug, 130: Ctrl-C)."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except BiobenchError as error:
            if _state["debug"]:
                raise
            raise _fail(str(error), 2) from None
        except KeyboardInterrupt:
            raise _fail("interrupted", 130) from None
        except (typer.Exit, typer.Abort):
            raise
        except Exception as error:
            if _state["debug"]:
                raise
            raise _fail(
                f"internal error: {type(error).__name__}: {error} "
                "(rerun with `biobench --debug ...` for the traceback)",
                1,
            ) from None

    return wrapper  # type: ignore[return-value]


def _version(value: bool) -> None:
    if value:
        from biobench import __version__

        console.print(f"biobench {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show version.")
    ] = False,
) -> None:
    _state["debug"] = debug


@app.command()
@handle_errors
def run(
    algo: Annotated[str, typer.Option("--algo", help="Learning algorithm, e.g. bp.")] = "bp",
    arch: Annotated[str, typer.Option("--arch", help="Architecture, e.g. fc.")] = "fc",
    data: Annotated[
        str, typer.Option("--data", help="Dataset: mnist, or digits/synthetic (offline).")
    ] = "digits",
    epochs: Annotated[int | None, typer.Option(help="Epochs (default: benchmarks.yaml).")] = None,
    batch_size: Annotated[
        int | None, typer.Option("--batch-size", help="Minibatch size (default: benchmarks.yaml).")
    ] = None,
    seed: Annotated[
        int | None, typer.Option(help="Seed for initialisation and data order.")
    ] = None,
    device: Annotated[str, typer.Option(help="cpu, cuda or auto.")] = "auto",
    db: DbOption = None,
    data_dir: Annotated[
        Path | None,
        typer.Option(
            "--data-dir",
            help="Dataset root. Default: $BIOBENCH_DATA_DIR, else $BIOBENCH_HOME/data.",
            show_default=False,
        ),
    ] = None,
    download: Annotated[bool, typer.Option(help="Download missing dataset files.")] = False,
    overrides: Annotated[
        list[str] | None,
        typer.Option(
            "--set", help="Hyperparameter override name=value (repeatable).", show_default=False
        ),
    ] = None,
) -> None:
    """Train one algorithm x architecture x dataset and stream each epoch to the database."""
    from biobench.paths import default_data_dir
    from biobench.progress import RichReporter
    from biobench.runner import execute, resolve_device
    from biobench.spec import resolve
    from biobench.store import Store

    spec = resolve(
        algorithm=algo,
        architecture=arch,
        dataset=data,
        epochs=epochs,
        batch_size=batch_size,
        seed=seed,
        overrides=overrides or [],
    )
    torch_device = resolve_device(device)
    store = Store(db)

    def started(run_id: int, net: Any) -> None:
        console.print(
            f"run {run_id}: {spec.algorithm} / {spec.architecture} / {spec.dataset}, "
            f"{net.num_parameters():,} parameters, {spec.epochs} epochs of batch "
            f"{spec.batch_size} on {torch_device}, seed {spec.seed} -> {store.display_url}",
            highlight=False,
        )

    run_id = execute(
        spec,
        store=store,
        device=torch_device,
        data_dir=data_dir or default_data_dir(),
        download=download,
        reporter=RichReporter(console),
        on_start=started,
    )
    best = store.run(run_id)["best_test_top1"]
    console.print(f"run {run_id} finished: best test top-1 error {best:.2f}%", highlight=False)


@app.command("runs")
@handle_errors
def list_runs(
    db: DbOption = None,
    limit: Annotated[int, typer.Option(help="Show the newest N runs.", min=1)] = 50,
) -> None:
    """List runs, newest first, with their progress and best test error."""
    from biobench.report import runs_table
    from biobench.store import Store

    runs = Store(db).runs(limit=limit)
    if not runs:
        console.print("no runs yet: start one with `biobench run`")
        return
    console.print(runs_table(runs))


@app.command()
@handle_errors
def show(
    run_id: Annotated[int, typer.Argument(help="Run id, as `biobench runs` lists it.")],
    db: DbOption = None,
) -> None:
    """Show one run: its resolved spec, environment and per-epoch table."""
    from biobench.report import run_detail
    from biobench.store import Store

    store = Store(db)
    run_row = store.run(run_id)
    console.print(run_detail(run_row, store.epochs([run_id])))


@app.command()
@handle_errors
def export(
    format: Annotated[
        ExportFormat, typer.Option("--format", help="csv or json.")
    ] = ExportFormat.csv,
    out: Annotated[
        Path | None, typer.Option("--out", help="Write here instead of standard output.")
    ] = None,
    run_ids: Annotated[
        list[int] | None, typer.Option("--run", help="Only this run id (repeatable).")
    ] = None,
    db: DbOption = None,
) -> None:
    """Export runs and their epochs: CSV (one row per epoch) or nested JSON."""
    from biobench.report import export_csv, export_json
    from biobench.store import Store

    store = Store(db)
    runs = store.runs(run_ids or None)
    if run_ids:
        missing = sorted(set(run_ids) - {run["id"] for run in runs})
        if missing:
            raise BiobenchError(
                f"no run with id {missing[0]} in {store.display_url}; `biobench runs` lists them"
            )
    epochs = store.epochs([run["id"] for run in runs])
    text = (export_csv if format == ExportFormat.csv else export_json)(runs, epochs)
    if out is None:
        sys.stdout.write(text)
        return
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(out.name + ".tmp")
        tmp.write_text(text)
        tmp.replace(out)  # never leave a half-written export behind
    except OSError as error:
        raise BiobenchError(
            f"cannot write {out}: {error.strerror}; choose another --out"
        ) from None
    console.print(f"wrote {len(runs)} run(s), {len(epochs)} epoch row(s) to {out}")


@db_app.command("upgrade")
@handle_errors
def db_upgrade(db: DbOption = None) -> None:
    """Create the schema, or migrate an existing database to this biobench's schema."""
    from biobench.store import Store

    store = Store(db, check=False)
    before, after = store.upgrade()
    if before == after:
        console.print(f"{store.display_url} is already at schema {after}")
    else:
        console.print(f"{store.display_url}: schema {before or '(empty)'} -> {after}")


@db_app.command("current")
@handle_errors
def db_current(db: DbOption = None) -> None:
    """Show the database's schema revision and this biobench's."""
    from biobench.store import Store

    store = Store(db, check=False)
    current, head = store.current_revision(), store.head_revision()
    state = (
        "up to date" if current == head else "run `biobench db upgrade`" if current else "empty"
    )
    console.print(
        f"{store.display_url}: schema {current or '(none)'}, biobench head {head} ({state})"
    )


def main() -> None:
    app()

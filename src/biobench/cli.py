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
COMPARE_WIDTH = 132
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
    algo: Annotated[
        str | None,
        typer.Option("--algo", help="Learning algorithm (default bp).", show_default=False),
    ] = None,
    arch: Annotated[
        str | None, typer.Option("--arch", help="Architecture (default fc).", show_default=False)
    ] = None,
    data: Annotated[
        str | None,
        typer.Option(
            "--data",
            help="Dataset (default digits: offline, no download).",
            show_default=False,
        ),
    ] = None,
    bench: Annotated[
        str | None,
        typer.Option(
            "--bench",
            help="Run a preset of benchmarks.yaml, e.g. mnist-fc-dtp-alt.",
            show_default=False,
        ),
    ] = None,
    suite: Annotated[
        str | None,
        typer.Option(
            "--suite",
            help="Run every preset of a group in turn, e.g. smoke or paper-mnist.",
            show_default=False,
        ),
    ] = None,
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
            "--set",
            help="Hyperparameter or dataset setting name=value (repeatable).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Train one algorithm x architecture x dataset (or a preset, or a suite of presets) and
    stream each epoch to the database."""
    from biobench.paths import default_data_dir
    from biobench.runner import resolve_device
    from biobench.spec import load_benchmarks, resolve
    from biobench.store import Store

    named = [
        flag
        for flag, value in (("--algo", algo), ("--arch", arch), ("--data", data))
        if value is not None
    ]
    if bench and suite:
        raise BiobenchError("give --bench or --suite, not both")
    if (bench or suite) and named:
        raise BiobenchError(
            f"{bench and '--bench' or '--suite'} sets the algorithm, "
            f"architecture and dataset; drop {', '.join(named)}"
        )
    options = dict(epochs=epochs, batch_size=batch_size, seed=seed, overrides=overrides or [])
    if suite:
        names = load_benchmarks().group(suite)
        specs = [resolve(benchmark=name, **options) for name in names]
    else:
        specs = [
            resolve(
                benchmark=bench,
                algorithm=None if bench else algo or "bp",
                architecture=None if bench else arch or "fc",
                dataset=None if bench else data or "digits",
                **options,
            )
        ]
    torch_device = resolve_device(device)
    store = Store(db)
    root = data_dir or default_data_dir()
    if not suite:
        _train(specs[0], store, torch_device, root, download)
        return
    failed = []
    for index, spec in enumerate(specs, 1):
        console.rule(f"[{index}/{len(specs)}] {spec.benchmark}")
        try:
            _train(spec, store, torch_device, root, download)
        except Exception as error:  # one failed benchmark does not stop the suite
            if _state["debug"]:
                raise
            err_console.print(f"[bold red]error:[/] {spec.benchmark}: {error}", highlight=False)
            failed.append(spec.benchmark)
    _print_comparison(store, {spec.dataset for spec in specs})
    _print_check(store, [spec.benchmark for spec in specs], fail_missing=True)
    if failed:
        raise BiobenchError(
            f"{len(failed)} of {len(specs)} benchmark(s) failed: {', '.join(failed)}"
        )


def _train(spec: Any, store: Any, device: Any, root: Path, download: bool) -> int:
    from biobench.progress import RichReporter
    from biobench.runner import execute

    def started(run_id: int, net: Any) -> None:
        name = f" [{spec.benchmark}]" if spec.benchmark else ""
        console.print(
            f"run {run_id}{name}: {spec.algorithm} / {spec.architecture} / {spec.dataset}, "
            f"{net.num_parameters():,} parameters, {spec.epochs} epochs of batch "
            f"{spec.batch_size} on {device}, seed {spec.seed} -> {store.display_url}",
            highlight=False,
        )

    run_id = execute(
        spec,
        store=store,
        device=device,
        data_dir=root,
        download=download,
        reporter=RichReporter(console),
        on_start=started,
    )
    best = store.run(run_id)["best_test_top1"]
    console.print(f"run {run_id} finished: best test top-1 error {best:.2f}%", highlight=False)
    return run_id


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


class ListWhat(str, Enum):
    benchmarks = "benchmarks"
    suites = "suites"
    algorithms = "algorithms"
    architectures = "architectures"
    datasets = "datasets"


@app.command("list")
@handle_errors
def list_entries(
    what: Annotated[ListWhat, typer.Argument(help="What to list.")] = ListWhat.benchmarks,
) -> None:
    """List presets, suites, algorithms, architectures or datasets."""
    from rich.table import Table

    from biobench.registry import ALGORITHMS, ARCHITECTURES, DATASETS
    from biobench.spec import load_benchmarks

    config = load_benchmarks()
    table = Table(box=None, pad_edge=False)
    if what == ListWhat.benchmarks:
        for column in ("benchmark", "algorithm", "arch", "data", "epochs", "reference test %"):
            table.add_column(column)
        for name, preset in config.presets.items():
            epochs = preset.run.get("epochs") or config.datasets.get(preset.dataset, {}).get(
                "epochs", config.run["epochs"]
            )
            reference = "/".join(
                f"{preset.reference[k]:.2f}"
                for k in ("test_top1", "test_top5")
                if k in preset.reference
            )
            mode = f" ({preset.mode})" if preset.mode else ""
            table.add_row(
                name,
                preset.algorithm + mode,
                preset.architecture,
                preset.dataset,
                str(epochs),
                f"{reference} ±{preset.tolerance:g}",
            )
    elif what == ListWhat.suites:
        table.add_column("suite")
        table.add_column("benchmarks")
        for name, members in config.groups.items():
            table.add_row(name, f"{len(members)}: {', '.join(members)}")
    else:
        registry = {
            ListWhat.algorithms: ALGORITHMS,
            ListWhat.architectures: ARCHITECTURES,
            ListWhat.datasets: DATASETS,
        }[what]
        table.add_column(what.value[:-1])
        table.add_column("aliases")
        for name in registry.names():
            table.add_row(name, ", ".join(registry.aliases(name)))
    console.print(table)


class CompareFormat(str, Enum):
    table = "table"
    markdown = "markdown"
    csv = "csv"
    json = "json"


def _print_comparison(
    store: Any, datasets: set[str] | None = None, arch: str | None = None, final: bool = False
) -> None:
    from biobench.compare import load_comparison, rich_tables

    frame = load_comparison(store, datasets, arch, final)
    if frame.empty:
        console.print("no finished runs to compare: run some with `biobench run --suite smoke`")
        return
    # The paper's layout is wide; below ~130 columns it would wrap inside cells, so print it
    # at that width at least and let a narrow terminal wrap whole lines instead.
    wide = Console(width=max(console.width, COMPARE_WIDTH), highlight=False)
    for table in rich_tables(frame):
        wide.print(table)
    console.print(
        "Δ: biobench minus the paper (test top-1); vs BP: minus BP on the same "
        "architecture and protocol; ±: std over seeds",
        highlight=False,
    )


@app.command()
@handle_errors
def compare(
    data: Annotated[str | None, typer.Option("--data", help="Only this dataset.")] = None,
    arch: Annotated[str | None, typer.Option("--arch", help="Only this architecture.")] = None,
    format: Annotated[CompareFormat, typer.Option("--format", help="Output format.")] = (
        CompareFormat.table
    ),
    final: Annotated[
        bool, typer.Option("--final", help="Final-epoch errors instead of the best epoch's.")
    ] = False,
    db: DbOption = None,
) -> None:
    """Every algorithm against BP and against the paper, in the paper's table layout."""
    from biobench.compare import load_comparison, render_csv, render_json, render_markdown
    from biobench.registry import ARCHITECTURES, DATASETS, load_all
    from biobench.store import Store

    load_all()
    data = DATASETS.canonical(data) if data else None
    arch = ARCHITECTURES.canonical(arch) if arch else None
    store = Store(db)
    if format == CompareFormat.table:
        _print_comparison(store, {data} if data else None, arch, final)
        return
    frame = load_comparison(store, {data} if data else None, arch, final)
    renderer = {
        CompareFormat.markdown: render_markdown,
        CompareFormat.csv: render_csv,
        CompareFormat.json: render_json,
    }[format]
    sys.stdout.write(renderer(frame) if not frame.empty else "")


def _print_check(
    store: Any, names: list[str] | None, fail_missing: bool, junit: Path | None = None
) -> list[Any]:
    from biobench.compare import check_store, describe, junit_xml

    verdicts = check_store(store, names)
    style = {"pass": "green", "improved": "cyan", "regressed": "bold red", "missing": "yellow"}
    for v in verdicts:
        console.print(
            f"[{style[v.verdict]}]{v.verdict:>9}[/]  {v.benchmark}  {describe(v)}", highlight=False
        )
    if junit is not None:
        try:
            junit.parent.mkdir(parents=True, exist_ok=True)
            junit.write_text(junit_xml(verdicts, fail_missing))
        except OSError as error:
            raise BiobenchError(f"cannot write {junit}: {error.strerror}") from None
    return verdicts


@app.command()
@handle_errors
def check(
    bench: Annotated[
        list[str] | None,
        typer.Option("--bench", help="Only this preset (repeatable).", show_default=False),
    ] = None,
    suite: Annotated[
        str | None, typer.Option("--suite", help="Only this group's presets.")
    ] = None,
    junit: Annotated[
        Path | None, typer.Option("--junit", help="Also write a JUnit XML report.")
    ] = (None),
    db: DbOption = None,
) -> None:
    """Each preset's finished runs against its reference: exits 1 on a regression (and on a
    missing result when presets are named with --bench or --suite)."""
    from biobench.spec import load_benchmarks
    from biobench.store import Store

    names = None
    if suite:
        names = load_benchmarks().group(suite)
    if bench:
        names = [*(names or []), *bench]
    verdicts = _print_check(Store(db), names, fail_missing=names is not None, junit=junit)
    if not verdicts:
        console.print("no finished preset runs to check: `biobench run --suite smoke` makes some")
    counts = {
        k: sum(v.verdict == k for v in verdicts)
        for k in ("pass", "improved", "regressed", "missing")
    }
    console.print(", ".join(f"{n} {k}" for k, n in counts.items() if n), highlight=False)
    bad = counts["regressed"] + (counts["missing"] if names is not None else 0)
    if bad:
        raise typer.Exit(1)


@app.command()
@handle_errors
def plot(
    run_ids: Annotated[
        list[int] | None,
        typer.Argument(help="Runs whose learning curves to draw.", show_default=False),
    ] = None,
    out: Annotated[
        Path, typer.Option("--out", help="The image file to write (.png, .pdf, .svg).")
    ] = Path("biobench.png"),
    compare_data: Annotated[
        str | None,
        typer.Option(
            "--compare",
            help="Instead: a bar chart of the comparison for this dataset "
            "('all' for every dataset).",
            show_default=False,
        ),
    ] = None,
    db: DbOption = None,
) -> None:
    """Learning curves of runs, or a bar chart of a comparison table."""
    from biobench.compare import load_comparison
    from biobench.plot import comparison_bars, learning_curves
    from biobench.store import Store

    store = Store(db)
    if compare_data:
        frame = load_comparison(store, None if compare_data == "all" else {compare_data})
        if frame.empty:
            raise BiobenchError(f"no finished runs to compare for {compare_data!r}")
        comparison_bars(frame, out)
    else:
        if not run_ids:
            raise BiobenchError(
                "name the runs to plot (e.g. `biobench plot 3 4`) or pass --compare"
            )
        runs = [store.run(run_id) for run_id in run_ids]
        learning_curves(runs, store.epochs(run_ids), out)
    console.print(f"wrote {out}")


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

"""Looking at results: runs, show, export, compare, check, plot."""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

from biobench.cli.app import (
    BiobenchError,
    DbOption,
    PresetsOption,
    app,
    console,
    database_int,
    handle_errors,
    printable,
)


class ExportFormat(str, Enum):
    csv = "csv"
    json = "json"


@app.command("runs")
@handle_errors
def list_runs(
    db: DbOption = None,
    limit: Annotated[
        int, typer.Option(help="Show the newest N runs.", callback=database_int, metavar="N")
    ] = 50,
    status: Annotated[
        str | None,
        typer.Option(
            help="Only runs in this status: running, finished, failed, interrupted, diverged "
            "or lost.",
            show_default=False,
            metavar="STATUS",
        ),
    ] = None,
    algo: Annotated[
        str | None,
        typer.Option("--algo", help="Only this algorithm.", show_default=False, metavar="NAME"),
    ] = None,
    arch: Annotated[
        str | None,
        typer.Option("--arch", help="Only this architecture.", show_default=False, metavar="NAME"),
    ] = None,
    data: Annotated[
        str | None,
        typer.Option("--data", help="Only this dataset.", show_default=False, metavar="NAME"),
    ] = None,
    preset: Annotated[
        str | None,
        typer.Option(
            "--preset",
            "--bench",
            help="Only runs of this preset.",
            show_default=False,
            metavar="NAME",
        ),
    ] = None,
) -> None:
    """List runs, newest first, with their progress and best test error."""
    from biobench.registry import ALGORITHMS, ARCHITECTURES, DATASETS, load_all
    from biobench.results.render import print_fitted, runs_table
    from biobench.store import RunStatus, Store

    if status is not None and status not in {s.value for s in RunStatus}:
        raise BiobenchError(
            f"unknown status {status!r}; choose one of: {', '.join(s.value for s in RunStatus)}"
        )
    if algo or arch or data:  # filter by the canonical name, whichever alias the user typed
        load_all()
    columns = {
        key: value
        for key, value in (
            ("algorithm", algo and ALGORITHMS.canonical(algo)),
            ("architecture", arch and ARCHITECTURES.canonical(arch)),
            ("dataset", data and DATASETS.canonical(data)),
            ("preset", preset),
        )
        if value
    }
    runs = Store(db).runs(limit=limit, status=status, **columns)
    if not runs:
        console.print(
            "no runs yet: start one with `biobench run`"
            if not (columns or status)
            else "no run matches",
            markup=False,
        )
        return
    print_fitted(console, runs_table(runs))  # nothing cut, in any terminal or a pipe


@app.command()
@handle_errors
def show(
    run_id: Annotated[
        int,
        typer.Argument(
            help="Run id, as `biobench runs` lists it.", callback=database_int, metavar="RUN_ID"
        ),
    ],
    alignment: Annotated[
        bool,
        typer.Option(
            "--alignment",
            help="Instead: each layer's alignment with backprop, per epoch (update angle, "
            "signal cosine, feedback-weight angle).",
        ),
    ] = False,
    db: DbOption = None,
) -> None:
    """Show one run: its resolved spec, environment and per-epoch table."""
    from biobench.results.render import run_detail
    from biobench.store import Store

    store = Store(db)
    run_row = store.run(run_id)
    if alignment:
        from biobench.results.alignment import alignment_tables

        console.print(alignment_tables(store.layer_metrics([run_id])))
        return
    console.print(run_detail(run_row, store.epochs([run_id])))


@app.command()
@handle_errors
def export(
    format: Annotated[
        ExportFormat, typer.Option("--format", help="csv or json.")
    ] = ExportFormat.csv,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Write here instead of standard output.", metavar="FILE"),
    ] = None,
    run_ids: Annotated[
        list[int] | None,
        typer.Option(
            "--run", help="Only this run id (repeatable).", callback=database_int, metavar="ID"
        ),
    ] = None,
    layers: Annotated[
        bool,
        typer.Option(
            "--layers",
            help="CSV: the per-layer alignment rows instead (a long table: run, epoch, layer). "
            "JSON always nests them under each epoch.",
        ),
    ] = False,
    db: DbOption = None,
) -> None:
    """Export runs and their epochs: CSV (one row per epoch) or nested JSON."""
    from biobench.files import atomic_write
    from biobench.results.render import export_csv, export_json, export_layers_csv
    from biobench.store import Store

    store = Store(db)
    runs = store.runs(run_ids or None)
    if run_ids:
        missing = sorted(set(run_ids) - {run.id for run in runs})
        if missing:
            raise BiobenchError(
                f"no run with id {missing[0]} in {store.display_url}; `biobench runs` lists them"
            )
    epochs = store.epochs([run.id for run in runs])
    per_layer = store.layer_metrics([run.id for run in runs])
    if format == ExportFormat.json:
        text = export_json(runs, epochs, per_layer)
    elif layers:
        text = export_layers_csv(per_layer)
    else:
        text = export_csv(runs, epochs)
    if out is None:
        sys.stdout.write(text)
        return
    atomic_write(out, text, fix="choose another --out")
    console.print(
        f"wrote {len(runs)} run(s), {len(epochs)} epoch row(s) to {printable(str(out))}",
        markup=False,
    )


class CompareFormat(str, Enum):
    table = "table"
    markdown = "markdown"
    csv = "csv"
    json = "json"


class Selection(str, Enum):  # results.compare.SELECTIONS
    best_test = "best-test"
    best_val = "best-val"
    final = "final"


SelectOption = Annotated[
    Selection | None,
    typer.Option(
        "--select",
        help="Which epoch scores a run: best-test (lowest test error), best-val (lowest "
        "validation error; needs --set val_split=N) or final. Default: each cell the way its "
        "reference was (the paper: best-test; biotorch: best-val).",
        show_default=False,
    ),
]


def selection(value: Selection | str | None) -> str | None:
    return value.value if isinstance(value, Selection) else value


def nothing_to_compare(datasets: set[str] | None) -> str:
    """What `compare` and `plot --compare` say when no finished run matches (exit 0, like an
    empty `runs`): the command that makes some, a suite of presets on that dataset alone when
    benchmarks.yaml has one."""
    if not datasets:
        return "no finished runs to compare: run some with `biobench run --suite smoke`"
    from biobench.spec import load_presets

    (dataset,) = datasets
    config = load_presets()
    suite = next(
        (
            name
            for name, members in config.suites.items()
            if members and all(config.presets[m].dataset == dataset for m in members)
        ),
        None,
    )
    how = f"--suite {suite}" if suite else f"--data {dataset}"
    return f"no finished {dataset} runs to compare: run some with `biobench run {how}`"


def print_comparison(
    store: Any,
    datasets: set[str] | None = None,
    arch: str | None = None,
    run_ids: list[int] | None = None,
    studies: list[str] | None = None,
    select: str | None = None,
) -> None:
    from biobench.results.compare import load_comparison, print_tables

    frame = load_comparison(store, datasets, arch, run_ids=run_ids, studies=studies, select=select)
    if frame.empty:
        console.print(nothing_to_compare(datasets), markup=False)
        return
    print_tables(console, frame)
    console.print(
        "Δ: biobench minus the reference column (test top-1); vs BP: minus BP on the same "
        "architecture and protocol; ±: std over seeds",
        highlight=False,
    )
    if studies:
        console.print(
            "(study NAME): the study's best finished trial (`biobench study NAME`); its vs BP "
            "is to a BP study's best where the table has one",
            highlight=False,
            markup=False,
        )


@app.command()
@handle_errors
def compare(
    data: Annotated[
        str | None, typer.Option("--data", help="Only this dataset.", metavar="NAME")
    ] = None,
    arch: Annotated[
        str | None, typer.Option("--arch", help="Only this architecture.", metavar="NAME")
    ] = None,
    format: Annotated[CompareFormat, typer.Option("--format", help="Output format.")] = (
        CompareFormat.table
    ),
    final: Annotated[bool, typer.Option("--final", help="The same as --select final.")] = False,
    select: SelectOption = None,
    study: Annotated[
        list[str] | None,
        typer.Option(
            "--study",
            help="Add this study's best trial (repeatable): its tables only, beside the "
            "reference and the plain runs of its protocol.",
            show_default=False,
            metavar="NAME",
        ),
    ] = None,
    cost: Annotated[
        bool,
        typer.Option(
            "--cost",
            help="Instead: what each rule costs beside BP on the same net, device, batch and "
            "precision (time per step, memory, FLOPs) and its last mean update angle.",
        ),
    ] = False,
    db: DbOption = None,
    presets: PresetsOption = None,
) -> None:
    """Every algorithm against BP and against the paper, in the paper's table layout."""
    from biobench.registry import ARCHITECTURES, DATASETS, load_all
    from biobench.results.compare import load_comparison, render_csv, render_json, render_markdown
    from biobench.spec.presets import add_preset_files
    from biobench.store import Store

    add_preset_files(presets)
    load_all()
    data = DATASETS.canonical(data) if data else None
    arch = ARCHITECTURES.canonical(arch) if arch else None
    store = Store(db)
    if cost:
        print_cost(store, data, arch, format)
        return
    select = "final" if final else selection(select)
    if format == CompareFormat.table:
        print_comparison(store, {data} if data else None, arch, studies=study, select=select)
        return
    frame = load_comparison(store, {data} if data else None, arch, studies=study, select=select)
    if frame.empty:
        return
    if format == CompareFormat.markdown:
        sys.stdout.write(render_markdown(frame, final))
    else:  # one row per cell; its `selection` says which epoch its errors are from
        sys.stdout.write((render_csv if format == CompareFormat.csv else render_json)(frame))


def _markdown(table: Any) -> str:
    """A rich table as a Markdown one, under its title, as `compare --format markdown`."""
    columns = table.columns
    lines = [
        f"### {table.title}",
        "",
        "| " + " | ".join(str(column.header) for column in columns) + " |",
        "|" + "|".join("---:" if c.justify == "right" else "---" for c in columns) + "|",
    ]
    rows = zip(*(list(column.cells) for column in columns), strict=True)
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def print_cost(store: Any, data: str | None, arch: str | None, format: CompareFormat) -> None:
    from biobench.results.alignment import cost_frame, cost_tables

    filters = {k: v for k, v in (("dataset", data), ("architecture", arch)) if v}
    runs = [r for r in store.runs(status="finished", **filters) if r.study is None]
    ids = [run.id for run in runs]
    frame = cost_frame(runs, store.epochs(ids), store.layer_metrics(ids))
    if frame.empty:
        console.print("no finished runs with cost figures to compare", markup=False)
        return
    if format == CompareFormat.csv:
        sys.stdout.write(frame.drop(columns=["order"]).to_csv(index=False))
    elif format == CompareFormat.json:
        sys.stdout.write(frame.drop(columns=["order"]).to_json(orient="records", indent=1))
    elif format == CompareFormat.markdown:
        sys.stdout.write("\n\n".join(map(_markdown, cost_tables(frame))) + "\n")
    else:
        for table in cost_tables(frame):
            console.print(table)
        console.print(
            "x BP: the rule's median time per training step (every pass of an epoch, per "
            "minibatch) or peak memory over BP's; IQR: the middle half of its epochs' step "
            "times; peak RSS: the process's resident memory (CPU), peak: the GPU allocator's; "
            "update angle: degrees to BP's gradient, the last epoch's mean over layers; "
            "threads: torch's CPU threads per process; load: the machine's 1-minute load "
            "average as a run started (above its cores, timings are not comparable)",
            highlight=False,
        )


def print_check(
    store: Any,
    names: list[str] | None,
    fail_missing: bool,
    junit: Path | None = None,
    select: str | None = None,
) -> list[Any]:
    from rich.markup import escape

    from biobench.files import atomic_write
    from biobench.results.check import NO_REFERENCE, check_store, describe, junit_xml

    verdicts = check_store(store, names, select)
    style = {
        "pass": "green",
        "improved": "cyan",
        "regressed": "bold red",
        "missing": "yellow",
        NO_REFERENCE: "magenta",
    }
    width = max([9, *(len(v.verdict) for v in verdicts)])
    for v in verdicts:
        console.print(
            f"[{style[v.verdict]}]{v.verdict:>{width}}[/]  {escape(printable(v.preset))}  "
            f"{escape(printable(describe(v)))}",
            highlight=False,
        )
    if junit is not None:
        atomic_write(junit, junit_xml(verdicts, fail_missing), fix="choose another --junit")
    return verdicts


@app.command()
@handle_errors
def check(
    preset: Annotated[
        list[str] | None,
        typer.Option(
            "--preset",
            "--bench",
            help="Only this preset (repeatable).",
            show_default=False,
            metavar="NAME",
        ),
    ] = None,
    suite: Annotated[
        str | None, typer.Option("--suite", help="Only this suite's presets.", metavar="NAME")
    ] = None,
    junit: Annotated[
        Path | None,
        typer.Option("--junit", help="Also write a JUnit XML report.", metavar="FILE"),
    ] = None,
    select: SelectOption = None,
    db: DbOption = None,
    presets: PresetsOption = None,
) -> None:
    """Check preset runs against their references; exit 1 on a regression.

    Presets named with --preset or --suite that have no finished run also fail the check;
    a preset without a reference is reported as such, and fails nothing.
    """
    from biobench.results.check import VERDICTS
    from biobench.spec import load_presets
    from biobench.spec.presets import add_preset_files
    from biobench.store import Store

    add_preset_files(presets)
    names = None
    if suite:
        names = load_presets().suite(suite)
    if preset:
        names = [*(names or []), *preset]
    verdicts = print_check(
        Store(db), names, fail_missing=names is not None, junit=junit, select=selection(select)
    )
    if not verdicts:
        console.print(
            "no finished preset runs to check: `biobench run --suite smoke` makes some",
            markup=False,
        )
    counts = {k: sum(v.verdict == k for v in verdicts) for k in VERDICTS}
    console.print(", ".join(f"{n} {k}" for k, n in counts.items() if n), highlight=False)
    bad = counts["regressed"] + (counts["missing"] if names is not None else 0)
    if bad:
        raise typer.Exit(1)


@app.command()
@handle_errors
def plot(
    run_ids: Annotated[
        list[int] | None,
        typer.Argument(
            help="Runs whose learning curves to draw (one or more).",
            show_default=False,
            callback=database_int,
            metavar="RUN_ID",
        ),
    ] = None,
    out: Annotated[
        Path,
        typer.Option("--out", help="The image file to write (.png, .pdf, .svg).", metavar="FILE"),
    ] = Path("biobench.png"),
    alignment: Annotated[
        bool,
        typer.Option(
            "--alignment", help="Instead: one run's alignment per epoch, one line per layer."
        ),
    ] = False,
    compare_data: Annotated[
        str | None,
        typer.Option(
            "--compare",
            help="Instead: a bar chart of the comparison for this dataset "
            "('all' for every dataset).",
            show_default=False,
            metavar="DATASET",
        ),
    ] = None,
    study: Annotated[
        list[str] | None,
        typer.Option(
            "--study",
            help="With --compare: add this study's best trial (repeatable), as `compare "
            "--study` does: its panels only, beside the plain runs of its protocol.",
            show_default=False,
            metavar="NAME",
        ),
    ] = None,
    select: SelectOption = None,
    db: DbOption = None,
) -> None:
    """Learning curves of runs, or a bar chart of a comparison table."""
    from biobench.registry import DATASETS, load_all
    from biobench.results.compare import load_comparison
    from biobench.results.plot import comparison_bars, figure_format, learning_curves
    from biobench.store import Store

    figure_format(out)  # refused before the database is opened and the figure drawn
    if compare_data and (run_ids or alignment):
        drawn = "--alignment" if alignment else "run ids"
        raise BiobenchError(
            f"--compare draws a comparison's bars, not runs: drop the {drawn}, or drop "
            "--compare and plot the runs"
        )
    if study and not compare_data:
        raise BiobenchError(
            "--study adds a study to a comparison's bars: pass --compare DATASET too "
            "(e.g. `biobench plot --compare all --study NAME`)"
        )
    if compare_data:
        load_all()
        datasets = None if compare_data == "all" else {DATASETS.canonical(compare_data)}
        frame = load_comparison(Store(db), datasets, studies=study, select=selection(select))
        if frame.empty:  # as `compare` does: nothing to draw is an answer, not an error
            console.print(f"{nothing_to_compare(datasets)}; no figure written", markup=False)
            return
        comparison_bars(frame, out)
    elif not run_ids:
        raise BiobenchError("name the runs to plot (e.g. `biobench plot 3 4`) or pass --compare")
    elif alignment:
        from biobench.results.alignment import alignment_plot

        if len(run_ids) != 1:
            raise BiobenchError(
                "--alignment draws one run: name one (e.g. `biobench plot 3 --alignment`)"
            )
        store = Store(db)
        rows = store.layer_metrics(run_ids)
        if not rows:
            raise BiobenchError(
                f"run {run_ids[0]} has no alignment rows (run with alignment on, the default)"
            )
        alignment_plot(store.run(run_ids[0]), rows, out)
    else:
        store = Store(db)
        runs = [store.run(run_id) for run_id in run_ids]
        learning_curves(runs, store.epochs(run_ids), out)
    console.print(f"wrote {printable(str(out))}", markup=False)

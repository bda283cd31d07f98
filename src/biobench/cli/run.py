"""`biobench run` (one spec, a preset, a suite, or --resume) and `biobench import`."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from biobench.cli.app import (
    BiobenchError,
    DbOption,
    _state,
    app,
    console,
    err_console,
    handle_errors,
)


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
    seeds: Annotated[
        str | None,
        typer.Option(
            "--seeds",
            help="Run each spec once per seed, e.g. 0,1,2 (compare then shows mean ± std).",
            show_default=False,
        ),
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
    resume: Annotated[
        int | None,
        typer.Option(
            "--resume",
            help="Continue a stopped run (interrupted, failed or lost) from its last "
            "complete epoch.",
            show_default=False,
        ),
    ] = None,
    checkpoint_dir: Annotated[
        Path | None,
        typer.Option(
            "--checkpoint-dir",
            help="Where runs keep their checkpoints. Default: "
            "$BIOBENCH_CHECKPOINT_DIR, else $BIOBENCH_HOME/checkpoints.",
            show_default=False,
        ),
    ] = None,
    overrides: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            help="Hyperparameter or dataset setting name=value (repeatable).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Train a spec, a preset or a suite of presets, streaming each epoch to the database."""
    from biobench.paths import default_data_dir
    from biobench.spec import load_benchmarks, resolve
    from biobench.store import Store
    from biobench.training.runner import execute, resolve_device
    from biobench.training.runner import resume as resume_run

    named = [
        flag
        for flag, value in (
            ("--algo", algo),
            ("--arch", arch),
            ("--data", data),
            ("--bench", bench),
            ("--suite", suite),
        )
        if value is not None
    ]
    torch_device = resolve_device(device)
    root = data_dir or default_data_dir()
    if resume is not None:
        changed = named + [
            flag
            for flag, value in (
                ("--epochs", epochs),
                ("--batch-size", batch_size),
                ("--seed", seed),
                ("--set", overrides),
                ("--checkpoint-dir", checkpoint_dir),
            )
            if value
        ]
        if changed:
            raise BiobenchError(
                f"--resume continues a run with its own spec; drop {', '.join(changed)}"
            )
        store = Store(db)
        _train(store, partial(resume_run, resume), torch_device, root, download)
        return
    if bench and suite:
        raise BiobenchError("give --bench or --suite, not both")
    if (bench or suite) and len(named) > 1:
        raise BiobenchError(
            f"{bench and '--bench' or '--suite'} sets the algorithm, "
            f"architecture and dataset; drop {', '.join(named[:-1])}"
        )
    if seed is not None and seeds is not None:
        raise BiobenchError("give --seed or --seeds, not both")
    options = dict(epochs=epochs, batch_size=batch_size, overrides=overrides or [])
    names = load_benchmarks().group(suite) if suite else [bench]
    specs = [
        resolve(
            benchmark=name,
            algorithm=None if name else algo or "bp",
            architecture=None if name else arch or "fc",
            dataset=None if name else data or "digits",
            seed=one_seed,
            **options,
        )
        for name in names
        for one_seed in (_parse_seeds(seeds) if seeds is not None else [seed])
    ]
    store = Store(db)
    if len(specs) == 1:
        _train(
            store,
            partial(execute, specs[0], checkpoint_dir=checkpoint_dir),
            torch_device,
            root,
            download,
        )
        return
    failed = []
    for index, spec in enumerate(specs, 1):
        name = spec.benchmark or f"{spec.algorithm} / {spec.architecture} / {spec.dataset}"
        console.rule(escape(f"[{index}/{len(specs)}] {name}, seed {spec.seed}"))
        try:
            _train(
                store,
                partial(execute, spec, checkpoint_dir=checkpoint_dir),
                torch_device,
                root,
                download,
            )
        except Exception as error:  # one failed benchmark does not stop the suite
            if _state["debug"]:
                raise
            err_console.print(
                f"[bold red]error:[/] {escape(name)}: {escape(str(error))}", highlight=False
            )
            failed.append(f"{name} (seed {spec.seed})")
    from biobench.cli.results import print_check, print_comparison

    print_comparison(store, {spec.dataset for spec in specs})
    presets = list(dict.fromkeys(spec.benchmark for spec in specs if spec.benchmark))
    if presets:
        print_check(store, presets, fail_missing=True)
    if failed:
        raise BiobenchError(f"{len(failed)} of {len(specs)} run(s) failed: {', '.join(failed)}")


def _parse_seeds(text: str) -> list[int]:
    """ "0,1,2" -> [0, 1, 2]; each a non-negative integer, none twice."""
    try:
        seeds = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        seeds = []
    if not seeds or min(seeds) < 0 or len(set(seeds)) != len(seeds):
        raise BiobenchError(
            f"--seeds {text!r} is not a list of distinct non-negative integers; e.g. --seeds 0,1,2"
        )
    return seeds


def _train(store: Any, start: Callable[..., int], device: Any, root: Path, download: bool) -> int:
    """Run `start` (execute a spec, or resume a run) with progress display, then summarise."""
    from biobench.cli.progress import RichReporter

    def started(run_id: int, job: Any, first_epoch: int) -> None:
        spec = job.spec
        name = f" [{spec.benchmark}]" if spec.benchmark else ""
        resumed = f", resuming at epoch {first_epoch}" if first_epoch > 1 else ""
        console.print(
            f"run {run_id}{name}: {spec.algorithm} / {spec.architecture} / {spec.dataset}, "
            f"{job.net.num_parameters():,} parameters, {spec.epochs} epochs of batch "
            f"{spec.batch_size} on {device}, seed {spec.seed}{resumed} -> {store.display_url}",
            highlight=False,
            markup=False,
        )

    run_id = start(
        store=store,
        device=device,
        data_dir=root,
        download=download,
        reporter=RichReporter(console),
        on_start=started,
    )
    run_row = store.run(run_id)
    best = run_row["best_test_top1"]
    best_text = f"{best:.2f}%" if best is not None else "-"
    console.print(
        f"run {run_id} {run_row['status']}: best test top-1 error {best_text}"
        + (f" ({run_row['error']})" if run_row["error"] else ""),
        highlight=False,
        markup=False,
    )
    return run_id


@app.command("import")
@handle_errors
def import_rows(
    spool: Annotated[
        Path,
        typer.Argument(help="A pending.json a run left when the database stayed unreachable."),
    ],
    db: DbOption = None,
) -> None:
    """Write the epoch rows and final status that a run could not deliver."""
    from biobench.store import Store
    from biobench.training.sink import import_spool

    run_id, rows, status = import_spool(Store(db), spool)
    console.print(
        f"run {run_id}: wrote {rows} epoch row(s)" + (f", status {status}" if status else ""),
        highlight=False,
        markup=False,
    )

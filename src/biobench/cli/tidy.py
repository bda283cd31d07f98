"""`biobench rm` and `biobench gc`: deleting runs, and checkpoint folders no run points at."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from biobench.cli.app import (
    BiobenchError,
    DbOption,
    app,
    console,
    database_int,
    handle_errors,
    printable,
)

YesOption = Annotated[
    bool, typer.Option("--yes", "-y", help="Delete without asking for confirmation.")
]


def _say(text: str) -> None:
    console.print(printable(text), highlight=False, markup=False)


def _report(removal: Any) -> str:
    from biobench.results.tidy import size_text

    if removal.outcome == "removed":
        return f"removed {removal.folder} ({size_text(removal.size)})"
    if removal.outcome == "absent":
        return f"{removal.folder} was already gone"
    return f"kept {removal.folder}: {removal.why}"


def _confirm(question: str) -> None:
    """Ask; a no leaves everything as it was and exits 1, so a script sees nothing was done."""
    try:
        agreed = typer.confirm(question)
    except typer.Abort:  # no answer: standard input is closed (a script, a pipe), or Ctrl-C
        raise BiobenchError(
            "no answer to the confirmation, so nothing was removed; pass --yes to remove "
            "without asking"
        ) from None
    if not agreed:
        _say("nothing removed")
        raise typer.Exit(1)


@app.command("rm")
@handle_errors
def remove(
    run_ids: Annotated[
        list[int],
        typer.Argument(
            help="The runs to delete (one or more), as `biobench runs` lists them.",
            metavar="RUN_ID",
            callback=database_int,
        ),
    ],
    yes: YesOption = False,
    db: DbOption = None,
) -> None:
    """Delete runs: their rows, their epochs and their checkpoint folders."""
    from biobench.results.tidy import folder_size, remove_runs, runs_to_remove, size_text
    from biobench.store import Store

    store = Store(db)
    runs = runs_to_remove(store, run_ids)
    if not yes:
        for run in runs:
            folder = Path(run.checkpoint) if run.checkpoint else None
            kept = (
                f"checkpoints {size_text(folder_size(folder))}"
                if folder is not None and folder.is_dir()
                else "no checkpoints"
            )
            _say(
                f"run {run.id}: {run.algorithm} / {run.architecture} / {run.dataset}, seed "
                f"{run.seed}, {run.status}, {run.epochs_done}/{run.epochs} epochs, {kept}"
            )
        _confirm(f"Delete {len(runs)} run(s) from {store.display_url}?")
    for run, removal in zip(runs, remove_runs(store, runs), strict=True):
        _say(f"deleted run {run.id}" + (f"; {_report(removal)}" if removal else ""))


@app.command()
@handle_errors
def gc(
    checkpoint_dir: Annotated[
        Path | None,
        typer.Option(
            "--checkpoint-dir",
            help="The checkpoint folder to tidy. Default: $BIOBENCH_CHECKPOINT_DIR, else "
            "$BIOBENCH_HOME/checkpoints.",
            show_default=False,
            metavar="DIR",
        ),
    ] = None,
    yes: YesOption = False,
    db: DbOption = None,
) -> None:
    """Delete run folders under the checkpoint folder that no run in the database points at.

    Runs of another database that share the checkpoint folder look unclaimed here: run gc
    with each database's --db, or give each database its own --checkpoint-dir.
    """
    from biobench.paths import default_checkpoint_dir
    from biobench.results.tidy import folder_size, orphan_folders, remove_orphans, size_text
    from biobench.store import Store

    store = Store(db)
    base = checkpoint_dir or default_checkpoint_dir()
    folders = orphan_folders(store, base)
    if not folders:
        _say(f"nothing to remove: no run folder in {base} lacks a run in {store.display_url}")
        return
    if not yes:
        for folder in folders:
            _say(f"{folder} ({size_text(folder_size(folder))})")
        _confirm(f"Delete {len(folders)} folder(s) that no run in {store.display_url} points at?")
    removals = remove_orphans(store, folders)
    for removal in removals:
        _say(_report(removal))
    freed = sum(removal.size for removal in removals)
    _say(f"freed {size_text(freed)}")

"""`biobench run --launcher slurm|local`: submit a suite's runs as jobs, print how to follow."""

from __future__ import annotations

import shlex
from collections.abc import Callable

import typer

from biobench.cli.app import console, err_console
from biobench.launch import Options, Progress, submit, wait
from biobench.launch.runs import Place, task_argvs
from biobench.store import Store
from biobench.training.runner import Request


def submit_runs(
    request: Request, options: Options, place: Place, store: Store, *, wait_for: bool
) -> None:
    """Submit one job (array task) per preset and seed; with `wait_for`, block until they
    ended and exit 1 if any failed."""
    argvs = task_argvs(request, place)
    submit_tasks(argvs, options, store, wait_for=wait_for, what="run(s)", resume=place.args)


def submit_tasks(
    argvs: list[list[str]],
    options: Options,
    store: Store,
    *,
    wait_for: bool,
    what: str,
    resume: Callable[[], list[str]] | None = None,
) -> None:
    """Submit one job (array task) per `biobench` argument list and say how to follow them;
    `resume()` gives what a requeued `run` task adds to `run --resume ID`. With `wait_for`,
    block until every job ended and exit 1 if any failed."""
    if store.is_sqlite and options.launcher == "slurm":
        err_console.print(
            f"warning: {store.display_url} is a SQLite file: every job must reach it on a "
            "shared filesystem, where SQLite's locking is often unreliable; a PostgreSQL "
            "database (--db postgresql://...) is the safe choice on a cluster",
            style="yellow",
            highlight=False,
        )
    jobs = submit(argvs, options, resume_args=(lambda argv: resume()) if resume else None)
    folder = jobs[0].paths.folder  # a Slurm job's own folder is in it
    folder = folder.parent if options.launcher == "slurm" else folder
    ids = sorted({job.job_id.split("_")[0] for job in jobs})
    where = "Slurm job" if options.launcher == "slurm" else "local worker"
    console.print(
        f"submitted {len(argvs)} {what} as {where}(s) {', '.join(ids)}; logs in {folder}",
        highlight=False,
        markup=False,
    )
    follow = f"biobench runs --db {shlex.quote(store.display_url)}"
    if options.launcher == "slurm":
        follow = f"squeue -j {','.join(ids)}` and `{follow}"
    console.print(f"follow them with `{follow}`", highlight=False, markup=False)
    if not wait_for:
        return

    def show(now: Progress) -> None:
        err_console.print(
            f"jobs: {now.done}/{now.total} ended, {now.failed} failed", highlight=False
        )

    final = wait(jobs, show)
    if final.failed:
        err_console.print(
            f"{final.failed} of {final.total} job(s) failed; their logs are in {folder}",
            style="red",
            highlight=False,
        )
        raise typer.Exit(1)

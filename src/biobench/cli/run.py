"""`biobench run` (one spec, a preset, a suite, or --resume) and `biobench import`."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

from biobench.cli.app import (
    BiobenchError,
    Command,
    DbOption,
    PresetsOption,
    _state,
    app,
    console,
    database_int,
    err_console,
    handle_errors,
)
from biobench.cli.launching import (
    GpusOption,
    JobsDirOption,
    LauncherOption,
    PartitionOption,
    SlurmSetOption,
    TimeOption,
    WaitOption,
    WorkersOption,
    refuse_unused,
)

# --algo, --arch and --data: what their help says before the names the registries hold.
_NAMED = {
    "algo": "Learning algorithm (default bp)",
    "arch": "Architecture (default fc)",
    "data": "Dataset (default digits: offline, no download)",
}


class RunCommand(Command):
    """`run`, whose --help names every algorithm, architecture and dataset, plugins included.
    The registries are read only when that help is shown: loading them imports torch and
    every plugin, which `biobench --help` and the other commands need not wait for."""

    def format_help(self, ctx: Any, formatter: Any) -> None:
        from biobench.registry import ALGORITHMS, ARCHITECTURES, DATASETS, load_all

        load_all()
        registries = {"algo": ALGORITHMS, "arch": ARCHITECTURES, "data": DATASETS}
        for param in self.params:
            if param.name in registries:
                names = ", ".join(registries[param.name].names())
                param.help = f"{_NAMED[param.name]}: {names}."
        super().format_help(ctx, formatter)


class KeepCheckpoint(str, Enum):
    last = "last"
    none = "none"


class Precision(str, Enum):
    fp32 = "fp32"
    tf32 = "tf32"
    bf16 = "bf16"


def _without_nproc(argv: list[str]) -> list[str]:
    """The command line less its --nproc, as each of the processes it starts runs it."""
    kept, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--nproc":
            skip = True
        elif not arg.startswith("--nproc="):
            kept.append(arg)
    return kept


def _launch_ranks(nproc: int, argv: list[str]) -> None:
    """Start the ranks of a data-parallel run and say its failure once: rank 0's error line
    (else the lowest failed rank's) with its exit code, where each rank would print its own
    and torch's launcher its log lines."""
    import logging
    import os
    import tempfile

    # Imported here so that its loggers exist: the launcher's failure lines are what the
    # rank's own line says better, and its levels come from LOGLEVEL, not from a parent logger.
    import torch.distributed.launcher.api  # noqa: F401

    from biobench.cli.app import RANK_ERRORS_ENV, _fail
    from biobench.training import distributed

    quieted = {
        name: logger
        for name, logger in logging.Logger.manager.loggerDict.items()
        if name.startswith("torch.distributed") and isinstance(logger, logging.Logger)
    }
    levels = {name: logger.level for name, logger in quieted.items()}
    with tempfile.TemporaryDirectory(prefix="biobench-ranks-") as folder:
        os.environ[RANK_ERRORS_ENV] = folder
        try:
            for logger in quieted.values():
                logger.setLevel(logging.CRITICAL)
            code = distributed.launch(nproc, argv)
        finally:
            del os.environ[RANK_ERRORS_ENV]
            for name, logger in quieted.items():
                logger.setLevel(levels[name])
        said = sorted(Path(folder).glob("rank-*"), key=lambda path: int(path.name[5:]))
        first = said[0].read_text() if said else None
    if not code:
        return
    if first is None:
        raise _fail(f"the run's processes failed (exit status {code}) without a message", code)
    status, _, message = first.partition("\t")
    raise _fail(message, int(status))


@app.command(cls=RunCommand)
@handle_errors
def run(
    algo: Annotated[
        str | None,
        typer.Option("--algo", help=f"{_NAMED['algo']}.", show_default=False, metavar="NAME"),
    ] = None,
    arch: Annotated[
        str | None,
        typer.Option("--arch", help=f"{_NAMED['arch']}.", show_default=False, metavar="NAME"),
    ] = None,
    data: Annotated[
        str | None,
        typer.Option("--data", help=f"{_NAMED['data']}.", show_default=False, metavar="NAME"),
    ] = None,
    preset: Annotated[
        str | None,
        typer.Option(
            "--preset",
            "--bench",
            help="Run a preset of benchmarks.yaml, e.g. mnist-fc-dtp-alt (`biobench list "
            "presets`).",
            show_default=False,
            metavar="NAME",
        ),
    ] = None,
    suite: Annotated[
        str | None,
        typer.Option(
            "--suite",
            help="Run every preset of a suite in turn, e.g. smoke or paper-mnist.",
            show_default=False,
            metavar="NAME",
        ),
    ] = None,
    epochs: Annotated[
        int | None,
        typer.Option(help="Epochs (default: benchmarks.yaml; digits: 30).", metavar="N"),
    ] = None,
    batch_size: Annotated[
        int | None,
        typer.Option(
            "--batch-size", help="Minibatch size (default: benchmarks.yaml).", metavar="N"
        ),
    ] = None,
    seed: Annotated[
        int | None, typer.Option(help="Seed for initialisation and data order.", metavar="N")
    ] = None,
    seeds: Annotated[
        str | None,
        typer.Option(
            "--seeds",
            help="Run each spec once per seed, e.g. 0,1,2 (compare then shows mean ± std).",
            show_default=False,
            metavar="N,N,...",
        ),
    ] = None,
    device: Annotated[
        str | None,
        typer.Option(
            help="cpu, cuda, cuda:N or auto (the default; a resume takes the run's own). "
            "CUDA_VISIBLE_DEVICES picks which GPUs are visible.",
            show_default=False,
            metavar="DEVICE",
        ),
    ] = None,
    db: DbOption = None,
    presets: PresetsOption = None,
    data_dir: Annotated[
        Path | None,
        typer.Option(
            "--data-dir",
            help="Dataset root. Default: $BIOBENCH_DATA_DIR, else $BIOBENCH_HOME/data.",
            show_default=False,
            metavar="DIR",
        ),
    ] = None,
    download: Annotated[
        bool, typer.Option("--download", help="Download missing dataset files.")
    ] = False,
    resume: Annotated[
        int | None,
        typer.Option(
            "--resume",
            help="Continue a stopped run (interrupted, failed or lost) from its last "
            "complete epoch.",
            show_default=False,
            callback=database_int,
            metavar="ID",
        ),
    ] = None,
    checkpoint_dir: Annotated[
        Path | None,
        typer.Option(
            "--checkpoint-dir",
            help="Where runs keep their checkpoints. Default: "
            "$BIOBENCH_CHECKPOINT_DIR, else $BIOBENCH_HOME/checkpoints.",
            show_default=False,
            metavar="DIR",
        ),
    ] = None,
    keep_checkpoint: Annotated[
        KeepCheckpoint | None,
        typer.Option(
            "--keep-checkpoint",
            help="What a finished run keeps of its checkpoints: none (the default: its "
            "last.pt is deleted) or last. Stopped, failed and diverged runs keep theirs.",
            show_default=False,
        ),
    ] = None,
    overrides: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            help="Hyperparameter or dataset setting (repeatable), e.g. lr=3e-4; "
            "`biobench list algorithms` and `biobench list datasets` show the names.",
            show_default=False,
            metavar="NAME=VALUE",
        ),
    ] = None,
    precision: Annotated[
        Precision | None,
        typer.Option(
            "--precision",
            help="fp32 (the default), tf32 (GPU matrix products in TensorFloat-32) or bf16 "
            "(autocast, fp32 master weights); same as --set precision=...",
            show_default=False,
        ),
    ] = None,
    compile_step: Annotated[
        bool,
        typer.Option(
            "--compile",
            help="torch.compile the rule's step and the evaluation forward (eager, said in one "
            "line, where it cannot); same as --set compile=true.",
        ),
    ] = False,
    nproc: Annotated[
        int | None,
        typer.Option(
            "--nproc",
            help="Train each run data-parallel on N processes (gloo on the CPU, NCCL with one "
            "GPU each); --batch-size stays the global batch.",
            show_default=False,
            min=1,
            metavar="N",
        ),
    ] = None,
    threads: Annotated[
        int | None,
        typer.Option(
            "--threads",
            help="CPU threads of each process (torch's). Default: the cores this process may "
            "use, divided by the processes of the run on this machine (--nproc).",
            show_default=False,
            min=1,
            metavar="N",
        ),
    ] = None,
    launcher: LauncherOption = None,
    workers: WorkersOption = None,
    slurm_partition: PartitionOption = None,
    slurm_time: TimeOption = None,
    gpus_per_job: GpusOption = 0,
    slurm_set: SlurmSetOption = None,
    jobs_dir: JobsDirOption = None,
    wait: WaitOption = False,
    preflight: Annotated[
        bool,
        typer.Option(
            "--preflight",
            help="First train each spec a few steps at its real shape (`biobench preflight`); "
            "start no run unless every one learns.",
        ),
    ] = False,
    preflight_steps: Annotated[
        int | None,
        typer.Option(
            "--preflight-steps",
            help="With --preflight: most minibatches each spec trains (default 200).",
            show_default=False,
            min=1,
            metavar="N",
        ),
    ] = None,
) -> None:
    """Train a spec, a preset or a suite of presets, streaming each epoch to the database."""
    import os
    import sys

    from biobench.cli.progress import RichReporter
    from biobench.spec import parse_seeds
    from biobench.spec.presets import add_preset_files
    from biobench.store import Store
    from biobench.training import distributed
    from biobench.training.loop import Reporter
    from biobench.training.runner import Request, plan, resolve_device, run_request

    add_preset_files(presets)  # read before any preset resolves; launched jobs inherit it
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
    request = Request(
        algorithm=algo,
        architecture=arch,
        dataset=data,
        preset=preset,
        suite=suite,
        epochs=epochs,
        batch_size=batch_size,
        seed=seed,
        seeds=parse_seeds(seeds) if seeds is not None else None,
        overrides=(
            *(overrides or ()),
            *([f"precision={precision.value}"] if precision else []),
            *(["compile=true"] if compile_step else []),
        ),
        checkpoint_dir=checkpoint_dir,
        keep_checkpoint=keep_checkpoint.value if keep_checkpoint else None,
        resume=resume,
    )
    if device is not None:
        resolve_device(device)  # a bad --device is refused before the database is opened
    if launcher is not None and threads is not None:
        raise BiobenchError(
            "--threads applies to runs on this machine; a launched job uses the cores of its "
            "allocation: drop --threads"
        )
    if preflight and distributed.world_size() == 1:  # not again in each rank it starts
        from biobench.cli.preflight import failed, preflight_specs

        if resume is not None:
            raise BiobenchError("--preflight checks a new run; drop it with --resume")
        reports = preflight_specs(
            plan(request), steps=preflight_steps, device=device, data_dir=data_dir, threads=threads
        )
        problem = failed(reports)
        if problem:
            raise BiobenchError(f"{problem}; no run started (`biobench preflight` says more)")
    if launcher is not None:
        from biobench.cli.submit import submit_runs
        from biobench.launch import Options
        from biobench.launch.runs import Place

        options = Options(
            launcher=launcher.value,
            workers=workers,
            partition=slurm_partition,
            time=slurm_time,
            gpus_per_job=gpus_per_job,
            nproc=nproc or 1,
            slurm_set=tuple(slurm_set or ()),
            folder=jobs_dir,
        )
        place = Place(db=db, device=device, data_dir=data_dir, download=download)
        submit_runs(request, options, place, Store(db), wait_for=wait)
        return
    if nproc is not None and nproc > 1 and distributed.world_size() == 1:
        # What a user can get wrong in the request or the database is said once, here, not
        # by every process the launcher would start.
        plan(request)
        Store(db)
        _launch_ranks(nproc, _without_nproc(sys.argv[1:]))
        return
    store = Store(db)
    from biobench.learners.base import check_every_step, debug_from_environment
    from biobench.training.environment import use_threads

    # The processes of this run on this machine share its cores (torchrun's LOCAL_WORLD_SIZE).
    use_threads(threads, int(os.environ.get("LOCAL_WORLD_SIZE", distributed.world_size())))

    # --debug or BIOBENCH_DEBUG=1: the transport guard walks every step's graphs
    check_every_step(_state["debug"] or debug_from_environment())
    reporter = RichReporter(console, err_console, store.display_url)
    if int(os.environ.get("RANK", "0")) > 0:  # one rank of several: rank 0 shows progress
        reporter = Reporter()  # type: ignore[assignment]
    try:
        outcome = run_request(
            request,
            store=store,
            device=device,
            data_dir=data_dir,
            download=download,
            reporter=reporter,
            keep_going=not _state["debug"],
        )
    except KeyboardInterrupt:
        if getattr(reporter, "run_id", None) is None:  # no run yet: nothing to continue
            raise
        from biobench.cli.hints import command

        # The same database, its password masked for the user to fill in.
        database = ["--db", db] if db is not None else []
        again = command(["run", "--resume", str(reporter.run_id), *database])
        raise KeyboardInterrupt(f"interrupted; continue it with `{again}`") from None
    if int(os.environ.get("RANK", "0")) > 0:
        return
    if len(outcome.specs) > 1:  # a suite or several seeds: how they compare, and the check
        from biobench.cli.results import print_check, print_comparison

        print_comparison(store, run_ids=outcome.run_ids)
        presets = list(dict.fromkeys(spec.preset for spec in outcome.specs if spec.preset))
        if presets:
            print_check(store, presets, fail_missing=True)
    if outcome.failed:
        raise BiobenchError(
            f"{len(outcome.failed)} of {len(outcome.specs)} run(s) failed: "
            + ", ".join(outcome.failed)
        )


@app.command("import")
@handle_errors
def import_rows(
    spool: Annotated[
        Path,
        typer.Argument(
            help="A pending.json a run left when the database stayed unreachable.",
            metavar="FILE",
        ),
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

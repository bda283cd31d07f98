"""The options of every command that submits jobs (`run`, `search`): --launcher and the rest."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

from biobench.errors import BiobenchError


class Launcher(str, Enum):
    slurm = "slurm"
    local = "local"


LauncherOption = Annotated[
    Launcher | None,
    typer.Option(
        "--launcher",
        help="Submit the work as jobs instead of running here: slurm (a job array, through "
        "submitit) or local (--workers processes); `run` submits one job per preset and "
        "seed, `search` one per worker. Returns once submitted.",
        show_default=False,
    ),
]

WorkersOption = Annotated[
    int | None,
    typer.Option(
        help="Jobs running at once (--launcher; local default 1, Slurm: no limit).",
        show_default=False,
        min=1,
        metavar="K",
    ),
]

PartitionOption = Annotated[
    str | None,
    typer.Option("--slurm-partition", help="Slurm partition.", metavar="NAME"),
]

TimeOption = Annotated[
    str | None,
    typer.Option(
        "--slurm-time",
        help="Time limit per job, e.g. 12:00:00 (default: the partition's). A job that "
        "runs out is requeued and resumes from its checkpoint.",
        metavar="HH:MM:SS",
    ),
]

GpusOption = Annotated[
    int,
    typer.Option(
        "--gpus-per-job",
        help="GPUs per job; above 1 each job is a data-parallel run on them.",
        min=0,
        metavar="G",
    ),
]

SlurmSetOption = Annotated[
    list[str] | None,
    typer.Option(
        "--slurm-set",
        help="Any other sbatch option (repeatable), e.g. account=lab or mem=16G.",
        show_default=False,
        metavar="KEY=VALUE",
    ),
]

JobsDirOption = Annotated[
    Path | None,
    typer.Option(
        "--jobs-dir",
        help="Job logs (--launcher). Default: $BIOBENCH_HOME/jobs/DATE-TIME.",
        show_default=False,
        metavar="DIR",
    ),
]

WaitOption = Annotated[
    bool,
    typer.Option(
        "--wait", help="With --launcher: block until every job ended; exit 1 if any failed."
    ),
]


def refuse_unused(launcher: Launcher | None, **given: Any) -> None:
    """An option that the launcher asked for (or its absence) would ignore is refused in one
    line: Slurm's options need `--launcher slurm`, the others any --launcher. `given` maps each
    option as typed (--slurm-time) to its value; None, False, 0 and () are not given."""
    for flag, value in given.items():
        if value in (None, False, 0, (), []):
            continue
        if flag.startswith("--slurm-") and launcher is Launcher.local:
            raise BiobenchError(f"{flag} applies to --launcher slurm only, not local; drop it")
        if flag.startswith("--slurm-") and launcher is None:
            raise BiobenchError(
                f"{flag} applies to --launcher slurm only; add --launcher slurm or drop it"
            )
        if launcher is None:
            raise BiobenchError(
                f"{flag} applies to jobs only; add --launcher slurm or local, or drop it"
            )

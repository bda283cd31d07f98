"""`biobench run --launcher ...`: a request cut into one `biobench run` per preset and seed."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from biobench.errors import BiobenchError
from biobench.training.runner import Request, plan


@dataclass(frozen=True)
class Place:
    """Where every task's run reads and writes, passed on to each task as given."""

    db: str | None = None
    device: str | None = None
    data_dir: Path | None = None
    download: bool = False

    def args(self) -> list[str]:
        args = []
        if self.db is not None:
            args += ["--db", self.db]
        if self.device is not None:
            args += ["--device", self.device]
        if self.data_dir is not None:
            args += ["--data-dir", str(self.data_dir.expanduser().resolve())]
        if self.download:
            args.append("--download")
        return args


def task_argvs(request: Request, place: Place) -> list[list[str]]:
    """One `biobench run` argument list per spec the request plans (checked here, before any
    job is submitted), each with the request's own options."""
    if request.resume is not None:
        raise BiobenchError("--launcher submits new runs; resume a run without it")
    argvs = []
    for spec in plan(request):
        if spec.preset:
            argv = ["run", "--preset", spec.preset]
        else:
            argv = ["run", "--algo", spec.algorithm, "--arch", spec.architecture]
            argv += ["--data", spec.dataset]
        argv += ["--seed", str(spec.seed)]
        if request.epochs is not None:
            argv += ["--epochs", str(request.epochs)]
        if request.batch_size is not None:
            argv += ["--batch-size", str(request.batch_size)]
        for override in request.overrides:
            argv += ["--set", override]
        if request.checkpoint_dir is not None:
            argv += ["--checkpoint-dir", str(request.checkpoint_dir.expanduser().resolve())]
        if request.keep_checkpoint is not None:
            argv += ["--keep-checkpoint", request.keep_checkpoint]
        argvs.append(argv + place.args())
    return argvs

"""Runs as records (no store): what compare, check and the renderers read."""

from __future__ import annotations

import io
from datetime import datetime, timezone
from typing import Any

from rich.console import Console

from biobench.spec import RunSpec, resolve
from biobench.store import RunRecord, RunStatus

CREATED = datetime(2026, 1, 1, tzinfo=timezone.utc)


def run_record(
    run_id: int, spec: RunSpec, /, *, status: RunStatus = RunStatus.finished, **fields: Any
) -> RunRecord:
    """A run of `spec` as the store reads it back; `fields` set any other column."""
    columns: dict[str, Any] = dict(
        id=run_id,
        **spec.run_fields(),
        device="cpu",
        status=status,
        error=None,
        created_at=CREATED,
        started_at=CREATED,
        finished_at=None,
        heartbeat_at=CREATED,
        host=None,
        git_sha=None,
        torch_version=None,
        biobench_version=None,
        environment={},
        checkpoint=None,
    )
    return RunRecord(**{**columns, **fields})


def bp_run(run_id: int, seed: int, lr: str = "0.001", **kw: Any) -> RunRecord:
    """A finished BP fc MNIST run at this seed and rate (its best test error 1.0)."""
    spec = resolve(
        algorithm="bp", architecture="fc", dataset="mnist", seed=seed, overrides=[f"lr={lr}"], **kw
    )
    return run_record(run_id, spec, best_test_top1=1.0)


def epoch_rows(errors: dict[int, list[float]]) -> list[dict[str, Any]]:
    """Epoch rows with these test top-1 errors per run id (train = test / 2, top-5 = test / 4)."""
    return [
        {
            "run_id": run_id,
            "epoch": epoch,
            "train_top1": test / 2,
            "test_top1": test,
            "test_top5": test / 4,
        }
        for run_id, tests in errors.items()
        for epoch, test in enumerate(tests, 1)
    ]


def shown_text(renderable: object) -> str:
    """What a 200-column terminal shows of a rich renderable."""
    console = Console(width=200, record=True, file=io.StringIO())
    console.print(renderable)
    return console.export_text()

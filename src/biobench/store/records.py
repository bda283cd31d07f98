"""Typed records of what the store holds: a run's status and a run as read back.

Plain Python (no SQLAlchemy, no torch): the rest of biobench reads runs through these.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from datetime import datetime
from enum import Enum
from typing import Any


class RunStatus(str, Enum):
    """Where a run stands. `lost` is never stored: reads report a `running` run whose
    heartbeat went stale (its process died without saying so) as lost."""

    running = "running"
    finished = "finished"
    failed = "failed"
    interrupted = "interrupted"
    diverged = "diverged"
    lost = "lost"

    def __str__(self) -> str:
        return self.value

    @property
    def ended(self) -> bool:
        """No process is writing the run any more (it may still be resumable)."""
        return self is not RunStatus.running

    @property
    def resumable(self) -> bool:
        return self in (RunStatus.interrupted, RunStatus.failed, RunStatus.lost)


STORED_STATUSES = tuple(s for s in RunStatus if s is not RunStatus.lost)


@dataclass(frozen=True)
class RunRecord:
    """One row of `runs`, with a summary of its epochs."""

    id: int
    spec_hash: str
    preset: str | None
    algorithm: str
    architecture: str
    dataset: str
    hparams: dict[str, Any]
    spec: dict[str, Any]
    seed: int
    epochs: int
    batch_size: int
    device: str
    status: RunStatus
    error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    heartbeat_at: datetime | None
    host: str | None
    git_sha: str | None
    torch_version: str | None
    biobench_version: str | None
    environment: dict[str, Any]
    checkpoint: str | None  # the folder of its checkpoints
    owner: str | None = None  # the lease token of the process that writes it
    pid: int | None = None  # that process, on `host`
    study: str | None = None  # the Optuna study this run is a trial of
    trial: int | None = None  # its trial number there
    world_size: int = 1  # processes that trained it (data parallel)
    flops_per_step: float | None = None  # of one training step at its batch size
    epochs_done: int = 0
    best_test_top1: float | None = None
    best_test_top5: float | None = None
    best_train_top1: float | None = None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> RunRecord:
        known = {f.name for f in fields(cls)}
        values = {key: value for key, value in row.items() if key in known}
        values["status"] = RunStatus(values["status"])
        values["epochs_done"] = values.get("epochs_done") or 0
        return cls(**values)

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["status"] = self.status.value
        return out

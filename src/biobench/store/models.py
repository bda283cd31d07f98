"""The schema, in one file. Alembic migrations in migrations/ build exactly this.

One row per run and one row per (run, epoch). Metrics are floats that may be NaN or inf (a
diverged DTP run produces both), stored explicitly on every backend: see `Metric`.
"""

from __future__ import annotations

import math
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import JSON, DateTime, Float, ForeignKey, Integer, String, Text, TypeDecorator
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class _SQLiteReal(Float):
    """SQLite's float type without the driver-side float() that turns 'NaN' back into NULL."""

    def bind_processor(self, dialect: Any) -> None:
        return None

    def result_processor(self, dialect: Any, coltype: Any) -> None:
        return None


class Metric(TypeDecorator):
    """A float column that keeps NaN.

    PostgreSQL's double precision holds NaN and +-inf natively. SQLite turns a bound NaN into
    NULL, which would make "diverged" indistinguishable from "not measured"; there the value is
    bound as the text 'NaN' (SQLite columns are dynamically typed) and read back as a float.
    """

    impl = Float(precision=53)
    cache_ok = True

    def load_dialect_impl(self, dialect: Any) -> Any:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(_SQLiteReal(precision=53))
        return dialect.type_descriptor(self.impl)

    def process_bind_param(self, value: Any, dialect: Any) -> Any:
        if value is None:
            return None
        value = float(value)
        if dialect.name == "sqlite" and math.isnan(value):
            return "NaN"
        return value

    def process_result_value(self, value: Any, dialect: Any) -> float | None:
        return None if value is None else float(value)


class UTCDateTime(TypeDecorator):
    """A timezone-aware UTC timestamp on every backend (SQLite stores it naive, as UTC)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        value = value.astimezone(timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value


class Base(DeclarativeBase):
    pass


class Run(Base):
    __tablename__ = "runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    spec_hash: Mapped[str] = mapped_column(String(64), index=True)
    preset: Mapped[str | None] = mapped_column(String(128), index=True)
    algorithm: Mapped[str] = mapped_column(String(64), index=True)
    architecture: Mapped[str] = mapped_column(String(64), index=True)
    dataset: Mapped[str] = mapped_column(String(64), index=True)
    hparams: Mapped[dict] = mapped_column(JSON)
    spec: Mapped[dict] = mapped_column(JSON)
    seed: Mapped[int] = mapped_column(Integer)
    epochs: Mapped[int] = mapped_column(Integer)
    batch_size: Mapped[int] = mapped_column(Integer)
    device: Mapped[str] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(16), index=True)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    host: Mapped[str | None] = mapped_column(String(255))
    git_sha: Mapped[str | None] = mapped_column(String(64))
    torch_version: Mapped[str | None] = mapped_column(String(64))
    biobench_version: Mapped[str | None] = mapped_column(String(64))
    environment: Mapped[dict] = mapped_column(JSON)
    checkpoint: Mapped[str | None] = mapped_column(String(1024))  # folder of its checkpoints
    owner: Mapped[str | None] = mapped_column(String(64))  # the writing process's lease token
    pid: Mapped[int | None] = mapped_column(Integer)  # the writing process, on `host`
    study: Mapped[str | None] = mapped_column(String(128), index=True)  # Optuna study, if a trial
    trial: Mapped[int | None] = mapped_column(Integer)  # its trial number in that study
    # processes that train it: those of its last start or resume (data parallel)
    world_size: Mapped[int] = mapped_column(Integer, server_default="1")
    # floating-point operations of one training step at its batch size (counted once per run)
    flops_per_step: Mapped[float | None] = mapped_column(Metric)


class Epoch(Base):
    __tablename__ = "epochs"

    run_id: Mapped[int] = mapped_column(
        ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True
    )
    epoch: Mapped[int] = mapped_column(Integer, primary_key=True)
    train_top1: Mapped[float | None] = mapped_column(Metric)
    train_top5: Mapped[float | None] = mapped_column(Metric)
    train_loss: Mapped[float | None] = mapped_column(Metric)
    test_top1: Mapped[float | None] = mapped_column(Metric)
    test_top5: Mapped[float | None] = mapped_column(Metric)
    test_loss: Mapped[float | None] = mapped_column(Metric)
    val_top1: Mapped[float | None] = mapped_column(Metric)  # with a validation split only
    val_top5: Mapped[float | None] = mapped_column(Metric)
    val_loss: Mapped[float | None] = mapped_column(Metric)
    wall_time: Mapped[float | None] = mapped_column(Metric)
    images_per_s: Mapped[float | None] = mapped_column(Metric)
    # Cost: milliseconds of training per minibatch (every pass of the epoch), and the part of
    # it each phase of the rule took (NULL for a phase the rule does not have); evaluation
    # time; the epoch's peak memory (the CUDA allocator's, or the process's peak RSS).
    step_ms: Mapped[float | None] = mapped_column(Metric)
    step_ms_forward: Mapped[float | None] = mapped_column(Metric)
    step_ms_signal: Mapped[float | None] = mapped_column(Metric)
    step_ms_update: Mapped[float | None] = mapped_column(Metric)
    step_ms_inverse: Mapped[float | None] = mapped_column(Metric)
    eval_ms: Mapped[float | None] = mapped_column(Metric)
    peak_memory_mb: Mapped[float | None] = mapped_column(Metric)
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime)


class LayerMetric(Base):
    """How close a rule comes to backprop, per weighted layer (1 = the input's), per epoch,
    measured on the run's probe batch (training/alignment.py). Angles in degrees."""

    __tablename__ = "layer_metrics"

    run_id: Mapped[int] = mapped_column(
        ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True
    )
    epoch: Mapped[int] = mapped_column(Integer, primary_key=True)
    layer: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128))  # the weight's parameter name
    # angle between the rule's update of the layer's weight and backprop's gradient
    update_angle: Mapped[float | None] = mapped_column(Metric)
    # mean over the probe's samples of the cosine between the rule's learning signal at the
    # layer's output and backprop's delta (hidden layers only)
    signal_cosine: Mapped[float | None] = mapped_column(Metric)
    # angle between the feedback weights B and W^T (rules with feedback weights only)
    weight_angle: Mapped[float | None] = mapped_column(Metric)


# The training phases a rule's step is timed by (Learner.clock.lap): step_ms_<phase>.
PHASES = ("forward", "signal", "update", "inverse")
# The columns that measure the machine rather than the learning: they differ between two runs
# of one seed (everything else is bit-identical on the CPU).
COST_COLUMNS = (
    "wall_time",
    "images_per_s",
    "step_ms",
    *(f"step_ms_{phase}" for phase in PHASES),
    "eval_ms",
    "peak_memory_mb",
)
# The per-epoch metric columns, in display order (errors are percentages, losses are nats).
METRIC_COLUMNS = (
    *(
        f"{split}_{metric}"
        for split in ("train", "test", "val")
        for metric in ("top1", "top5", "loss")
    ),
    *COST_COLUMNS,
)
# The per-layer alignment columns (layer_metrics), in display order.
LAYER_COLUMNS = ("update_angle", "signal_cosine", "weight_angle")

"""Alignment and cost in every run: layer_metrics, the epochs' cost and validation columns,
runs.flops_per_step

`layer_metrics` holds, per run, epoch and weighted layer, how close the rule's update, learning
signal and feedback weights come to backprop's. `epochs` gains the validation split's metrics
(NULL without one), the training time per step (in all and by phase), evaluation time and peak
memory; `runs` the FLOPs of one training step. Every new column is NULL for the rows before.

Column types are plain SQLAlchemy types, as in 0001 (Metric is Float in the database).

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

EPOCH_COLUMNS = (
    "val_top1",
    "val_top5",
    "val_loss",
    "step_ms",
    "step_ms_forward",
    "step_ms_signal",
    "step_ms_update",
    "step_ms_inverse",
    "eval_ms",
    "peak_memory_mb",
)


def upgrade() -> None:
    # Plain ADD COLUMN on both backends (no SQLite table rebuild, which would cascade-delete).
    for name in EPOCH_COLUMNS:
        op.add_column("epochs", sa.Column(name, sa.Float(precision=53), nullable=True))
    op.add_column("runs", sa.Column("flops_per_step", sa.Float(precision=53), nullable=True))
    op.create_table(
        "layer_metrics",
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("epoch", sa.Integer(), nullable=False),
        sa.Column("layer", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("update_angle", sa.Float(precision=53), nullable=True),
        sa.Column("signal_cosine", sa.Float(precision=53), nullable=True),
        sa.Column("weight_angle", sa.Float(precision=53), nullable=True),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("run_id", "epoch", "layer"),
    )


def downgrade() -> None:
    op.drop_table("layer_metrics")
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_column("flops_per_step")
    with op.batch_alter_table("epochs", schema=None) as batch_op:
        for name in reversed(EPOCH_COLUMNS):
            batch_op.drop_column(name)

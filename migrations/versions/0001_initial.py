"""initial schema: runs and epochs

Revision ID: 0001
Revises:
Create Date: 2026-11-27

Column types are spelled as plain SQLAlchemy types, so this file never changes when the Python-side
type decorators in models.py do (UTCDateTime and Metric are DateTime and Float in the database).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "runs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("spec_hash", sa.String(length=64), nullable=False),
        sa.Column("benchmark", sa.String(length=128), nullable=True),
        sa.Column("algorithm", sa.String(length=64), nullable=False),
        sa.Column("architecture", sa.String(length=64), nullable=False),
        sa.Column("dataset", sa.String(length=64), nullable=False),
        sa.Column("hparams", sa.JSON(), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("seed", sa.Integer(), nullable=False),
        sa.Column("epochs", sa.Integer(), nullable=False),
        sa.Column("batch_size", sa.Integer(), nullable=False),
        sa.Column("device", sa.String(length=128), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("host", sa.String(length=255), nullable=True),
        sa.Column("git_sha", sa.String(length=64), nullable=True),
        sa.Column("torch_version", sa.String(length=64), nullable=True),
        sa.Column("biobench_version", sa.String(length=64), nullable=True),
        sa.Column("environment", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_runs_algorithm"), ["algorithm"], unique=False)
        batch_op.create_index(batch_op.f("ix_runs_architecture"), ["architecture"], unique=False)
        batch_op.create_index(batch_op.f("ix_runs_benchmark"), ["benchmark"], unique=False)
        batch_op.create_index(batch_op.f("ix_runs_dataset"), ["dataset"], unique=False)
        batch_op.create_index(batch_op.f("ix_runs_spec_hash"), ["spec_hash"], unique=False)
        batch_op.create_index(batch_op.f("ix_runs_status"), ["status"], unique=False)

    op.create_table(
        "epochs",
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("epoch", sa.Integer(), nullable=False),
        sa.Column("train_top1", sa.Float(precision=53), nullable=True),
        sa.Column("train_top5", sa.Float(precision=53), nullable=True),
        sa.Column("train_loss", sa.Float(precision=53), nullable=True),
        sa.Column("test_top1", sa.Float(precision=53), nullable=True),
        sa.Column("test_top5", sa.Float(precision=53), nullable=True),
        sa.Column("test_loss", sa.Float(precision=53), nullable=True),
        sa.Column("wall_time", sa.Float(precision=53), nullable=True),
        sa.Column("images_per_s", sa.Float(precision=53), nullable=True),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("run_id", "epoch"),
    )


def downgrade() -> None:
    op.drop_table("epochs")
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_runs_status"))
        batch_op.drop_index(batch_op.f("ix_runs_spec_hash"))
        batch_op.drop_index(batch_op.f("ix_runs_dataset"))
        batch_op.drop_index(batch_op.f("ix_runs_benchmark"))
        batch_op.drop_index(batch_op.f("ix_runs_architecture"))
        batch_op.drop_index(batch_op.f("ix_runs_algorithm"))

    op.drop_table("runs")

"""runs.study, runs.trial and runs.world_size: searches and distributed runs

`study` names the Optuna study a run is a trial of and `trial` its trial number (both NULL for
a run that is not a trial); Optuna keeps its own tables in the same database. `world_size` is
the number of processes that trained the run (1 for every run before this revision).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD COLUMN on both backends (no SQLite table rebuild, which would cascade-delete).
    op.add_column("runs", sa.Column("study", sa.String(length=128), nullable=True))
    op.add_column("runs", sa.Column("trial", sa.Integer(), nullable=True))
    op.add_column(
        "runs", sa.Column("world_size", sa.Integer(), nullable=False, server_default="1")
    )
    op.create_index(op.f("ix_runs_study"), "runs", ["study"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_runs_study"), table_name="runs")
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_column("world_size")
        batch_op.drop_column("trial")
        batch_op.drop_column("study")

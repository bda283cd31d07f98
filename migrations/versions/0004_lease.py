"""runs.owner and runs.pid: the lease that lets exactly one process write a run

`owner` is a random token the writing process holds; every write of a run's rows and status
is conditional on it, and taking it over (resume) is one compare-and-set. `pid` (with `host`)
lets a reader on the same machine see at once that the writer is gone.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD COLUMN on both backends (no SQLite table rebuild, which would cascade-delete).
    op.add_column("runs", sa.Column("owner", sa.String(length=64), nullable=True))
    op.add_column("runs", sa.Column("pid", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_column("pid")
        batch_op.drop_column("owner")

"""biobench's schema revision moves from alembic_version to biobench_version

Optuna (`biobench search`) keeps its tables in the results database and records its own schema
revision in `alembic_version`, Alembic's default name. From this revision on biobench records
its revision in `biobench_version` (migrations/env.py): `Store.upgrade` stamps the revision a
database had there first, and this step takes biobench's row out of `alembic_version`, dropping
the table when nothing else is left in it. No data changes.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

LEGACY = "alembic_version"
OURS = ("0001", "0002", "0003", "0004", "0005")


def upgrade() -> None:
    bind = op.get_bind()
    if not sa.inspect(bind).has_table(LEGACY):
        return
    table = sa.table(LEGACY, sa.column("version_num", sa.String))
    bind.execute(table.delete().where(table.c.version_num.in_(OURS)))
    if bind.execute(sa.select(sa.func.count()).select_from(table)).scalar() == 0:
        op.drop_table(LEGACY)


def downgrade() -> None:
    # Biobench before 0006 reads its revision from alembic_version only.
    bind = op.get_bind()
    if not sa.inspect(bind).has_table(LEGACY):
        op.create_table(
            LEGACY, sa.Column("version_num", sa.String(32), primary_key=True, nullable=False)
        )
    table = sa.table(LEGACY, sa.column("version_num", sa.String))
    bind.execute(table.insert().values(version_num="0005"))

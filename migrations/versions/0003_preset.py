"""runs.benchmark -> runs.preset: one name for a named benchmark of benchmarks.yaml

The stored spec's "benchmark" key becomes "preset" too, and spec_hash is recomputed from the
renamed spec, so a run recorded before this revision still matches its preset's current spec
(`biobench check`) and still resumes (its checkpoint's hash is checked against the old form).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29
"""

from __future__ import annotations

import hashlib
import json

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_RUNS = sa.table(
    "runs", sa.column("id", sa.Integer), sa.column("spec", sa.JSON), sa.column("spec_hash")
)


def _hash(spec: dict) -> str:
    # The canonical form biobench hashes specs with (spec/runspec.py), frozen here so this
    # revision means the same thing whatever later code does.
    return hashlib.sha256(
        json.dumps(spec, sort_keys=True, separators=(",", ":")).encode()
    ).hexdigest()


def _rename_spec_key(old: str, new: str) -> None:
    connection = op.get_bind()
    for run_id, spec in connection.execute(sa.select(_RUNS.c.id, _RUNS.c.spec)).all():
        if not isinstance(spec, dict) or old not in spec:
            continue
        spec = {(new if key == old else key): value for key, value in spec.items()}
        connection.execute(
            _RUNS.update().where(_RUNS.c.id == run_id).values(spec=spec, spec_hash=_hash(spec))
        )


def _rename_column(old: str, new: str) -> None:
    # A plain RENAME COLUMN (SQLite >= 3.25, PostgreSQL), never a batch rebuild: on SQLite a
    # rebuild drops `runs`, and with foreign keys on, ON DELETE CASCADE empties `epochs`.
    op.drop_index(f"ix_runs_{old}", table_name="runs")
    op.execute(f"ALTER TABLE runs RENAME COLUMN {old} TO {new}")
    op.create_index(f"ix_runs_{new}", "runs", [new], unique=False)


def upgrade() -> None:
    _rename_column("benchmark", "preset")
    _rename_spec_key("benchmark", "preset")


def downgrade() -> None:
    _rename_spec_key("preset", "benchmark")
    _rename_column("preset", "benchmark")

"""Alembic environment: biobench always hands Alembic an open connection (see store.py).

To write a new revision after changing src/biobench/store/models.py:

    python -m biobench.store.revision "what changed"
"""

from __future__ import annotations

from typing import Any

from alembic import context
from sqlalchemy import TypeDecorator

from biobench.store.models import Base
from biobench.store.versions import VERSION_TABLE

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("biobench migrations run through biobench.store.Store, with a connection")


def _render_item(kind: str, obj: Any, _context: Any) -> str | bool:
    # Revisions spell the database type (Float, DateTime), never biobench's Python-side
    # decorators, so an old revision keeps working when models.py changes.
    if kind == "type" and isinstance(obj, TypeDecorator):
        return f"sa.{obj.impl!r}"
    return False


context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    # SQLite cannot ALTER most things; batch mode rebuilds the table instead.
    render_as_batch=True,
    compare_type=True,
    render_item=_render_item,
    # Not Alembic's default `alembic_version`: Optuna's tables share the database and keep their
    # revision there (see biobench/store/versions.py).
    version_table=VERSION_TABLE,
)
with context.begin_transaction():
    context.run_migrations()

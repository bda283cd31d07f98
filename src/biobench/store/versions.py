"""Where biobench records its schema revision: the `biobench_version` table.

Alembic's default version table is `alembic_version`, and Optuna, whose tables share the results
database (`biobench search`), migrates its own schema with that very name. Two tools writing one
version row would each take the other's revision for their own, so biobench keeps its revision
in a table of its own. Databases made before revision 0006 still hold it in `alembic_version`:
`legacy_revision` reads it there, and `biobench db upgrade` carries it over (`carry_over`), after
which migration 0006 takes biobench's row out of `alembic_version`.
"""

from __future__ import annotations

from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, inspect, text

VERSION_TABLE = "biobench_version"
LEGACY_TABLE = "alembic_version"


def version_context(connection: Connection) -> MigrationContext:
    return MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})


def legacy_revision(connection: Connection, known: set[str]) -> str | None:
    """biobench's revision as a database made before 0006 records it, else None (a revision
    there that biobench does not know is another tool's, Optuna's)."""
    if not inspect(connection).has_table(LEGACY_TABLE):
        return None
    rows = connection.execute(text(f"SELECT version_num FROM {LEGACY_TABLE}")).scalars()
    ours = [row for row in rows if row in known]
    return ours[0] if ours else None


def current_revision(connection: Connection, known: set[str]) -> str | None:
    """The database's biobench revision, wherever it is recorded."""
    return version_context(connection).get_current_revision() or legacy_revision(connection, known)


def carry_over(connection: Connection, scripts: ScriptDirectory) -> None:
    """Record a pre-0006 database's revision in `biobench_version`, so that Alembic upgrades it
    from there; migration 0006 then removes it from `alembic_version`."""
    context = version_context(connection)
    if context.get_current_revision() is not None:
        return
    known = {script.revision for script in scripts.walk_revisions()}
    legacy = legacy_revision(connection, known)
    if legacy is not None:
        context.stamp(scripts, legacy)

"""`biobench db upgrade|current`: the results database's schema."""

from __future__ import annotations

from biobench.cli.app import (
    DbOption,
    console,
    db_app,
    handle_errors,
)


@db_app.command("upgrade")
@handle_errors
def db_upgrade(db: DbOption = None) -> None:
    """Create the schema, or migrate an existing database to this biobench's schema."""
    from biobench.store import Store

    store = Store(db, check=False)
    before, after = store.upgrade()
    if before == after:
        console.print(f"{store.display_url} is already at schema {after}", markup=False)
    else:
        console.print(
            f"{store.display_url}: schema {before or '(empty)'} -> {after}", markup=False
        )


@db_app.command("current")
@handle_errors
def db_current(db: DbOption = None) -> None:
    """Show the database's schema revision and this biobench's."""
    from biobench.store import Store

    store = Store(db, check=False)
    current, head = store.current_revision(), store.head_revision()
    state = (
        "up to date" if current == head else "run `biobench db upgrade`" if current else "empty"
    )
    console.print(
        f"{store.display_url}: schema {current or '(none)'}, biobench head {head} ({state})",
        markup=False,
    )

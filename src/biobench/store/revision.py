"""Developer tool: autogenerate a migration from the difference between models.py and head.

    python -m biobench.store.revision "add a column"

It builds a scratch SQLite database at the current head, compares it with models.py and writes
the new revision into migrations/versions/. Review the file before committing it.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from alembic import command

from biobench.store.store import Store


def main(message: str) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        store = Store(f"sqlite:///{Path(scratch) / 'scratch.db'}")
        with store._write_engine.begin() as connection:
            command.revision(store.alembic_config(connection), message=message, autogenerate=True)
        store.dispose()


if __name__ == "__main__":
    main(" ".join(sys.argv[1:]) or "schema change")

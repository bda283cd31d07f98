"""Epoch rows on their way to the database, surviving the database going away.

`EpochSink.write` commits each epoch's row at once. If the database cannot be reached, the row
is kept (in memory and in a spool file in the run's checkpoint folder) and training goes on;
every later write first retries what is pending, so rows land, in order and once each (the
store upserts on (run, epoch)), when the database is back. At the end `close` waits a bounded
time for the database; if it never returns, the spool file keeps the rows and the run's final
status, and the error names the command that imports them: `biobench import FILE`.
"""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path
from typing import Any

from biobench.errors import BiobenchError, StoreError
from biobench.files import atomic_write
from biobench.retry import retry
from biobench.store import Store

SPOOL = "pending.json"  # in the run's checkpoint folder
WAIT_ENV = "BIOBENCH_DB_WAIT"  # seconds `close` waits for an unreachable database (default 120)


def _encode(value: Any) -> Any:
    # JSON has no NaN or inf: spell them as strings, read back by `import_spool`.
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


class EpochSink:
    def __init__(self, store: Store, run_id: int, spool: Path, spec_hash: str) -> None:
        self.store, self.run_id, self.spool, self.spec_hash = store, run_id, spool, spec_hash
        self.pending: dict[int, dict[str, float]] = {}
        self.warned = False

    def write(self, epoch: int, row: dict[str, float]) -> None:
        self.pending[epoch] = dict(row)
        self._flush()

    def _flush(self) -> bool:
        for epoch in sorted(self.pending):
            try:
                self.store.write_epoch(self.run_id, epoch, self.pending[epoch])
            except StoreError as error:
                self._spool(None, None)
                if not self.warned:
                    print(
                        f"warning: {error}; training goes on, epoch rows are kept in "
                        f"{self.spool} and retried",
                        file=sys.stderr,
                        flush=True,
                    )
                    self.warned = True
                return False
            del self.pending[epoch]
        return True

    def _spool(self, status: str | None, error: str | None) -> None:
        content = {
            "run_id": self.run_id,
            "spec_hash": self.spec_hash,
            "epochs": {
                str(e): {k: _encode(v) for k, v in row.items()}
                for e, row in sorted(self.pending.items())
            },
            "status": status,
            "error": error,
        }
        # The rows may exist nowhere else: never leave them half-written.
        atomic_write(self.spool, json.dumps(content, indent=1))

    def close(self, status: str, error: str | None = None) -> None:
        """Write what is pending and the final status, waiting for the database if need be."""

        def deliver() -> None:
            if not self._flush():
                raise StoreError("epoch rows are still pending")
            self.store.set_status(self.run_id, status, error)
            self.spool.unlink(missing_ok=True)

        try:
            retry(
                deliver,
                retry_on=lambda e: isinstance(e, StoreError),
                delay=1.0,
                max_delay=15.0,
                seconds=float(os.environ.get(WAIT_ENV, 120)),
            )
            return
        except StoreError:
            pass
        self._spool(status, error)
        raise BiobenchError(
            f"the database {self.store.display_url} stayed unreachable: "
            f"{len(self.pending)} epoch row(s) and the run's final status ({status}) are in "
            f"{self.spool}; once it is back, run `biobench import {self.spool} --db URL`"
        )


def import_spool(store: Store, path: Path) -> tuple[int, int, str | None]:
    """Write a spool file's rows and final status; returns (run id, rows, status)."""
    try:
        content = json.loads(path.read_text())
        run_id, spec_hash = int(content["run_id"]), content["spec_hash"]
        epochs = {
            int(e): {k: float(v) if isinstance(v, str) else v for k, v in row.items()}
            for e, row in content["epochs"].items()
        }
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise BiobenchError(f"{path} is not a biobench spool file ({error})") from None
    run = store.run(run_id)
    if run.spec_hash != spec_hash:
        raise BiobenchError(
            f"{path} belongs to another run {run_id} (spec {spec_hash[:12]}, "
            f"the database's is {run.spec_hash[:12]}); is this the right --db?"
        )
    for epoch in sorted(epochs):
        store.write_epoch(run_id, epoch, epochs[epoch])
    if content.get("status"):
        store.set_status(run_id, content["status"], content.get("error"))
    return run_id, len(epochs), content.get("status")

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
import sys
from pathlib import Path
from typing import Any

from biobench.errors import BiobenchError, StoreError
from biobench.files import atomic_write, read_user_file
from biobench.paths import env_seconds
from biobench.retry import retry
from biobench.store import RunGone, RunRecord, RunStatus, Store
from biobench.store.models import LAYER_COLUMNS, METRIC_COLUMNS
from biobench.store.rows import LAYER_KEYS
from biobench.training import checkpoint

SPOOL = "pending.json"  # in the run's checkpoint folder
WAIT_ENV = "BIOBENCH_DB_WAIT"  # seconds `close` waits for an unreachable database (default 120)
SPOOL_KEYS = ("run_id", "spec_hash", "epochs", "status", "error")
REQUIRED_SPOOL_KEYS = SPOOL_KEYS[:3]
# What a spool file may set as the final status: a run that ended (never running, never lost).
SPOOL_STATUSES = tuple(s.value for s in RunStatus if s.ended and s is not RunStatus.lost)
_NON_FINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


def _encode(value: Any) -> Any:
    # JSON has no NaN or inf: spell them as strings, read back by `import_spool`.
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def _encode_row(row: dict[str, Any]) -> dict[str, Any]:
    out = {k: _encode(v) for k, v in row.items() if k != "layers"}
    if "layers" in row:
        out["layers"] = [{k: _encode(v) for k, v in layer.items()} for layer in row["layers"]]
    return out


class EpochSink:
    """Delivers a run's epoch rows and final status as the lease holder `owner`."""

    def __init__(
        self, store: Store, run_id: int, spool: Path, spec_hash: str, owner: str | None = None
    ) -> None:
        self.store, self.run_id, self.spool, self.spec_hash = store, run_id, spool, spec_hash
        self.owner = owner
        self.pending: dict[int, dict[str, Any]] = {}
        # Rows the database took: spooled too once it is gone (RunGone), since they went with it.
        self.delivered: dict[int, dict[str, Any]] = {}
        self.gone: RunGone | None = None
        self.warned = False

    def write(self, epoch: int, row: dict[str, Any]) -> None:
        self.pending[epoch] = dict(row)
        self._flush()

    def _flush(self) -> bool:
        """Deliver pending rows in order; False while the database is away. A lost lease
        (LeaseLost) or a database gone for good (RunGone, every row then spooled) is not a
        database hiccup: it propagates and training stops."""
        for epoch in sorted(self.pending):
            try:
                self.store.write_epoch(self.run_id, epoch, self.pending[epoch], owner=self.owner)
            except RunGone as error:
                self.gone = error
                self._spool(None, None)
                raise
            except StoreError as error:
                self._spool(None, None)
                if not self.warned:
                    self._say(
                        f"warning: {error}; training goes on, epoch rows are kept in "
                        f"{self.spool} and retried"
                    )
                    self.warned = True
                return False
            self.delivered[epoch] = self.pending.pop(epoch)
        return True

    @staticmethod
    def _say(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    def _spool(self, status: str | None, error: str | None) -> None:
        rows = {**self.delivered, **self.pending} if self.gone else self.pending
        content = {
            "run_id": self.run_id,
            "spec_hash": self.spec_hash,
            "epochs": {str(e): _encode_row(row) for e, row in sorted(rows.items())},
            "status": status,
            "error": error,
        }
        # The rows may exist nowhere else: never leave them half-written.
        atomic_write(self.spool, json.dumps(content, indent=1))

    def close(self, status: str, error: str | None = None) -> None:
        """Write what is pending and the final status, waiting for the database if need be.

        While it waits it says so; a Ctrl-C then stops the wait, and the rows and the status
        go to the spool file like a wait that ran out. A database gone for good (RunGone) is
        not waited for: every row of the run and its status go to the spool file at once."""
        seconds = env_seconds(WAIT_ENV, 120)
        waiting = []

        def deliver() -> None:
            if not self._flush():
                if not waiting:
                    waiting.append(True)
                    self._say(
                        f"waiting up to {seconds:g} s for the database {self.store.display_url} "
                        f"to record the run's end ({status}); Ctrl-C stops waiting and keeps "
                        f"the rows in {self.spool}"
                    )
                raise StoreError("epoch rows are still pending")
            self.store.set_status(self.run_id, status, error, owner=self.owner)
            self.spool.unlink(missing_ok=True)

        try:
            if self.gone is None:
                retry(
                    deliver,
                    retry_on=lambda e: isinstance(e, StoreError) and not isinstance(e, RunGone),
                    delay=1.0,
                    max_delay=15.0,
                    seconds=seconds,
                )
                return
        except RunGone as gone:
            self.gone = gone
        except StoreError:
            pass
        except KeyboardInterrupt:
            status, error = "interrupted", "interrupted by the user (Ctrl-C or SIGTERM)"
        self._spool(status, error)
        if self.gone is not None:
            raise BiobenchError(
                f"{self.gone}: run {self.run_id} stops, its {len(self.delivered | self.pending)} "
                f"epoch row(s) and its end ({status}) kept in {self.spool} and its checkpoint "
                f"beside it; with the run's database back in place, run `biobench import "
                f"{self.spool} --db URL`"
            )
        raise BiobenchError(
            f"the database {self.store.display_url} stayed unreachable: "
            f"{len(self.pending)} epoch row(s) and the run's final status ({status}) are in "
            f"{self.spool}; once it is back, run `biobench import {self.spool} --db URL`"
        )


def _metric(where: str, value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, str) and value.lower() in _NON_FINITE:
        return _NON_FINITE[value.lower()]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{where} is {value!r}, not a number")
    return float(value)


def _layers(where: str, raw: Any) -> list[dict[str, Any]]:
    """A row's per-layer rows, validated (store/rows.py's layout)."""
    if not isinstance(raw, list) or not all(isinstance(layer, dict) for layer in raw):
        raise ValueError(f"{where} layers is not a list of per-layer mappings")
    out = []
    for layer in raw:
        if not set(layer) <= set(LAYER_KEYS) or not {"layer", "name"} <= set(layer):
            raise ValueError(f"{where} layers must map {', '.join(LAYER_KEYS)}")
        number, name = layer["layer"], layer["name"]
        if isinstance(number, bool) or not isinstance(number, int) or not 0 < number < 2**31:
            raise ValueError(f"{where} layer {number!r} is not a layer number")
        if not isinstance(name, str) or len(name) > 128:
            raise ValueError(f"{where} layer {number} has no valid name")
        values = {k: _metric(f"{where} layer {number} {k}", layer.get(k)) for k in LAYER_COLUMNS}
        out.append({"layer": number, "name": name, **values})
    return out


def read_spool(path: Path) -> tuple[int, str, dict[int, dict[str, Any]], Any, Any]:
    """A spool file, validated whole before anything is written: (run id, spec hash, epoch
    rows, final status or None, error or None)."""
    text = read_user_file(path, fix="pass the pending.json a run left")
    try:
        content = json.loads(text)
    except (UnicodeDecodeError, ValueError) as error:
        raise BiobenchError(f"{path} is not a biobench spool file (not JSON: {error})") from None
    try:
        keys = set(content) if isinstance(content, dict) else set()
        if not set(REQUIRED_SPOOL_KEYS) <= keys <= set(SPOOL_KEYS):
            raise ValueError(
                f"its keys must be {', '.join(REQUIRED_SPOOL_KEYS)} (and status, error)"
            )
        run_id, spec_hash = content["run_id"], content["spec_hash"]
        if isinstance(run_id, bool) or not isinstance(run_id, int) or not 0 < run_id < 2**63:
            raise ValueError(f"run_id {run_id!r} is not a run id")
        if not isinstance(spec_hash, str):
            raise ValueError("spec_hash is not a string")
        if not isinstance(content["epochs"], dict):
            raise ValueError("epochs is not a mapping of epoch -> metrics")
        epochs: dict[int, dict[str, Any]] = {}
        for key, row in content["epochs"].items():
            if not key.isascii() or not key.isdigit() or not 0 < int(key) < 2**31:
                raise ValueError(f"epoch {key!r} is not an epoch number")
            if not isinstance(row, dict) or not set(row) <= {*METRIC_COLUMNS, "layers"}:
                raise ValueError(
                    f"epoch {key} must map metric names ({', '.join(METRIC_COLUMNS)}) and layers"
                )
            epochs[int(key)] = {
                k: _metric(f"epoch {key} {k}", v) for k, v in row.items() if k != "layers"
            }
            if "layers" in row:
                epochs[int(key)]["layers"] = _layers(f"epoch {key}", row["layers"])
        status, error = content.get("status"), content.get("error")
        if status is not None and status not in SPOOL_STATUSES:
            raise ValueError(f"status {status!r} is not one of {', '.join(SPOOL_STATUSES)}")
        if error is not None and not isinstance(error, str):
            raise ValueError("error is not a string")
    except ValueError as problem:
        raise BiobenchError(
            f"{path} is not a valid spool file: {problem}; nothing imported"
        ) from None
    return run_id, spec_hash, epochs, status, error


def _range_problem(column: str, value: float) -> str | None:
    """Why `value` cannot be what training measured for `column`, or None."""
    if column.endswith(("_top1", "_top5")):  # errors, counted: never NaN
        ok, what = 0 <= value <= 100, "an error from 0 to 100 %"
    elif column.endswith("_loss"):  # NaN or inf: a diverged epoch
        ok, what = math.isnan(value) or value >= 0, "a loss of 0 or more"
    elif column == "signal_cosine":  # NaN: not measurable (a zero signal), as training writes
        ok, what = math.isnan(value) or -1 - 1e-9 <= value <= 1 + 1e-9, "a cosine from -1 to 1"
    elif column in LAYER_COLUMNS:  # NaN: no update to measure the angle of
        ok, what = math.isnan(value) or 0 <= value <= 180, "an angle from 0 to 180 degrees"
    else:  # times, speeds and memory
        ok, what = value >= 0, "a measurement of 0 or more"
    return None if ok else f"is {value!r}, not {what}"


def _check_values(run: RunRecord, epochs: dict[int, dict[str, Any]]) -> None:
    """Refuse rows that training could not have written for `run`."""
    for epoch, row in sorted(epochs.items()):
        if epoch > run.epochs:
            raise ValueError(f"epoch {epoch} is past the run's {run.epochs} epoch(s)")
        values = [(f"epoch {epoch} {k}", k, v) for k, v in row.items() if k != "layers"]
        values += [
            (f"epoch {epoch} layer {layer['layer']} {k}", k, layer[k])
            for layer in row.get("layers", ())
            for k in LAYER_COLUMNS
            if k in layer
        ]
        for where, column, value in values:
            problem = None if value is None else _range_problem(column, value)
            if problem:
                raise ValueError(f"{where} {problem}")


def import_spool(store: Store, path: Path) -> tuple[int, int, str | None]:
    """Write a spool file's rows and final status, all or nothing; returns (run id, rows,
    status). A run that finished or diverged is never rewritten. Once the run's own spool file
    is imported it is deleted, and a finished run's checkpoint goes as the run asked
    (`--keep-checkpoint`)."""
    run_id, spec_hash, epochs, status, error = read_spool(path)
    run = store.run(run_id)
    if run.spec_hash != spec_hash:
        raise BiobenchError(
            f"{path} belongs to another run {run_id} (spec {spec_hash[:12]}, "
            f"the database's is {run.spec_hash[:12]}); is this the right --db?"
        )
    if run.status.ended and not run.status.resumable:
        raise BiobenchError(
            f"run {run_id} has {run.status.value}: its rows and status are final, and {path} "
            "would rewrite them; nothing imported"
        )
    try:
        _check_values(run, epochs)
    except ValueError as problem:
        raise BiobenchError(
            f"{path} is not a valid spool file: {problem}; nothing imported"
        ) from None
    # A spool file with a final status is its writer's last word; without one, the writer may
    # still be delivering rows itself.
    if run.status is RunStatus.running and status is None:
        raise BiobenchError(
            f"run {run_id} is still running (its process is alive); import {path} once it "
            "has stopped"
        )
    store.import_rows(run_id, epochs, RunStatus(status) if status else None, error)
    folder = Path(run.checkpoint) if run.checkpoint else None
    if folder is not None and path.resolve() == (folder / SPOOL).resolve():
        path.unlink(missing_ok=True)  # delivered: a resume would import it again
    keep = run.environment.get("keep_checkpoint", checkpoint.DEFAULT_KEEP)
    if folder is not None and status == RunStatus.finished.value and keep == "none":
        checkpoint.discard(folder)
    return run_id, len(epochs), status

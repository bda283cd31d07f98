"""Runs written straight into a real store, no training: what the results code reads."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

from biobench.spec import resolve
from biobench.store import Store
from biobench.store.store import HOST

# The statuses a run ends with (lost aside: its process died without a word).
ENDED = ("finished", "failed", "interrupted", "diverged")


def new_run(store: Store, **overrides: Any) -> int:
    """A run row with plain fields (no spec resolution): what the store contract tests need."""
    fields = dict(
        spec_hash="0" * 64,
        algorithm="bp",
        architecture="fc",
        dataset="digits",
        hparams={"lr": 1e-3},
        spec={"algorithm": "bp"},
        seed=0,
        epochs=3,
        batch_size=32,
        device="cpu",
        environment={"python": "3"},
    )
    return store.create_run(**{**fields, **overrides})


def add_run(store: Store, errors: list[float], status: str = "finished", **spec_kw: Any) -> int:
    """A run of `spec_kw` (BP on the fc net and synthetic data, 3 epochs, where unsaid) whose
    epochs have these test top-1 errors, train half of each."""
    defaults = {"architecture": "fc", "dataset": "synthetic", "epochs": 3}
    if "preset" not in spec_kw:
        defaults["algorithm"] = "bp"
    spec = resolve(**{**defaults, **spec_kw})
    run_id = store.create_run(**spec.run_fields(), device="cpu", environment={})
    for epoch, error in enumerate(errors, 1):
        store.write_epoch(run_id, epoch, {"train_top1": error / 2, "test_top1": error})
    store.set_status(run_id, status)
    return run_id


def add_finished(store: Store, test: float, preset: str | None = None, **spec_kw: Any) -> int:
    """A finished one-epoch run (of `preset`, or of spec_kw) whose test top-1 error is `test`
    (and validation error, where the spec holds a validation split out)."""
    spec = resolve(preset=preset, **spec_kw)
    run_id = store.create_run(**spec.run_fields(), device="cpu", environment={})
    row = {"train_top1": test / 2, "test_top1": test, "train_top5": 0.0, "test_top5": 0.0}
    if spec.setting("val_split"):
        row["val_top1"] = test
    store.write_epoch(run_id, 1, row)
    store.set_status(run_id, "finished")
    return run_id


def url(store: Store) -> str:
    """The store's URL with its password, as a library caller passes it."""
    return store.url.render_as_string(hide_password=False)


def dead_pid() -> int:
    """The id of a process that has ended: a run it owned reads as lost."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def add_running(store: Store, pid: int | None, host: str | None = HOST) -> int:
    """A run that a process with this pid on this host is training (no epoch yet)."""
    spec = resolve(algorithm="bp", architecture="fc", dataset="synthetic")
    return store.create_run(**spec.run_fields(), device="cpu", environment={}, host=host, pid=pid)

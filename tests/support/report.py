"""Databases for the report's tests, filled through the Store's API (no training)."""

from __future__ import annotations

import math
import subprocess
import sys
from typing import Any

from biobench.spec import resolve
from biobench.store import Store
from biobench.store.store import HOST

HOSTILE = '<script>alert("x")</script>'  # a name or value a page must show as text


def add_run(
    store: Store,
    preset: str | None,
    errors: list[tuple[float, float]],
    *,
    seed: int = 0,
    status: str = "finished",
    fields: dict[str, Any] | None = None,
    layer: str = "w1",
    **spec_kw: Any,
) -> int:
    """A run of `preset` (or spec_kw) whose epochs have these (train, test) top-1 errors, with
    cost and alignment rows; `fields` overrides its stored columns (a hostile name...)."""
    spec = (
        resolve(preset=preset, seed=seed, **spec_kw) if preset else resolve(seed=seed, **spec_kw)
    )
    values = {**spec.run_fields(), "device": "cpu", "environment": {"threads": 1}}
    values.update(fields or {})
    run_id = store.create_run(**values)
    for epoch, (train, test) in enumerate(errors, 1):
        store.write_epoch(
            run_id,
            epoch,
            {
                "train_top1": train,
                "test_top1": test,
                "train_top5": train / 4,
                "test_top5": test / 4,
                "step_ms": 2.0 + seed,
                "step_ms_forward": 1.0,
                "peak_memory_mb": 100.0,
                "layers": [
                    {"layer": 1, "name": layer, "update_angle": 40.0 + epoch},
                    {"layer": 2, "name": "w2", "update_angle": 30.0 + epoch},
                ],
            },
        )
    if status != "running":
        store.set_status(run_id, status, "loss is nan" if status == "diverged" else None)
    return run_id


def dead_pid() -> int:
    """The id of a process that has exited (a lost run's writer)."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def fill(store: Store) -> dict[str, int]:
    """The paper's MNIST cells (BP over two seeds, DTP, FA), and runs of every awkward kind."""
    ids = {
        "bp0": add_run(store, "mnist-fc-bp", [(3.0, 4.0), (0.5, 1.6), (0.0, 1.7)]),
        "bp1": add_run(store, "mnist-fc-bp", [(2.0, 3.0), (0.2, 1.4)], seed=1),
        "bp_lc": add_run(store, "mnist-lc-bp", [(1.0, 1.3), (0.0, 1.2)]),
        "dtp": add_run(store, "mnist-fc-dtp-alt", [(5.0, 6.0), (1.0, 2.5)]),
        "fa": add_run(store, "mnist-lc-fa", [(4.0, 9.0)]),
        "diverged": add_run(
            store, "mnist-fc-dtp-par", [(9.0, 9.5), (math.nan, math.inf)], status="diverged"
        ),
        "no_epochs": add_run(store, "mnist-fc-fa", [], status="failed"),
        "running": add_run(store, "mnist-fc-dtp-par", [(9.0, 9.5)], status="running"),
        "lost": add_run(
            store,
            "mnist-fc-fa",
            [(8.0, 8.5)],
            status="running",
            fields={"host": HOST, "pid": dead_pid()},
        ),
    }
    return ids


def fill_hostile(store: Store) -> int:
    """A finished run whose preset name, a hyperparameter value, its error and a layer's name
    (which its page's chart data embeds) hold a script."""
    spec = resolve(preset="mnist-fc-bp", seed=7)
    hparams = {**spec.hparams, "lr": HOSTILE}
    return add_run(
        store,
        "mnist-fc-bp",
        [(1.0, 2.0)],
        seed=7,
        fields={
            "preset": HOSTILE,
            "hparams": hparams,
            "spec": {**spec.to_dict(), "preset": HOSTILE, "hparams": hparams},
            "error": HOSTILE,
        },
        layer="</script>" + HOSTILE,
    )

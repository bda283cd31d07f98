"""How `biobench report` scales: a database of RUNS runs x EPOCHS epochs, and the site of it.

    python tools/report_scale.py [--runs 5000] [--epochs 100] [--db sqlite:///PATH] [--out DIR]

Fills the database through the Store's API (one transaction per run: `create_run`, then
`import_rows` with its epochs, two layers' alignment rows each, and its final status) unless
it already holds RUNS runs, then times `biobench report --out DIR` in this process and prints
the build's seconds, the leaderboard page's bytes, the largest run page's and the whole
site's. The runs are the paper suite's presets over many seeds, with synthetic errors.
"""

from __future__ import annotations

import argparse
import math
import random
import sys
import tempfile
import time
from pathlib import Path

from biobench.registry import load_all
from biobench.report.site import build
from biobench.spec import load_presets, resolve
from biobench.store import RunStatus, Store


def fill(store: Store, runs: int, epochs: int) -> None:
    load_all()
    presets = load_presets().suite("paper")
    rng = random.Random(0)
    started = time.perf_counter()
    for index in range(runs):
        preset = presets[index % len(presets)]
        spec = resolve(preset=preset, seed=index // len(presets), epochs=epochs)
        run_id = store.create_run(
            **spec.run_fields(),
            device="cpu",
            environment={"threads": 1, "host": "scale", "argv": ["run", "--preset", preset]},
        )
        floor = rng.uniform(1.0, 60.0)
        rows = {}
        for epoch in range(1, epochs + 1):
            test = floor + 40.0 * math.exp(-epoch / 10) + rng.uniform(0.0, 0.5)
            rows[epoch] = {
                "train_top1": test * 0.6,
                "train_top5": test * 0.15,
                "train_loss": test / 30,
                "test_top1": test,
                "test_top5": test / 4,
                "test_loss": test / 25,
                "wall_time": 10.0,
                "images_per_s": 5000.0,
                "step_ms": rng.uniform(2.0, 6.0),
                "step_ms_forward": 1.0,
                "step_ms_update": 1.0,
                "eval_ms": 300.0,
                "peak_memory_mb": 200.0,
                "layers": [
                    {"layer": 1, "name": "w1", "update_angle": 40.0 + rng.random()},
                    {"layer": 2, "name": "w2", "update_angle": 30.0 + rng.random()},
                ],
            }
        store.import_rows(run_id, rows, RunStatus.finished, None)
        if (index + 1) % 500 == 0:
            elapsed = time.perf_counter() - started
            print(f"filled {index + 1}/{runs} runs ({elapsed:.0f} s)", file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5000)
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--db", default="sqlite:////tmp/biobench-report-scale.db")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    store = Store(args.db)
    held = len(store.runs())
    if held == 0:
        began = time.perf_counter()
        fill(store, args.runs, args.epochs)
        print(f"fill: {time.perf_counter() - began:.1f} s", file=sys.stderr)
    elif held != args.runs:
        sys.exit(f"{store.display_url} holds {held} runs, not {args.runs}: pass another --db")
    out = args.out or Path(tempfile.mkdtemp(prefix="biobench-report-scale-")) / "site"
    began = time.perf_counter()
    built = build(store, out)
    seconds = time.perf_counter() - began
    pages = list((out / "runs").glob("*.html"))
    print(f"runs x epochs: {args.runs} x {args.epochs}")
    print(f"build: {seconds:.1f} s, {built.pages} pages")
    print(f"leaderboard.html: {(out / 'leaderboard.html').stat().st_size:,} bytes")
    print(f"runs.html: {(out / 'runs.html').stat().st_size:,} bytes")
    print(f"largest run page: {max(p.stat().st_size for p in pages):,} bytes")
    print(f"site: {built.bytes:,} bytes in {out}")


if __name__ == "__main__":
    main()

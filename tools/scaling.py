"""Images/s of one run on 1, 2, ... data-parallel processes: `python tools/scaling.py`.

Trains the same spec once per process count (`biobench run --nproc N`, a throwaway SQLite
database) and prints the training throughput of its last epoch, which excludes the start-up.
Each process uses --threads torch threads (default 1: threads of several processes competing
for the same cores only measure the competition). On a CPU every process shares the same
cores, memory bandwidth and caches, and each step adds an all-reduce of every gradient, so do
not expect N times the images/s: the gain is what the extra processes find idle. On GPUs pass
`--device cuda` and one process per GPU.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from biobench.store import Store


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nproc", default="1,2", help="process counts, e.g. 1,2,4")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process")
    parser.add_argument("spec", nargs="*", default=["--algo", "bp", "--arch", "lc"])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{Path(folder) / 'scaling.db'}"
        print(f"{'processes':>9}  {'images/s':>10}  {'speed-up':>8}")
        first = None
        for nproc in map(int, args.nproc.split(",")):
            command = [sys.executable, "-m", "biobench", "run", *args.spec]
            command += ["--epochs", str(args.epochs), "--device", args.device, "--db", url]
            command += ["--checkpoint-dir", folder, "--nproc", str(nproc)]
            env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
            subprocess.run(command, check=True, capture_output=True, env=env)
            store = Store(url)
            run = max(store.runs(), key=lambda r: r.id)
            last = max(store.epochs([run.id]), key=lambda row: row["epoch"])
            rate = last["images_per_s"]
            first = first or rate
            print(f"{nproc:>9}  {rate:>10,.0f}  {rate / first:>7.2f}x")


if __name__ == "__main__":
    main()

"""From a resolved spec to a finished run row: the glue between library and results database.

Everything that can fail because of user input (the database URL, the dataset files, the
network for this dataset) is checked before the run row is created, so bad input never leaves a
half-made run behind. Once the row exists, the run ends `finished`, `failed` (with the error) or
`interrupted` (Ctrl-C or SIGTERM), never `running`.
"""

from __future__ import annotations

import os
import platform
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

import biobench
from biobench.archs import DataInfo, build_network
from biobench.data import DataOptions, load_dataset
from biobench.errors import BiobenchError
from biobench.registry import ALGORITHMS
from biobench.spec import BenchmarkSpec
from biobench.store import Store
from biobench.train import Reporter, fit

DEVICES = ("auto", "cpu", "cuda")


def resolve_device(name: str) -> torch.device:
    if name not in DEVICES:
        raise BiobenchError(f"unknown device {name!r}; choose one of: {', '.join(DEVICES)}")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise BiobenchError("--device cuda: no CUDA GPU is visible here; use --device cpu or auto")
    return torch.device(name)


def _git_sha() -> str | None:
    source = Path(biobench.__file__).resolve().parent
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=source, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() or None if result.returncode == 0 else None


def environment(device: torch.device) -> dict[str, Any]:
    """Where and with what a run ran, stored with it."""
    if device.type == "cuda":
        device_name = torch.cuda.get_device_name(device)
    else:
        device_name = platform.processor() or platform.machine()
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "biobench": biobench.__version__,
        "device": str(device),
        "device_name": device_name,
        "cuda": torch.version.cuda if device.type == "cuda" else None,
        "threads": torch.get_num_threads(),
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "git_sha": _git_sha(),
        "argv": sys.argv[1:],
    }


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """Make `kill PID` end a run like Ctrl-C does: marked interrupted, not left running."""

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def execute(
    spec: BenchmarkSpec,
    *,
    store: Store,
    device: torch.device,
    data_dir: Path,
    download: bool = False,
    reporter: Reporter | None = None,
    on_start: Any = None,
) -> int:
    """Train `spec` and record it in `store`; returns the run id."""
    options = DataOptions(root=data_dir, download=download, settings=spec.data_settings)
    data = load_dataset(spec.dataset, options)
    torch.manual_seed(spec.seed)  # initialisation depends on the seed only
    net = build_network(
        spec.architecture, DataInfo(data.name, data.input_shape, data.num_classes)
    ).to(device)
    learner = ALGORITHMS.get(spec.algorithm)(net, spec.hparams)
    data = data.to(device)
    generator = torch.Generator().manual_seed(spec.seed)  # data order depends on the seed only

    env = environment(device)
    env.update(
        dataset_source=data.source,
        parameters=net.num_parameters(),
        train_size=len(data.train),
        test_size=len(data.test),
        pid=os.getpid(),
    )
    run_id = store.create_run(
        spec_hash=spec.spec_hash(),
        benchmark=spec.benchmark,
        algorithm=spec.algorithm,
        architecture=spec.architecture,
        dataset=spec.dataset,
        hparams=spec.hparams,
        spec=spec.to_dict(),
        seed=spec.seed,
        epochs=spec.epochs,
        batch_size=spec.batch_size,
        device=env["device_name"] if device.type == "cuda" else "cpu",
        host=env["host"],
        git_sha=env["git_sha"],
        torch_version=env["torch"],
        biobench_version=env["biobench"],
        environment=env,
    )
    if on_start is not None:
        on_start(run_id, net)
    try:
        with _sigterm_as_interrupt():
            fit(
                learner,
                data,
                epochs=spec.epochs,
                batch_size=spec.batch_size,
                generator=generator,
                on_epoch=lambda epoch, row: store.write_epoch(run_id, epoch, row),
                reporter=reporter,
            )
    except KeyboardInterrupt:
        store.set_status(run_id, "interrupted", "interrupted by the user (Ctrl-C or SIGTERM)")
        raise
    except BaseException as error:
        store.set_status(run_id, "failed", f"{type(error).__name__}: {error}")
        raise
    store.set_status(run_id, "finished")
    return run_id

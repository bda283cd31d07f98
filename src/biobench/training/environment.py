"""Where a run runs: the device a user names, and the environment recorded with the run."""

from __future__ import annotations

import os
import platform
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch

import biobench
from biobench.errors import BiobenchError
from biobench.store import mask_url

DEVICES = ("auto", "cpu", "cuda", "cuda:N")


def resolve_device(name: str) -> torch.device:
    """`auto` (the GPU when there is one), `cpu`, `cuda` or `cuda:N` (one GPU of several;
    CUDA_VISIBLE_DEVICES decides which ones are visible and how they are numbered)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    kind, _, index = name.partition(":")
    if kind not in ("cpu", "cuda") or (index and (kind == "cpu" or not index.isdigit())):
        raise BiobenchError(f"unknown device {name!r}; choose one of: {', '.join(DEVICES)}")
    if kind == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise BiobenchError(
                f"--device {name}: no CUDA GPU is visible here; use --device cpu or auto"
            )
        if index and int(index) >= count:
            raise BiobenchError(
                f"--device {name}: {count} GPU(s) are visible (cuda:0..cuda:{count - 1}); "
                "check CUDA_VISIBLE_DEVICES"
            )
    return torch.device(name)


def available_cpus() -> int:
    """The cores this process may run on (its affinity: a Slurm allocation, `taskset`), not
    every core of the machine."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def default_threads(processes: int) -> int:
    """Torch threads per process where `--threads` is not given: the available cores shared by
    the run's processes. torch's own default takes every core in every process; on a loaded
    2-core machine that made steps 15-40x slower than one thread, and timings noise."""
    return max(1, available_cpus() // processes)


def use_threads(threads: int | None, processes: int) -> int:
    """Set torch's CPU threads (intra-op) for this process: `threads`, else the default."""
    chosen = threads or default_threads(processes)
    torch.set_num_threads(chosen)
    return chosen


def _load() -> list[float] | None:
    """The machine's load average over 1, 5 and 15 minutes (processes running or waiting for a
    core): how busy the cores the timings were measured on were."""
    try:
        return [round(value, 2) for value in os.getloadavg()]
    except (AttributeError, OSError):  # Windows; a system without /proc/loadavg
        return None


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
        "cpus": available_cpus(),
        "load": _load(),
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "git_sha": _git_sha(),
        "argv": [mask_url(arg) for arg in sys.argv[1:]],  # never a database password
    }

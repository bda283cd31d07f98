"""What a rule costs: time per step by phase, peak memory, FLOPs per step.

A learner marks the end of each phase of its step with `self.clock.lap(phase)` (phases:
models.PHASES — forward, signal, update, inverse); the time since the previous lap (or since
the step began) is the phase's. On the CPU every step is timed with perf_counter. On a GPU a
lap records a CUDA event and nothing waits for it: the events are read once per epoch, and only
every SAMPLE-th step is timed, so timing never synchronises the host with the device. Outside
training a learner's clock is learners.base.PhaseClock, whose lap does nothing.
"""

from __future__ import annotations

import copy
import os
import resource
from collections import defaultdict
from time import perf_counter
from typing import Any

import torch
from torch import Tensor
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import flop_registry

from biobench.learners.base import Learner, PhaseClock

SAMPLE = 8  # on a GPU, every SAMPLE-th step is timed


class Clock(PhaseClock):
    """Times steps by phase over one epoch (see the module docstring)."""

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"
        self.every = SAMPLE if self.cuda else 1
        self.steps = 0  # steps begun this epoch
        self.timed = 0  # of which timed
        self._laps: list[tuple[str, Any, Any]] = []
        self._last: Any = None

    def _now(self) -> Any:
        if self.cuda:
            event = torch.cuda.Event(enable_timing=True)
            event.record()
            return event
        return perf_counter()

    def begin_step(self) -> None:
        """A step starts; it is timed if it is one of the sampled ones."""
        self._last = self._now() if self.steps % self.every == 0 else None
        self.timed += self._last is not None
        self.steps += 1

    def lap(self, phase: str) -> None:
        if self._last is None:
            return
        now = self._now()
        self._laps.append((phase, self._last, now))
        self._last = now

    def end_step(self) -> None:
        self._last = None

    def phase_ms(self, batches: int) -> dict[str, float]:
        """Milliseconds per minibatch of data spent in each phase this epoch (all passes of
        `batches` steps each), then starts a new epoch. One synchronisation on a GPU."""
        if self.cuda and self._laps:
            torch.cuda.synchronize()
        totals: dict[str, float] = defaultdict(float)
        for phase, start, end in self._laps:
            totals[phase] += start.elapsed_time(end) if self.cuda else (end - start) * 1e3
        scale = self.steps / max(self.timed, 1) / max(batches, 1)
        out = {phase: total * scale for phase, total in totals.items()}
        self.steps = self.timed = 0
        self._laps = []
        return out


def reset_peak_memory(device: torch.device) -> None:
    """Start measuring the peak anew: the CUDA allocator's, or (Linux) the process's RSS."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        return
    try:  # writing 5 to clear_refs resets VmHWM, the peak resident set (Linux >= 4.0)
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
    except OSError:
        pass


def peak_memory_mb(device: torch.device) -> float | None:
    """The peak since the last reset, in MiB: CUDA's allocated memory, or the process's RSS
    (/proc/self/status VmHWM, else getrusage's lifetime peak)."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1024 if os.uname().sysname == "Linux" else peak / 2**20


class _FlopCounter(TorchDispatchMode):
    """torch.utils.flop_counter's per-op formulas, without FlopCounterMode's module tracker
    (whose backward hooks break the TP rules' autograd.grad with respect to a leaf)."""

    def __init__(self) -> None:
        super().__init__()
        self.total = 0

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        count = flop_registry.get(func._overloadpacket)
        if count is not None:
            self.total += count(*args, **kwargs, out_val=out)
        return out


def flops_per_step(learner: Learner, x: Tensor, y: Tensor) -> float | None:
    """Floating-point operations of one training step on (x, y) (torch.utils.flop_counter's
    formulas: matrix products and convolutions, forward and backward, inverses included; an
    alternating rule's two passes together), counted on a copy of the learner so the run is
    not touched; None where counting fails."""
    devices = [x.device] if x.device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=devices):
            twin = copy.deepcopy(learner)
            with _FlopCounter() as counter:
                for phase in twin.epoch_phases(1):
                    twin.start_phase(phase)
                    twin.train_step(x, y)
        return float(counter.total)
    except Exception:  # noqa: BLE001 - an op the counter cannot trace costs a figure, not a run
        return None

"""Data-parallel runs on torch.distributed: N processes train one run as one process would.

Every process (rank) holds the whole network and the whole learner, built from the same seed,
so initial weights, feedback matrices and AO-SDTP's fixed features agree without being sent.
Each global batch of `--batch-size` samples is cut into near-equal parts, one per rank
(`data.base.Shard`); each rank runs the learner's own `train_step` on its part. Before any
optimiser of the learner steps, a step pre-hook replaces every gradient it is about to use by
the batch-weighted average over ranks,

    g = sum_r (n_r / n) g_r       (n_r: rank r's samples, n: the global batch),

which for a loss that is a mean over the batch (every biobench learner's: cross-entropy, the
target losses, the inverse losses, e = dL/dlogits / N) is the gradient one process computes on
the whole batch, up to float summation order. So it works for every learner without a line of
learner code: whatever it steps (forward weights, inverses, learned feedback) is averaged.
State a learner changes outside its optimisers (weight mirrors' Hebbian update of B) is found
by torch's in-place version counters and averaged with the same weights after the step; for
WM that is exactly one process's update from the whole batch's noise.

Randomness: after the network is built (and after a resume restores the checkpoint's RNG state)
each rank reseeds torch from the common state and its rank, so per-sample noise (DTP's sigma,
WM's mirror noise) differs from rank to rank as it differs from sample to sample, and a run is
reproducible for a given number of processes. It therefore differs in its noise, though not in
distribution, from a one-process run; so do brSF's magnitudes, redrawn per minibatch and rank.
Not equivalent to one process: `alpha_scale=batch` (DTP, TP, DDTP) steps alpha / n_r, the local
batch's, not alpha / n; and batch normalisation (no biobench net uses it) would normalise
with each rank's own statistics.

Rank 0 alone writes the run row, epoch rows, checkpoints and the heartbeat; metrics are summed
over ranks (each evaluates its part of every evaluation batch). A rank that dies makes the
others' next collective fail at once (its sockets close); one that hangs, after
BIOBENCH_DIST_TIMEOUT seconds (default 600): rank 0 then records the run `failed`, resumable
with any number of processes.
"""

from __future__ import annotations

import os
import signal
import uuid
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from datetime import timedelta
from typing import Any, TypeVar

import torch
import torch.distributed as dist
from torch import Tensor

from biobench.data.base import Shard, Split
from biobench.errors import BiobenchError
from biobench.learners.base import Learner
from biobench.paths import env_seconds

TIMEOUT_ENV = "BIOBENCH_DIST_TIMEOUT"  # seconds a collective waits for a silent rank
T = TypeVar("T")


class PeerStopped(BiobenchError):
    """Rank 0 stopped (an error, or the run ended early); this rank stops with it."""


class PeerLost(BiobenchError):
    """Another process of the run died, or did not answer within BIOBENCH_DIST_TIMEOUT."""


def world_size() -> int:
    """Processes of this run, from the launcher's environment (torchrun, `--nproc`)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


class Group:
    """This process's place in a data-parallel run, and the collectives the run needs."""

    def __init__(self, rank: int, world: int, local_rank: int, device: torch.device) -> None:
        self.rank, self.world, self.local_rank, self.device = rank, world, local_rank, device
        self.shard = Shard(rank, world)

    @property
    def leader(self) -> bool:
        return self.rank == 0

    def broadcast(self, value: Any) -> Any:
        """Rank 0's `value`, on every rank."""
        box = [value]
        dist.broadcast_object_list(box, src=0, device=self._comm_device)
        return box[0]

    @property
    def _comm_device(self) -> torch.device:
        return self.device if dist.get_backend() == "nccl" else torch.device("cpu")

    def all_sum(self, tensor: Tensor) -> Tensor:
        try:
            dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        except RuntimeError as error:  # torch's DistBackendError: a peer closed or timed out
            first = str(error).strip().splitlines()[0] if str(error).strip() else ""
            raise PeerLost(
                f"a process of this {self.world}-process run stopped or stopped answering "
                f"({first[:200]}); the run can be resumed with --resume"
            ) from error
        return tensor

    def any(self, flag: bool) -> bool:
        """True on every rank when `flag` is true on any."""
        box = torch.tensor([float(flag)], device=self._comm_device)
        return bool(self.all_sum(box).item())


@contextmanager
def joined(device: torch.device) -> Iterator[tuple[Group | None, torch.device]]:
    """Join the run's process group when a launcher started several processes, for the block;
    yields the group (None for a one-process run) and this rank's device (cuda:LOCAL_RANK on
    GPUs). A group this call makes is torn down when the block ends, however it ends (see
    `leave`); one the caller had already made is left to the caller."""
    world = world_size()
    if world <= 1:
        yield None, device
        return
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    made = not dist.is_initialized()  # a caller's own group (the Python API) stays theirs
    if made:
        dist.init_process_group(
            backend="nccl" if device.type == "cuda" else "gloo",
            timeout=timedelta(seconds=env_seconds(TIMEOUT_ENV, 600)),
        )
    try:
        yield Group(rank, world, local_rank, device), device
    finally:
        if made:
            leave()


def leave() -> None:
    """Tear this process's group down while the interpreter is whole. Left to the exit, gloo's
    worker threads may drop their last references to the collectives' tensors while Python
    shuts down; taking the GIL then aborts the process ("terminate called without an active
    exception", pytorch/pytorch#190489), so a rank whose run finished could exit with SIGABRT
    and its launcher call the run's processes failed. Never raises: the run's own outcome,
    already recorded, is what the rank reports."""
    if not dist.is_initialized():
        return
    with suppress(Exception):  # the group is freed, and its threads joined, right here
        dist.destroy_process_group()


def leader_first(group: Group | None, make: Callable[[], T]) -> T:
    """Rank 0 runs `make` and every rank gets its result; when it raises, every other rank
    raises PeerStopped with its message, so no rank waits for a run that never starts."""
    if group is None:
        return make()
    if group.leader:
        try:
            value = make()
        except BaseException as error:
            group.broadcast(("error", f"rank 0 stopped: {_one_line(error)}"))
            raise
        group.broadcast(("ok", value))
        return value
    kind, value = group.broadcast(None)
    if kind == "error":
        raise PeerStopped(value)
    return value


def agreed(group: Group | None, work: Callable[..., None]) -> Callable[..., None]:
    """`work` (writing a row or a checkpoint) run on rank 0 alone; then every rank learns
    whether it failed, and the others stop with it, saying rank 0's error, rather than wait in
    the next collective."""
    if group is None:
        return work

    def run(*args: Any) -> None:
        failure: BaseException | None = None
        if group.leader:
            try:
                work(*args)
            except BaseException as error:
                failure = error
        if group.any(failure is not None):
            said = group.broadcast(None if failure is None else _one_line(failure))
            if failure is not None:
                raise failure
            raise PeerStopped(f"rank 0 stopped: {said}")

    return run


def _one_line(error: BaseException) -> str:
    """What rank 0's error says, in one line: its text's first line (biobench's errors are
    meant for the user as they are), with the exception's type for any other error."""
    text = str(error).strip()
    first = text.splitlines()[0] if text else ""
    if isinstance(error, BiobenchError):
        return first
    return f"{type(error).__name__}: {first}" if first else type(error).__name__


@contextmanager
def no_sigterm() -> Iterator[None]:
    """Let rank 0 record a failed run whole: a launcher stopping the other ranks sends SIGTERM
    to this one too, which would otherwise turn `failed` into `interrupted` halfway."""
    try:
        previous = signal.signal(signal.SIGTERM, signal.SIG_IGN)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _floating_state(value: Any, seen: set[int], out: list[Tensor]) -> None:
    if isinstance(value, Tensor):
        if value.is_floating_point() and id(value) not in seen:
            seen.add(id(value))
            out.append(value)
    elif isinstance(value, torch.nn.Module):
        for tensor in (*value.parameters(), *value.buffers()):
            _floating_state(tensor, seen, out)
    elif isinstance(value, list | tuple):
        for item in value:
            _floating_state(item, seen, out)
    elif isinstance(value, dict):
        for item in value.values():
            _floating_state(item, seen, out)


class Parallel:
    """Makes a learner's steps data parallel over `group` (see the module docstring)."""

    def __init__(self, learner: Learner, group: Group) -> None:
        self.learner, self.group, self.shard = learner, group, group.shard
        self.weight = 1.0
        # Grads already averaged in this step (KP's B shares W's), by id, with a weak reference
        # that tells a grad still alive from a newer one that took a dead one's id: a rule
        # that steps its optimiser several times a step (iPC) makes new grads each time.
        self._reduced: dict[int, weakref.ref] = {}
        self._attach()
        optimized = {
            id(p)
            for optimizer in learner.optimizers().values()
            for group in optimizer.param_groups
            for p in group["params"]
        }
        state: list[Tensor] = []
        _floating_state(vars(learner), set(optimized), state)
        self._state = state  # tensors no optimiser steps: fixed ones, and WM's learned B

    def _attach(self) -> None:
        self._handles = [
            optimizer.register_step_pre_hook(self._average_grads)
            for optimizer in self.learner.optimizers().values()
        ]

    def close(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    @contextmanager
    def detached(self) -> Iterator[None]:
        """The learner's optimisers without the gradient averaging, for the block (a copy of
        the learner made then steps alone: alignment's probe)."""
        self.close()
        try:
            yield
        finally:
            self._attach()

    @contextmanager
    def step(self, size: int, count: int) -> Iterator[None]:
        """One training step of this rank's `size` of a global batch of `count` samples."""
        self.weight = size / count
        self._reduced.clear()
        versions = [t._version for t in self._state]
        yield
        changed = [t for t, v in zip(self._state, versions, strict=True) if t._version != v]
        if changed:  # the same on every rank: every rank ran the same code
            with torch.no_grad():
                self._weighted_sum(changed)

    def _average_grads(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        grads = []
        for group in optimizer.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                seen = self._reduced.get(id(p.grad))
                if seen is None or seen() is not p.grad:
                    self._reduced[id(p.grad)] = weakref.ref(p.grad)
                    grads.append(p.grad)
        if grads:
            with torch.no_grad():
                self._weighted_sum(grads)

    def _weighted_sum(self, tensors: list[Tensor]) -> None:
        """Each tensor becomes sum_r w_r tensor_r, in one collective per dtype and device."""
        by_kind: dict[tuple[torch.dtype, torch.device], list[Tensor]] = {}
        for tensor in tensors:
            by_kind.setdefault((tensor.dtype, tensor.device), []).append(tensor)
        for group in by_kind.values():
            flat = torch.cat([t.reshape(-1) for t in group])
            if self.weight == 0:  # a stand-in sample: no weight, not even a NaN's
                flat.zero_()
            elif self.weight != 1:
                flat.mul_(self.weight)
            self.group.all_sum(flat)
            offset = 0
            for t in group:
                t.copy_(flat[offset : offset + t.numel()].view_as(t))
                offset += t.numel()

    def diverge_rng(self) -> None:
        """Give each rank its own torch random stream, drawn from the common one."""
        base = int(torch.randint(0, 2**62, (1,)).item())
        torch.manual_seed(base + self.group.rank)


def batches(
    split: Split, batch_size: int, generator: torch.Generator | None, shard: Shard | None
) -> Iterator[tuple[Tensor, Tensor, int, int]]:
    """(x, y, own, count): this rank's part of each batch, how many of its samples are its own
    (0 for a stand-in) and the global batch's size. Splits that cannot shard are cut here."""
    if shard is None:
        for x, y in split.batches(batch_size, generator):
            yield x, y, len(y), len(y)
        return
    n = len(split)
    sizes = (min(batch_size, n - start) for start in range(0, n, batch_size))
    try:
        source = split.batches(batch_size, generator, shard=shard)  # type: ignore[call-arg]
        cut = False
    except TypeError:  # a plugin's split without `shard`: every rank loads whole batches
        source, cut = split.batches(batch_size, generator), True
    for (x, y), count in zip(source, sizes, strict=True):
        if cut:
            lo, hi = shard.bounds(count)
            x, y = x[lo:hi], y[lo:hi]
        yield x, y, shard.size(count), count


def launch(nproc: int, argv: list[str]) -> int:
    """Run `biobench ARGV` (the installed package: `biobench_command`) as `nproc` processes of
    one data-parallel run, through torch.distributed's elastic launcher (what torchrun does);
    returns the exit status."""
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    from biobench.launch import biobench_command

    config = LaunchConfig(
        min_nodes=1,
        max_nodes=1,
        nproc_per_node=nproc,
        run_id=f"biobench-{uuid.uuid4().hex[:12]}",
        rdzv_backend="c10d",
        rdzv_endpoint="localhost:0",
        rdzv_configs={"timeout": 120},
        max_restarts=0,
        # The ranks see a dead peer at once; a slow monitor lets rank 0 record the run as
        # failed before the launcher stops it.
        monitor_interval=2.0,
    )
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
    executable, *args = biobench_command(argv)
    try:
        elastic_launch(config, executable)(*args)
    except ChildFailedError:
        return 1
    return 0

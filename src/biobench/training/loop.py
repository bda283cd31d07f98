"""fit(): the training loop every learning rule shares.

Per epoch: one pass over the shuffled training set calling `learner.train_step` (or the passes
the learner asks for: alternating target propagation makes an inverse and a forward pass), then
a full evaluation of the train and test sets (top-1/top-5 error in percent, mean cross-entropy).
The row also says what the epoch cost (time per step, by phase of the rule's step, evaluation
time, peak memory: training/cost.py) and, given a probe batch, how close each layer's update
and learning signal came to backprop's (training/alignment.py).
Each epoch's row goes to `on_epoch` as soon as it exists, which commits it to the results
database, so a crash loses at most the epoch in progress; then `on_checkpoint` saves the state
to resume from. An epoch whose loss or weights are no longer finite (DTP and DFA can blow up)
is recorded, then ends training with `Diverged`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from biobench.data.base import Dataset, Split
from biobench.learners.base import Learner
from biobench.training import alignment, cost, distributed, execution
from biobench.training.alignment import Probe
from biobench.training.cost import Clock
from biobench.training.distributed import Parallel
from biobench.training.metrics import topk_correct

EVAL_BATCH = 1024


class Reporter:
    """Progress display hooks; this base class shows nothing (tests, library use).

    The loop calls `epoch` and `epoch_done`; the runner calls the others.
    """

    def spec_started(self, index: int, total: int, spec: Any) -> None:
        """Spec `index` of `total` (a suite, or several seeds) is about to start."""

    def run_started(
        self, run_id: int, spec: Any, parameters: int, first_epoch: int, device: Any
    ) -> None:
        """Run `run_id` exists and trains on `device` from `first_epoch` (> 1: resumed)."""

    def run_ended(self, run: Any) -> None:
        """The run's record, as stored once it ended."""

    def spec_failed(self, name: str, error: BaseException) -> None:
        """A spec of a suite failed; the suite goes on."""

    @contextmanager
    def epoch(self, epoch: int, epochs: int, batches: int) -> Iterator[Callable[[int], None]]:
        yield lambda images: None

    def epoch_done(self, epoch: int, epochs: int, row: dict[str, float]) -> None:
        pass


class Diverged(Exception):
    """Training produced NaN or inf; the epoch that did is recorded, nothing after it."""

    def __init__(self, epoch: int, reason: str) -> None:
        super().__init__(f"diverged at epoch {epoch}: {reason}")
        self.epoch = epoch


def divergence(learner: Learner, row: dict[str, float]) -> str | None:
    """Why this epoch counts as diverged, or None."""
    for key in ("train_loss", "test_loss"):
        if not math.isfinite(row[key]):
            return f"{key.replace('_', ' ')} is {row[key]}"
    for name, parameter in learner.net.named_parameters():
        if not torch.isfinite(parameter).all():
            return f"weights {name} are not finite"
    return None


@dataclass(frozen=True)
class Evaluation:
    top1: float  # error, %
    top5: float  # error, %
    loss: float  # mean cross-entropy, nats


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.no_grad()
def evaluate(
    learner: Learner,
    split: Split,
    batch_size: int = EVAL_BATCH,
    parallel: Parallel | None = None,
    logits: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> Evaluation:
    """Top-1/top-5 error and mean loss of the learner's network over a whole split (with
    `parallel`, each rank evaluates its part of every batch and the sums are added up)."""
    was_training = learner.net.training
    learner.net.eval()
    correct1 = correct5 = loss_sum = None
    shard = parallel.shard if parallel else None
    for x, y, own, _ in distributed.batches(split, batch_size, None, shard):
        if not own:  # a stand-in sample, counted by no rank
            continue
        out = (logits or learner.logits)(x)
        c1, c5 = topk_correct(out, y, (1, 5))
        loss = F.cross_entropy(out.float(), y, reduction="sum")
        # Summed on the device; one host sync per split, not per batch.
        correct1 = c1 if correct1 is None else correct1 + c1
        correct5 = c5 if correct5 is None else correct5 + c5
        loss_sum = loss if loss_sum is None else loss_sum + loss
    learner.net.train(was_training)
    n = len(split)
    if n == 0:
        raise ValueError("cannot evaluate an empty split")
    if parallel is not None:  # counts are exact in float64; the loss adds in rank order
        sums = [0.0 if s is None else s for s in (correct1, correct5, loss_sum)]
        total = torch.tensor([float(s) for s in sums], dtype=torch.float64)
        correct1, correct5, loss_sum = parallel.group.all_sum(total.to(parallel.group.device))
    return Evaluation(
        top1=100.0 * (1 - float(correct1) / n),
        top5=100.0 * (1 - float(correct5) / n),
        loss=float(loss_sum) / n,
    )


def fit(
    learner: Learner,
    data: Dataset,
    *,
    epochs: int,
    batch_size: int,
    generator: torch.Generator,
    on_epoch: Callable[[int, dict[str, Any]], None],
    on_checkpoint: Callable[[int], None] | None = None,
    reporter: Reporter | None = None,
    start_epoch: int = 1,
    parallel: Parallel | None = None,
    probe: Probe | None = None,
    precision: str = "fp32",
    compile: bool = False,
) -> None:
    """Train for epochs start_epoch..epochs, handing each epoch's metrics row to `on_epoch`.

    `generator` alone decides the data order, so a fixed seed gives a fixed run on the CPU.
    With `parallel` (distributed.py), this process trains on its part of every batch. With
    `probe`, the row carries per-layer alignment ("layers", training/alignment.py), measured
    by the process that writes the run. `precision` and `compile`: training/execution.py.
    """
    reporter = reporter or Reporter()
    device = data.train.device
    batches = data.train.num_batches(batch_size)
    leader = parallel is None or parallel.group.leader
    clock = Clock(device)
    learner.net.train()
    learner.clock = clock  # the step's phases are timed while this loop trains
    run = _Execution(learner, device, precision, compile)
    try:
        for epoch in range(start_epoch, epochs + 1):
            with execution.matmul_precision(precision):
                row = _epoch(run, data, epoch, epochs, batch_size, generator, reporter, parallel)
            row.update({f"step_ms_{p}": ms for p, ms in clock.phase_ms(batches).items()})
            if probe is not None and leader:
                row["layers"] = alignment.measure(learner, probe, epoch, parallel)
            reason = divergence(learner, row)
            on_epoch(epoch, row)
            reporter.epoch_done(epoch, epochs, row)
            if reason is not None:
                raise Diverged(epoch, reason)
            if on_checkpoint is not None:
                on_checkpoint(epoch)
    finally:
        del learner.clock  # back to the class's clock, which times nothing


class _Execution:
    """The learner's step and evaluation forward as this run executes them."""

    def __init__(self, learner: Learner, device: torch.device, precision: str, compile: bool):
        self.learner = learner
        self.autocast = lambda: execution.autocast(precision, device)
        self.mixed = precision == "bf16"  # fp32/tf32 steps need no autocast region
        self.step = learner.train_step
        self.logits = learner.logits
        if compile:
            self.step = execution.compiled_step(learner)
            self.logits = execution.compiled(learner.logits, "evaluation")

    def train_step(self, x: torch.Tensor, y: torch.Tensor) -> None:
        if not self.mixed:
            self.step(x, y)
            return
        with self.autocast():
            self.step(x, y)

    def evaluate(self, split: Split, parallel: Parallel | None) -> Evaluation:
        with self.autocast():
            return evaluate(self.learner, split, parallel=parallel, logits=self.logits)


def _epoch(
    run: _Execution,
    data: Dataset,
    epoch: int,
    epochs: int,
    batch_size: int,
    generator: torch.Generator,
    reporter: Reporter,
    parallel: Parallel | None,
) -> dict[str, Any]:
    """One epoch's training passes and evaluation: its row of metrics (models.METRIC_COLUMNS)."""
    learner = run.learner
    device = data.train.device
    clock = learner.clock
    batches = data.train.num_batches(batch_size)
    cost.reset_peak_memory(device)
    started = time.perf_counter()
    phases = learner.epoch_phases(epoch)
    with reporter.epoch(epoch, epochs, batches * len(phases)) as advance:
        for phase in phases:  # one pass, or alternating TP's inverse then forward pass
            learner.start_phase(phase)
            for x, y, own, count in distributed.batches(
                data.train, batch_size, generator, parallel.shard if parallel else None
            ):
                clock.begin_step()
                with parallel.step(own, count) if parallel else nullcontext():
                    run.train_step(x, y)
                clock.end_step()
                advance(count)
        _sync(device)
    trained = time.perf_counter()
    train = run.evaluate(data.train_eval_split, parallel)
    test = run.evaluate(data.test, parallel)
    val = run.evaluate(data.val, parallel) if data.val is not None else None
    _sync(device)
    ended = time.perf_counter()
    held_out = {}
    if val is not None:
        held_out = {"val_top1": val.top1, "val_top5": val.top5, "val_loss": val.loss}
    return {
        **held_out,
        "train_top1": train.top1,
        "train_top5": train.top5,
        "train_loss": train.loss,
        "test_top1": test.top1,
        "test_top5": test.top5,
        "test_loss": test.loss,
        "wall_time": ended - started,
        "images_per_s": len(phases) * len(data.train) / (trained - started),
        "step_ms": (trained - started) * 1e3 / batches,
        "eval_ms": (ended - trained) * 1e3,
        "peak_memory_mb": cost.peak_memory_mb(device),
    }

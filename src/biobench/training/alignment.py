"""How close a learning rule comes to backprop: per-layer alignment on a fixed probe batch.

After every epoch, on a probe batch drawn once per run from the training set (seeded by the
run's seed, `alignment_batch` samples), for each weighted layer l of the network (input to
output, biobench's `weighted_ops`):

    update_angle_l   the angle, in degrees, between the update the rule hands the optimiser
                     for W_l (W_l's .grad when its optimiser steps) and the exact backprop
                     gradient dL/dW_l of the batch-mean cross-entropy on the same batch and
                     weights. BP's own is 0 (up to rounding); a rule that pushes W_l the
                     opposite way scores 180.
    signal_cosine_l  the mean over the probe's samples of cos(s_n, delta_n), s_n the rule's
                     learning signal at layer l's output (the gradient its step sends into
                     a_l = op_l(h_{l-1}): FA's and DFA's delta_l, the gradient of a TP layer's
                     local loss) and delta_n backprop's dL_n/da_l. Hidden layers only.
    weight_angle_l   for rules with feedback weights of W_l's shape (FA, the sign-concordant
                     rules, KP, WM): the angle between B_l and W_l, i.e. between the matrix
                     that replaces W_l^T and W_l^T.

Measuring changes nothing of the run: the rule's step is taken on a deep copy of the learner
(its network, optimisers and feedback weights), backprop's gradient on a copy of the network,
both inside `torch.random.fork_rng`, so no optimiser state is touched and no random stream is
consumed (a run with and without alignment trains identically: tests/training/test_alignment.py).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from biobench.data.base import Split
from biobench.learners.base import Learner, autograd_everywhere, weighted_ops

PROBE_SALT = 0x5EED  # the probe's generator is seeded with seed + this: not the data order's


@dataclass(frozen=True)
class Probe:
    """The fixed batch alignment is measured on."""

    x: Tensor
    y: Tensor

    @classmethod
    def draw(cls, split: Split, size: int, seed: int) -> Probe:
        """`size` training samples (all of them if fewer), the same for every epoch and on a
        resume: the first shuffled batch of a generator of its own."""
        generator = torch.Generator().manual_seed(seed + PROBE_SALT)
        x, y = next(iter(split.batches(min(size, len(split)), generator)))
        return cls(x, y)


def angle(a: Tensor, b: Tensor) -> float | None:
    """Degrees between two tensors taken as vectors (float64); None if either is zero."""
    a, b = a.detach().double().flatten(), b.detach().double().flatten()
    norm_a, norm_b = float(a.norm()), float(b.norm())
    if norm_a * norm_b == 0 or not math.isfinite(norm_a * norm_b):
        return None
    # 2 atan2(|u - v|, |u + v|) for the unit vectors: acos of the cosine loses half the digits
    # near 0 and 180 degrees (a 1e-14 rounding of the cosine reads as 1e-5 degrees).
    u, v = a / norm_a, b / norm_b
    return math.degrees(2 * math.atan2(float((u - v).norm()), float((u + v).norm())))


def mean_cosine(a: Tensor, b: Tensor) -> float | None:
    """Mean over samples (dim 0) of the cosine between a_n and b_n (float64), counting only
    samples where both are nonzero; None if there is none."""
    a, b = a.detach().double().flatten(1), b.detach().double().flatten(1)
    norms = a.norm(dim=1) * b.norm(dim=1)
    keep = norms > 0
    if not bool(keep.any()):
        return None
    value = float(((a * b).sum(1)[keep] / norms[keep]).mean())
    return value if math.isfinite(value) else None


@contextmanager
def _output_grads(ops: list[nn.Module]) -> Iterator[dict[int, Tensor]]:
    """{l: the first gradient to arrive at op l's output} while the block runs: the step's
    learning signal (WM's mirror mode, which comes after, sends noise through the same ops)."""
    grads: dict[int, Tensor] = {}

    def watch(l: int) -> Any:
        def keep(g: Tensor) -> None:
            # Returns None: a tensor hook that returns a tensor replaces the gradient, and a
            # rule that sends op l several gradients in one step (iPC) would get the first.
            grads.setdefault(l, g.detach().clone())

        def hook(module: nn.Module, inputs: Any, output: Any) -> None:
            if isinstance(output, Tensor) and output.requires_grad:
                output.register_hook(keep)

        return hook

    handles = [op.register_forward_hook(watch(l)) for l, op in enumerate(ops)]
    try:
        yield grads
    finally:
        for handle in handles:
            handle.remove()


def _backprop(net: nn.Module, x: Tensor, y: Tensor) -> tuple[list[Tensor], dict[int, Tensor]]:
    """Backprop's dL/dW_l and dL/da_l on a copy of `net` (whose batch-norm statistics may move)."""
    net = copy.deepcopy(net)
    ops = weighted_ops(net)
    for op in ops:
        if getattr(op, "port", None) is not None:
            op.port = None  # exact backward
    with _output_grads(ops) as signals:
        loss = F.cross_entropy(net(x), y)
        grads = torch.autograd.grad(loss, [op.weight for op in ops])
    return list(grads), signals


def _rule_step(
    learner: Learner, x: Tensor, y: Tensor, epoch: int
) -> tuple[dict[int, Tensor], dict[int, Tensor], dict[int, Tensor]]:
    """One step of the rule on a copy of `learner`: (updates, signals, feedback weights)."""
    rule = copy.deepcopy(learner)
    ops = weighted_ops(rule.net)
    weights = {id(op.weight): l for l, op in enumerate(ops)}
    feedback = {
        l: b.detach().clone()
        for l, b in rule.feedback_weights().items()
        if b.shape == ops[l].weight.shape
    }
    for parameter in rule.net.parameters():
        parameter.grad = None  # the copy holds the last step's gradients
    updates: dict[int, Tensor] = {}

    def record(optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        for group in optimizer.param_groups:
            for p in group["params"]:
                if id(p) in weights and p.grad is not None:
                    updates[weights[id(p)]] = p.grad.detach().clone()

    for optimizer in rule.optimizers().values():
        optimizer.register_step_pre_hook(record)
    phases = rule.epoch_phases(epoch)
    rule.start_phase(phases[-1])  # alternating TP: the pass that trains the forward weights
    with _output_grads(ops) as signals, autograd_everywhere():  # the hooks see every signal
        rule.train_step(x, y)
    return updates, dict(signals), feedback


def measure(
    learner: Learner, probe: Probe, epoch: int, parallel: Any = None
) -> list[dict[str, Any]]:
    """The layer rows of `epoch` (models.LayerMetric's columns) for the learner as it is now.

    With `parallel` (a data-parallel run), its gradient averaging is detached from the
    learner's optimisers while the copy is made, so the copy's step is this process's alone.
    """
    devices = [probe.x.device] if probe.x.device.type == "cuda" else []
    detached = parallel.detached() if parallel is not None else nullcontext()
    with torch.random.fork_rng(devices=devices), detached:
        updates, signals, feedback = _rule_step(learner, probe.x, probe.y, epoch)
        exact, deltas = _backprop(learner.net, probe.x, probe.y)
    names = {id(p): name for name, p in learner.net.named_parameters()}
    ops = weighted_ops(learner.net)
    rows = []
    for l, op in enumerate(ops):
        hidden = l < len(ops) - 1
        rule_signal, delta = signals.get(l), deltas.get(l)
        rows.append(
            {
                "layer": l + 1,
                "name": names.get(id(op.weight), f"op{l + 1}.weight"),
                "update_angle": angle(updates[l], exact[l]) if l in updates else None,
                "signal_cosine": (
                    mean_cosine(rule_signal, delta)
                    if hidden
                    and rule_signal is not None
                    and delta is not None
                    and rule_signal.shape == delta.shape
                    else None
                ),
                "weight_angle": angle(feedback[l], op.weight) if l in feedback else None,
            }
        )
    return rows

"""How a run's arithmetic executes: its precision (a setting of the experiment) and whether its
step is compiled (an option: the same experiment, faster where torch.compile can).

Precision (`--precision`, or `--set precision=...`):
    fp32  IEEE single precision throughout (the paper's, and the default);
    tf32  matrix products and convolutions in TensorFloat-32 on GPUs that have it (Ampere on;
          no effect on the CPU), everything else fp32;
    bf16  the step and evaluation under `torch.autocast(dtype=bfloat16)`: products in bf16, the
          weights, optimiser state and every update kept in fp32 (the master copy), losses
          and softmax in fp32 (autocast's own policy).
Alignment is measured in fp32 whatever the precision (it measures the rule's direction, not
the arithmetic's noise).

Compile (`--compile`, or `--set compile=true`): the network's evaluation forward goes through
`torch.compile`, and so does the training step of backprop-family rules (a layer-local rule's
step stays eager: `compiled_step`). The learner object itself is left as it is
(copies of it, for alignment and FLOPs, stay eager and independent). A step that cannot be
compiled runs eagerly from its first call on, said in one line.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

import torch

from biobench.registry import ALGORITHMS

PRECISIONS = ("fp32", "tf32", "bf16")


@contextmanager
def matmul_precision(precision: str) -> Iterator[None]:
    """TF32 matrix products for the block with `tf32` (restored after); fp32 otherwise."""
    if precision != "tf32":
        yield
        return
    before = (
        torch.backends.cuda.matmul.allow_tf32,
        torch.backends.cudnn.allow_tf32,
        torch.get_float32_matmul_precision(),
    )
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    torch.set_float32_matmul_precision("high")
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before[:2]
        torch.set_float32_matmul_precision(before[2])


def autocast(precision: str, device: torch.device) -> AbstractContextManager[Any]:
    """The autocast region a step or an evaluation runs in."""
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return nullcontext()


def say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def compiled(fn: Callable[..., Any], what: str) -> Callable[..., Any]:
    """`fn` through torch.compile, or `fn` itself from the first call that fails to compile
    (with one line saying so)."""
    try:
        fast = torch.compile(fn)
    except Exception as error:  # noqa: BLE001 - no compiler here: eager, said once
        say(f"--compile: {what} runs eagerly ({_first_line(error)})")
        return fn
    state: dict[str, Any] = {"call": None}

    def call(*args: Any) -> Any:
        if state["call"] is not None:
            return state["call"](*args)
        try:
            out = fast(*args)
        except Exception as error:  # noqa: BLE001 - dynamo/inductor failures vary by version
            say(f"--compile: {what} runs eagerly ({_first_line(error)})")
            state["call"] = fn
            return fn(*args)
        state["call"] = fast
        return out

    return call


def compiled_step(learner: Any) -> Callable[..., Any]:
    """The learner's step, compiled where that keeps the rule checkable: a backprop step is
    one autograd graph; a layer-local rule's graphs are each checked for weight transport, and
    a compiled region would merge them into one that reaches every layer (the check would
    refuse it, rightly), so those steps stay eager, said in one line."""
    family = next(
        (e.family for e in ALGORITHMS.entries() if e.target is type(learner)), learner.family
    )
    if family == "backprop":
        return compiled(learner.train_step, "the training step")
    say(
        f"--compile: the training step of {type(learner).__name__} runs eagerly (its layer-local "
        "graphs are checked for weight transport, and compiling would merge them); the "
        "evaluation forward is compiled"
    )
    return learner.train_step


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}"[:200]

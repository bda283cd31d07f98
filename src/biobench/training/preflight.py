"""preflight: does a preset's own configuration learn, at its real input shape, before a
GPU-week is spent on it?

For each preset: its network is built at the dataset's real input shape and class count, its
learning rule with the preset's exact hyperparameters (optimiser, rate, schedule, decays, mode),
and it trains up to `steps` minibatches of the preset's batch size (stopping as soon as it has
learned: the proxy batch is evaluated every CHUNK steps) on a *learnable proxy* of that
shape: the dataset's own files when they are there, else scikit-learn's offline handwritten
digits resized to the shape (channels repeated), never noise. The network is evaluated on a
fixed held-out proxy batch before and as it trains; the verdict:

    learns          the proxy error fell LEARN_MARGIN points below chance;
    diverges        the loss or the weights stopped being finite, or the error did not fall
                    and the loss rose by more than DIVERGE_RISE nats;
    does not learn  otherwise.

A preset that fails is tried again with one setting changed at a time (each decay set to 0,
the learning rate divided by 10 and 100, then multiplied by 10): the first change that makes it
learn is named as the setting most likely at fault, a measurement rather than a guess. The
report also gives ms per step and peak memory measured here, the parameter count, and the
projected cost of the preset's whole protocol on this device (epochs x steps per epoch x passes
x ms/step: training steps only, evaluation and alignment probes not included).

The steps are the rule's own `train_step` with the loop's epoch and phase hooks
(`epoch_phases`, `start_phase`): alternating target propagation trains its inverse and forward
passes in turn, a learning-rate schedule is at its first epochs' values.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from biobench.archs import DataInfo, build_network
from biobench.data import DataOptions, Dataset, TensorSplit, load_dataset
from biobench.data.base import DataError
from biobench.learners.base import weighted_ops
from biobench.registry import ALGORITHMS, DATASETS
from biobench.spec import RunSpec
from biobench.training import cost, distributed
from biobench.training.loop import evaluate

DEFAULT_STEPS = 200  # at most, per preset (and per retry); a preset stops once it learns
CHUNK = 10  # steps between evaluations of the proxy batch
EVAL_SAMPLES = 512  # the fixed held-out proxy batch the verdict is measured on
LEARN_MARGIN = 10.0  # points below chance the proxy error must reach
DIVERGE_RISE = 1.0  # nats the proxy loss may rise before the run counts as diverging
VERDICTS = ("learns", "does not learn", "diverges")


@dataclass(frozen=True)
class Report:
    """One preset's preflight."""

    preset: str
    algorithm: str
    architecture: str
    dataset: str
    input_shape: tuple[int, int, int]
    batch_size: int
    steps: int
    proxy: str  # what it trained on
    verdict: str  # one of VERDICTS
    reason: str  # why, in words (the numbers behind the verdict)
    suspect: str | None  # the setting most likely at fault, as found by a retry; else None
    loss_start: float
    loss_end: float
    error_start: float  # proxy top-1 error, %
    error_end: float
    chance: float  # proxy top-1 error of a guess, %
    weight_norm_ratio: float  # norm of the weighted ops' weights, end over start
    ms_per_step: float  # median over the steps after the first
    peak_memory_mb: float | None  # the CUDA allocator's peak, or the process's peak RSS
    parameters: int
    epochs: int  # the preset's protocol
    steps_per_epoch: int | None  # None: the dataset's size is not known before loading
    projected_s: float | None  # the protocol's training steps on this device

    @property
    def learns(self) -> bool:
        return self.verdict == "learns"

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["input_shape"] = list(self.input_shape)
        return out


# -- the proxy data ---------------------------------------------------------------------------


def _subset(split: Any, n: int) -> TensorSplit:
    """The first `n` samples of a split, in its order, as they come out of its batches."""
    xs, ys, have = [], [], 0
    for x, y in split.batches(min(n, 256), None):
        xs.append(x)
        ys.append(y)
        have += len(y)
        if have >= n:
            break
    return TensorSplit(torch.cat(xs)[:n], torch.cat(ys)[:n])


def _resized_digits(shape: tuple[int, int, int]) -> Dataset:
    """The offline digits at (C, H, W): bilinear resize, channels repeated, stored as uint8."""
    digits = load_dataset("digits", DataOptions(root=Path(".")))
    channels, height, width = shape

    def resize(split: TensorSplit) -> TensorSplit:
        x = split.x.float() * split.scale  # 0..1
        x = F.interpolate(x, size=(height, width), mode="bilinear", align_corners=False)
        x = (x.clamp(0, 1) * 255).round().to(torch.uint8).expand(-1, channels, -1, -1)
        return TensorSplit(x.contiguous(), split.y, scale=1 / 255)

    return replace(
        digits,
        name=f"digits at {channels}x{height}x{width}",
        train=resize(digits.train),  # type: ignore[arg-type]
        test=resize(digits.test),  # type: ignore[arg-type]
        source="sklearn.datasets.load_digits, resized",
    )


def proxy_data(spec: RunSpec, data_dir: Path) -> tuple[Dataset, str]:
    """The data a preflight of `spec` trains on, and what to call it: the dataset's own files
    when they load from `data_dir` (never downloaded), else the digits at its input shape."""
    try:
        data = load_dataset(spec.dataset, DataOptions(root=data_dir, settings=spec.data_settings))
        return data, f"{spec.dataset} files"
    except DataError:
        pass
    entry = DATASETS.entry(spec.dataset)
    if entry.input_shape is None:
        raise DataError(
            f"dataset {spec.dataset} is not in {data_dir} and declares no input shape, so no "
            "proxy can stand in for it; pass --data-dir with its files"
        )
    shape = tuple(entry.input_shape)
    data = _resized_digits(shape)  # type: ignore[arg-type]
    return data, f"digits resized to {'x'.join(map(str, shape))}"


def _stream(split: Any, batch_size: int, generator: torch.Generator) -> Iterator[Any]:
    """Shuffled minibatches of `split`, pass after pass."""
    while True:
        yielded = False
        for x, y, _, _ in distributed.batches(split, batch_size, generator, None):
            yielded = True
            yield x, y
        if not yielded:
            raise DataError("the proxy training set is empty")


# -- one preflight ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Trial:
    loss_start: float
    loss_end: float
    error_start: float
    error_end: float
    chance: float
    norm_ratio: float
    step_ms: list[float]
    phases: int
    parameters: int
    peak_memory_mb: float | None
    failure: str | None  # a non-finite loss or weights, said in words


def _weight_norm(net: torch.nn.Module) -> float:
    return math.sqrt(
        sum(float(op.weight.detach().double().pow(2).sum()) for op in weighted_ops(net))
    )


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _trial(
    spec: RunSpec, data: Dataset, eval_split: TensorSplit, steps: int, device: torch.device
) -> _Trial:
    torch.manual_seed(spec.seed)
    info = DataInfo(
        spec.dataset,
        data.input_shape,
        DATASETS.entry(spec.dataset).num_classes or data.num_classes,
    )
    net = build_network(spec.architecture, info).to(device)
    learner = ALGORITHMS.get(spec.algorithm)(net, spec.hparams)
    generator = torch.Generator().manual_seed(spec.seed)
    stream = _stream(data.train, spec.batch_size, generator)
    before = evaluate(learner, eval_split)
    norm_start = _weight_norm(net)
    present = len(torch.unique(eval_split.y))
    chance = 100.0 * (1 - 1 / present)
    cost.reset_peak_memory(device)
    times: list[float] = []
    phases = 1
    failure = None
    after = before
    epoch = 0
    learner.net.train()
    # Proxy "epochs" of CHUNK steps a pass (alternating TP gets both of its passes), each
    # followed by an evaluation: a preset that learns stops as soon as it has shown it.
    while len(times) < steps and failure is None:
        epoch += 1
        passes = learner.epoch_phases(epoch)
        phases = len(passes)
        for phase in passes:
            learner.start_phase(phase)
            for _ in range(min(CHUNK, steps - len(times))):
                x, y = next(stream)
                started = time.perf_counter()
                metrics = learner.train_step(x, y)
                _sync(device)
                times.append((time.perf_counter() - started) * 1e3)
                loss = metrics.get("loss") if isinstance(metrics, dict) else None
                if loss is not None and not math.isfinite(float(loss)):
                    failure = f"the training loss became {float(loss)} at step {len(times)}"
                    break
            if failure or len(times) >= steps:
                break
        after = evaluate(learner, eval_split)
        if after.top1 <= chance - LEARN_MARGIN or not math.isfinite(after.loss):
            break
    peak = cost.peak_memory_mb(device)
    if failure is None:
        bad = [n for n, p in net.named_parameters() if not torch.isfinite(p).all()]
        if bad:
            failure = f"weights {bad[0]} are not finite after {len(times)} steps"
        elif not math.isfinite(after.loss):
            failure = f"the proxy loss is {after.loss} after {len(times)} steps"
    norm_end = _weight_norm(net)
    return _Trial(
        loss_start=before.loss,
        loss_end=after.loss,
        error_start=before.top1,
        error_end=after.top1,
        chance=chance,
        norm_ratio=norm_end / norm_start if norm_start > 0 else math.nan,
        step_ms=times,
        phases=phases,
        parameters=sum(p.numel() for p in net.parameters()),
        peak_memory_mb=peak,
        failure=failure,
    )


def _verdict(trial: _Trial) -> tuple[str, str]:
    numbers = (
        f"proxy error {trial.error_start:.1f}% -> {trial.error_end:.1f}% (chance "
        f"{trial.chance:.0f}%), loss {trial.loss_start:.3f} -> {trial.loss_end:.3f} in "
        f"{len(trial.step_ms)} steps"
    )
    if trial.failure is not None:
        return "diverges", trial.failure
    if trial.error_end <= trial.chance - LEARN_MARGIN:
        return "learns", numbers
    if trial.loss_end > trial.loss_start + DIVERGE_RISE:
        return "diverges", f"the loss rose: {numbers}"
    shrink = ""
    if trial.norm_ratio < 0.5:
        shrink = f"; the weights shrank to {100 * trial.norm_ratio:.0f}% of their norm"
    return "does not learn", numbers + shrink


def _retries(spec: RunSpec) -> list[tuple[str, str, dict[str, Any]]]:
    """One setting changed at a time, in the order tried: each decay to 0, then the rate
    divided by 10 and 100, and multiplied by 10. (setting, what a fix found by it says, the
    change)"""
    hp = spec.hparams
    out: list[tuple[str, str, dict[str, Any]]] = []
    schema = ALGORITHMS.entry(spec.algorithm).hparams
    for name, value in hp.items():
        low = schema[name].low if name in schema else None
        if name.endswith("decay") and isinstance(value, float) and value > 0 and low == 0.0:
            out.append((f"{name}={value:g}", f"{name}={value:g} (learns with 0)", {name: 0.0}))
    lr = hp.get("lr")
    if isinstance(lr, float):
        for other in (lr / 10, lr / 100, lr * 10):
            out.append((f"lr={lr:g}", f"lr={lr:g} (learns with {other:g})", {"lr": other}))
    return out


def preflight(
    spec: RunSpec,
    *,
    steps: int = DEFAULT_STEPS,
    device: torch.device | None = None,
    data_dir: Path,
    on_retry: Callable[[str], None] | None = None,
    retry: bool = True,
    eval_samples: int = EVAL_SAMPLES,
) -> Report:
    """Preflight one spec, a preset's (`resolve(preset=NAME)`) or any other (see the module
    docstring); `on_retry` hears each setting tried again, `retry=False` tries none (the
    verdict alone), `eval_samples` sizes the proxy batch the verdict is measured on."""
    device = device or torch.device("cpu")
    data, proxy = proxy_data(spec, data_dir)
    if spec.setting("val_split") and spec.setting("val_split") < len(data.train):
        data = data.hold_out(spec.setting("val_split"))  # trained on what the run trains on
    data = data.to(device)
    eval_split = _subset(data.test, eval_samples)
    trial = _trial(spec, data, eval_split, steps, device)
    verdict, reason = _verdict(trial)
    suspect = None
    if verdict != "learns" and retry:
        for setting, label, change in _retries(spec):
            if on_retry is not None:
                on_retry(setting)
            retry = _trial(
                replace(spec, hparams={**spec.hparams, **change}), data, eval_split, steps, device
            )
            if _verdict(retry)[0] == "learns":
                suspect = label
                break
    entry = DATASETS.entry(spec.dataset)
    per_epoch = math.ceil(entry.train_size / spec.batch_size) if entry.train_size else None
    median = statistics.median(trial.step_ms[1:] or trial.step_ms)
    projected = (
        spec.epochs * per_epoch * trial.phases * median / 1e3 if per_epoch is not None else None
    )
    return Report(
        preset=spec.preset or f"{spec.algorithm}/{spec.architecture}/{spec.dataset}",
        algorithm=spec.algorithm,
        architecture=spec.architecture,
        dataset=spec.dataset,
        input_shape=data.input_shape,
        batch_size=spec.batch_size,
        steps=len(trial.step_ms),
        proxy=proxy,
        verdict=verdict,
        reason=reason,
        suspect=suspect,
        loss_start=trial.loss_start,
        loss_end=trial.loss_end,
        error_start=trial.error_start,
        error_end=trial.error_end,
        chance=trial.chance,
        weight_norm_ratio=trial.norm_ratio,
        ms_per_step=median,
        peak_memory_mb=trial.peak_memory_mb,
        parameters=trial.parameters,
        epochs=spec.epochs,
        steps_per_epoch=per_epoch,
        projected_s=projected,
    )

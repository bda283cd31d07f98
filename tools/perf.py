"""How fast is the locally-connected op? Per paper layer, and per whole-network training step.

    python tools/perf.py [--device cpu|cuda] [--batch N] [--repeat R] [--min-run-time S]
                         [--layers mnist,cifar10,imagenet] [--no-nets] [--stat min|median]
                         [--warmup W] [--json FILE]

Three implementations of each of the paper's LC layers (Table 3) are timed side by side:
`ours` (biobench.nn.functional.locally_connected2d), `unfold+einsum` (the common recipe:
F.unfold, one einsum with the weight, reshape; autograd through einsum) and `conv2d` (the
shared-weight convolution of the same shape, for scale). Then one training step (forward,
cross-entropy, backward, Adam) of each paper LC network with each of the three ops, the
networks built by `biobench.archs.lc.build_spatial` exactly as training builds them.

Timing is torch.utils.benchmark's: each measurement is `--repeat` rounds of
`Timer.blocked_autorange(min_run_time=--min-run-time)`, which warms up, picks a block size that
makes timer overhead negligible and synchronises the accelerator around every block. The calls
of one layer take turns round by round, so a busy spell on a shared machine hits them alike.
The blocks of all rounds are pooled; tables report their fastest (`--stat min`, the least
disturbed estimate on a shared machine) or their median (`--stat median`). `--json FILE` keeps
every figure, the per-block times included, with the machine, torch version and batch sizes.
"""

from __future__ import annotations

import argparse
import functools
import gc
import json
import math
import os
import platform
import shlex
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils import benchmark

from biobench.archs.lc import build_spatial
from biobench.nn.conv import SameConv2d
from biobench.nn.functional import same_padding
from biobench.nn.init import glorot_uniform_
from biobench.nn.locally_connected import LocallyConnected2d
from biobench.registry import DataInfo

# The paper's LC networks (archs/lc.py holds their layers): input shape and classes.
NETS = {
    "mnist": ((1, 28, 28), 10),
    "cifar10": ((3, 32, 32), 10),
    "imagenet": ((3, 224, 224), 1000),
}
DEFAULT_BATCH = {
    "cpu": {"mnist": 16, "cifar10": 16, "imagenet": 4},
    "cuda": {"mnist": 256, "cifar10": 256, "imagenet": 128},
}
OPS = ("ours", "unfold+einsum", "conv2d")
STATS = ("min", "median")
BASELINE = "unfold+einsum"
LAYER_COLUMNS = (
    "layer",
    "op",
    "fwd ms",
    "fwd+bwd ms",
    "fwd GFLOP/s",
    "f+b GFLOP/s",
    "fwd speedup",
    "f+b speedup",
    "saved MB",
    "peak MB",
)
NET_COLUMNS = (
    "network",
    "op",
    "params",
    "min ms",
    "median ms",
    "samples/s",
    "speedup",
    "saved MB",
    "peak MB",
)


@dataclass(frozen=True)
class LayerSpec:
    in_channels: int
    out_channels: int
    kernel: int
    stride: int
    size: tuple[int, int]

    @property
    def output_size(self) -> tuple[int, int]:
        return tuple(same_padding(n, self.kernel, self.stride)[0] for n in self.size)

    def pads(self) -> tuple[int, int, int, int]:
        """F.pad order: (left, right, top, bottom)."""
        (_, top, bottom), (_, left, right) = (
            same_padding(n, self.kernel, self.stride) for n in self.size
        )
        return left, right, top, bottom

    def multiply_adds(self, batch: int) -> int:
        """N * P * O * C * k * k: one per weight use per sample."""
        positions = math.prod(self.output_size)
        return batch * positions * self.out_channels * self.in_channels * self.kernel**2

    def label(self) -> str:
        h, w = self.size
        return f"{self.in_channels}->{self.out_channels} k{self.kernel} s{self.stride} {h}x{w}"


def data_info(dataset: str) -> DataInfo:
    shape, classes = NETS[dataset]
    return DataInfo(dataset, shape, classes)


@functools.cache
def layers_of(dataset: str) -> tuple[LayerSpec, ...]:
    """The spatial layers of `dataset`'s network, read off build_spatial itself (no copy of its
    recipe here that could drift from what training builds)."""
    layers: list[LayerSpec] = []

    def record(c_in: int, c_out: int, k: int, s: int, size: tuple[int, int]) -> nn.Module:
        layers.append(LayerSpec(c_in, c_out, k, s, tuple(size)))
        # a conv has the LC layer's output_size at a fraction of its weight, so cheap to build
        return SameConv2d(c_in, c_out, k, s, input_size=size)

    build_spatial("conv", data_info(dataset), record)
    return tuple(layers)


class UnfoldEinsumLC(nn.Module):
    """The baseline recipe: im2col with F.unfold, one einsum against per-position filters.

    Its weight is (P, C*k*k, O) in unfold's (C, k_h, k_w) order, the layout in which this
    einsum is a single batched matmul (measured: a position-last (O, C*k*k, P) weight is
    several times slower). The same-padding is applied with F.pad, as it may be asymmetric.
    """

    def __init__(self, layer: LayerSpec) -> None:
        super().__init__()
        self.layer = layer
        p, k = math.prod(layer.output_size), layer.in_channels * layer.kernel**2
        self.output_size = layer.output_size
        self.weight = nn.Parameter(torch.empty(p, k, layer.out_channels))
        self.bias = nn.Parameter(torch.zeros(layer.out_channels, p))
        glorot_uniform_(self.weight, *self.glorot_fans())

    def glorot_fans(self) -> tuple[int, int]:
        area = self.layer.kernel**2
        return self.layer.in_channels * area, self.layer.out_channels * area

    def forward(self, x: Tensor) -> Tensor:
        layer = self.layer
        cols = F.unfold(F.pad(x, layer.pads()), layer.kernel, stride=layer.stride)
        out = torch.einsum("nkp,pko->nop", cols, self.weight) + self.bias
        return out.reshape(x.shape[0], layer.out_channels, *layer.output_size)


def make_op(name: str, layer: LayerSpec) -> nn.Module:
    args = (layer.in_channels, layer.out_channels, layer.kernel, layer.stride)
    if name == "ours":
        return LocallyConnected2d(*args, input_size=layer.size)
    if name == BASELINE:
        return UnfoldEinsumLC(layer)
    return SameConv2d(*args, input_size=layer.size)


def build_net(dataset: str, op: str) -> nn.Module:
    """The paper's network for `dataset` (archs/lc.py) with `op` as its spatial layers."""
    return build_spatial(
        op,
        data_info(dataset),
        lambda c_in, c_out, k, s, size: make_op(op, LayerSpec(c_in, c_out, k, s, tuple(size))),
    )


def ours_as_baseline_weight(weight: Tensor) -> Tensor:
    """(out_h, out_w, k_h, k_w, C, O) -> (P, C*k_h*k_w, O), unfold's patch order."""
    oh, ow, kh, kw, c, o = weight.shape
    return weight.permute(0, 1, 4, 2, 3, 5).reshape(oh * ow, c * kh * kw, o)


# Measurement.


@dataclass
class Timing:
    """One call's measurement: every round's blocks pooled, as seconds per call."""

    merged: benchmark.Measurement  # number_per_run=1: each entry is one block's per-call time
    runs: int  # calls timed in all, over every block of every round

    @classmethod
    def of(cls, rounds: list[benchmark.Measurement]) -> Timing:
        (merged,) = benchmark.Measurement.merge(rounds)
        return cls(merged, sum(m.number_per_run * len(m.raw_times) for m in rounds))

    @property
    def times(self) -> list[float]:
        return self.merged.times

    def stat(self, name: str) -> float:
        """The blocks' fastest per-call time, or Measurement's median (interpolated)."""
        return min(self.times) if name == "min" else self.merged.median

    def as_json(self) -> dict[str, Any]:
        return {
            "min_s": min(self.times),
            "median_s": self.merged.median,
            "mean_s": self.merged.mean,
            "iqr_s": self.merged.iqr,
            "blocks": len(self.times),
            "runs": self.runs,
            "times_s": self.times,
        }


def measure(
    calls: dict[str, Callable[[], object]], label: str, rounds: int, min_run_time: float
) -> dict[str, Timing]:
    """Time each call with blocked_autorange, `rounds` times, the calls taking turns."""
    timers = {
        name: benchmark.Timer(
            "call()",
            globals={"call": call},
            label=label,
            sub_label=name,
            # Timer pins torch to one thread unless told; measure what training would get.
            num_threads=torch.get_num_threads(),
        )
        for name, call in calls.items()
    }
    taken: dict[str, list[benchmark.Measurement]] = {name: [] for name in calls}
    for _ in range(rounds):
        for name, timer in timers.items():
            taken[name].append(timer.blocked_autorange(min_run_time=min_run_time))
    return {name: Timing.of(measurements) for name, measurements in taken.items()}


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@contextmanager
def saved_bytes(exclude: list[Tensor]) -> Iterator[list[int]]:
    """Bytes of the tensors autograd saves for backward, each storage counted once, the
    `exclude`d ones (parameters, which exist anyway) left out; yields a one-element list."""
    skip = {t.untyped_storage().data_ptr() for t in exclude}
    seen: dict[int, int] = {}

    def pack(t: Tensor) -> Tensor:
        storage = t.untyped_storage()
        if storage.data_ptr() not in skip:
            seen[storage.data_ptr()] = storage.nbytes()
        return t

    total = [0]
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        yield total
    total[0] = sum(seen.values())


def peak_bytes(call: Callable[[], object], device: torch.device) -> int | None:
    """CUDA only: peak allocated during `call`, above what was allocated before it."""
    if device.type != "cuda":
        return None
    synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    before = torch.cuda.memory_allocated(device)
    call()
    synchronize(device)
    return torch.cuda.max_memory_allocated(device) - before


@dataclass
class LayerRow:
    dataset: str
    index: int
    layer: LayerSpec
    op: str
    forward: Timing
    train: Timing
    saved: int
    peak: int | None
    batch: int

    def name(self) -> str:
        return f"{self.dataset}.{self.index + 1} {self.layer.label()} N={self.batch}"

    def gflops(self, seconds: float, passes: int) -> float:
        return 2 * passes * self.layer.multiply_adds(self.batch) / seconds / 1e9


def bench_layer(
    dataset: str, index: int, layer: LayerSpec, args: argparse.Namespace, batch: int
) -> list[LayerRow]:
    device = torch.device(args.device)
    gen = torch.Generator(device).manual_seed(index)
    x = torch.randn(batch, layer.in_channels, *layer.size, device=device, generator=gen)
    x.requires_grad_()
    grad = torch.randn(batch, layer.out_channels, *layer.output_size, device=device, generator=gen)
    ops = {name: make_op(name, layer).to(device) for name in OPS}
    with torch.no_grad():  # the two LC implementations must compute the same thing
        ops[BASELINE].weight.copy_(ours_as_baseline_weight(ops["ours"].weight))
        ops[BASELINE].bias.normal_()
        ops["ours"].bias.copy_(ops[BASELINE].bias.view_as(ops["ours"].bias))
        torch.testing.assert_close(ops["ours"](x), ops[BASELINE](x), rtol=1e-4, atol=1e-4)

    def forward(op: nn.Module) -> Callable[[], object]:
        return lambda: op(x)

    def train(op: nn.Module) -> Callable[[], object]:
        inputs = [x, *op.parameters()]
        return lambda: torch.autograd.grad(op(x), inputs, grad)

    calls = {}
    for name, op in ops.items():
        calls[f"{name}/forward"] = forward(op)
        calls[f"{name}/train"] = train(op)
    times = measure(calls, f"{dataset}.{index + 1}", args.repeat, args.min_run_time)
    rows = []
    for name, op in ops.items():
        with saved_bytes(list(op.parameters())) as saved:
            out = op(x)
        del out
        rows.append(
            LayerRow(
                dataset,
                index,
                layer,
                name,
                times[f"{name}/forward"],
                times[f"{name}/train"],
                saved[0],
                peak_bytes(calls[f"{name}/train"], device),
                batch,
            )
        )
    return rows


@dataclass
class NetRow:
    dataset: str
    op: str
    params: int
    step: Timing
    saved: int
    peak: int | None
    batch: int


def bench_net(dataset: str, op: str, args: argparse.Namespace, batch: int) -> NetRow:
    device = torch.device(args.device)
    torch.manual_seed(0)
    shape, classes = NETS[dataset]
    net = build_net(dataset, op).to(device)
    # fused: one kernel per step instead of a dozen passes over every parameter (5x faster on
    # a CPU), so the step measures the network more than the optimiser; the same for all ops.
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-4, fused=True)
    x = torch.randn(batch, *shape, device=device)
    y = torch.randint(classes, (batch,), device=device)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(net(x), y).backward()
        optimizer.step()

    # Adam allocates its state on the first step; blocked_autorange's own warm-up would time
    # that step to size its blocks, so it is taken out of the way first.
    for _ in range(args.warmup):
        step()
    timing = measure({"step": step}, f"{dataset}/{op}", args.repeat, args.min_run_time)["step"]
    with saved_bytes(list(net.parameters())) as saved:
        loss = F.cross_entropy(net(x), y)
    del loss
    params = sum(p.numel() for p in net.parameters())
    return NetRow(dataset, op, params, timing, saved[0], peak_bytes(step, device), batch)


# Report.


def machine(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        with open("/proc/cpuinfo") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
    except OSError:
        names = []
    return f"{names[0] if names else platform.processor() or platform.machine()}"


def table(headers: tuple[str, ...], rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [headers, *rows]) for i in range(len(headers))]
    line = "  ".join("-" * w for w in widths)

    def fmt(row: list[str] | tuple[str, ...]) -> str:
        return "  ".join(
            c.ljust(w) if i < 2 else c.rjust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        )

    return "\n".join([fmt(headers), line, *map(fmt, rows)])


def megabytes(n: int | None) -> str:
    return "-" if n is None else f"{n / 2**20:.2f}"


def layer_figures(rows: list[LayerRow], stat: str) -> list[dict[str, Any]]:
    """Every figure of the per-layer table, one dict per (layer, op); the JSON's `layers`."""
    base = {(r.dataset, r.index): r for r in rows if r.op == BASELINE}
    figures = []
    for r in rows:
        b = base[(r.dataset, r.index)]
        forward_s, train_s = r.forward.stat(stat), r.train.stat(stat)
        figures.append(
            {
                "dataset": r.dataset,
                "index": r.index,
                "layer": r.name(),
                "in_channels": r.layer.in_channels,
                "out_channels": r.layer.out_channels,
                "kernel": r.layer.kernel,
                "stride": r.layer.stride,
                "input_size": list(r.layer.size),
                "output_size": list(r.layer.output_size),
                "batch": r.batch,
                "op": r.op,
                "multiply_adds": r.layer.multiply_adds(r.batch),
                "forward_s": forward_s,
                "train_s": train_s,
                "forward_gflops": r.gflops(forward_s, 1),
                "train_gflops": r.gflops(train_s, 3),
                "forward_speedup": b.forward.stat(stat) / forward_s,
                "train_speedup": b.train.stat(stat) / train_s,
                "saved_bytes": r.saved,
                "peak_bytes": r.peak,
                "forward": r.forward.as_json(),
                "train": r.train.as_json(),
            }
        )
    return figures


def layer_report(figures: list[dict[str, Any]]) -> tuple[str, list[str]]:
    body, slow = [], []
    for f in figures:
        body.append(
            [
                f["layer"] if f["op"] == OPS[0] else "",
                f["op"],
                f"{f['forward_s'] * 1e3:.3f}",
                f"{f['train_s'] * 1e3:.3f}",
                f"{f['forward_gflops']:.1f}",
                f"{f['train_gflops']:.1f}",
                f"{f['forward_speedup']:.2f}x",
                f"{f['train_speedup']:.2f}x",
                megabytes(f["saved_bytes"]),
                megabytes(f["peak_bytes"]),
            ]
        )
        if f["op"] == "ours" and (f["forward_speedup"] <= 1 or f["train_speedup"] <= 1):
            slow.append(f["layer"])
    return table(LAYER_COLUMNS, body), slow


def net_figures(rows: list[NetRow], stat: str) -> list[dict[str, Any]]:
    """Every figure of the training-step table, one dict per (network, op); the JSON's `nets`."""
    base = {r.dataset: r.step.stat(stat) for r in rows if r.op == BASELINE}
    figures = []
    for r in rows:
        step_s = r.step.stat(stat)
        figures.append(
            {
                "dataset": r.dataset,
                "network": f"{r.dataset} N={r.batch}",
                "batch": r.batch,
                "op": r.op,
                "params": r.params,
                "step_s": step_s,
                "min_s": min(r.step.times),
                "median_s": r.step.merged.median,
                "samples_per_s": r.batch / step_s,
                "speedup": base[r.dataset] / step_s if r.dataset in base else None,
                "saved_bytes": r.saved,
                "peak_bytes": r.peak,
                "step": r.step.as_json(),
            }
        )
    return figures


def net_report(figures: list[dict[str, Any]]) -> str:
    body = [
        [
            f["network"] if f["op"] == OPS[0] else "",
            f["op"],
            f"{f['params']:,}",
            f"{f['min_s'] * 1e3:.1f}",
            f"{f['median_s'] * 1e3:.1f}",
            f"{f['samples_per_s']:.1f}",
            "-" if f["speedup"] is None else f"{f['speedup']:.2f}x",
            megabytes(f["saved_bytes"]),
            megabytes(f["peak_bytes"]),
        ]
        for f in figures
    ]
    return table(NET_COLUMNS, body)


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python tools/perf.py", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--device", choices=("cpu", "cuda"), default=None, help="default: cuda if available"
    )
    parser.add_argument(
        "--batch",
        type=int,
        default=None,
        help="batch for every layer and net (default: per dataset and device)",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=5,
        help="blocked_autorange rounds per measurement, the calls of a layer taking turns",
    )
    parser.add_argument(
        "--min-run-time",
        type=float,
        default=0.05,
        help="seconds of timed calls per round (blocked_autorange's min_run_time)",
    )
    parser.add_argument(
        "--layers", default="mnist,cifar10,imagenet", help="comma-separated datasets"
    )
    parser.add_argument(
        "--stat", choices=STATS, default="min", help="how the pooled blocks are summarised"
    )
    parser.add_argument("--warmup", type=int, default=1, help="untimed training steps per net")
    parser.add_argument("--no-nets", action="store_true", help="skip the whole-network steps")
    parser.add_argument(
        "--json", type=Path, default=None, metavar="FILE", help="also write every figure here"
    )
    args = parser.parse_args(argv)
    args.device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda, but torch sees no CUDA device")
    if args.repeat < 1 or args.min_run_time <= 0 or args.warmup < 0:
        parser.error("--repeat must be >= 1, --min-run-time > 0 and --warmup >= 0")
    if args.batch is not None and args.batch < 1:
        parser.error("--batch must be >= 1")
    args.datasets = [d.strip() for d in args.layers.split(",") if d.strip()]
    unknown = sorted(set(args.datasets) - set(NETS))
    if unknown:
        parser.error(f"unknown --layers {', '.join(unknown)}; choose from {', '.join(NETS)}")
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark, print its tables; returns the figures `--json` writes."""
    args = parse(argv)
    device = torch.device(args.device)
    words = sys.argv[1:] if argv is None else argv
    command = f"python tools/perf.py {shlex.join(words)}".rstrip()
    batches = {d: args.batch or DEFAULT_BATCH[args.device][d] for d in args.datasets}
    tf32 = None
    if device.type == "cuda":
        tf32 = {
            "matmul": torch.backends.cuda.matmul.allow_tf32,
            "cudnn": torch.backends.cudnn.allow_tf32,
        }
    report: dict[str, Any] = {
        "command": command,
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "device": {"type": args.device, "name": machine(device)},
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "python": platform.python_version(),
        "cpu_threads": torch.get_num_threads(),
        "tf32": tf32,
        "settings": {
            "datasets": args.datasets,
            "batch": batches,
            "repeat": args.repeat,
            "min_run_time": args.min_run_time,
            "stat": args.stat,
            "warmup": args.warmup,
            "nets": not args.no_nets,
        },
        "load_average": {"start": list(os.getloadavg())},
    }
    print(f"command: {command}")
    print(f"date: {report['date']}")
    print(
        f"machine: {report['device']['name']} ({args.device}); torch {torch.__version__}; "
        f"{report['cpu_threads']} CPU threads; python {report['python']}"
    )
    if tf32 is not None:
        print(f"TF32 allowed: matmul {tf32['matmul']}, cudnn {tf32['cudnn']}")
    print(f"load average at start: {report['load_average']['start'][0]:.2f}")
    print(
        f"times: {args.stat} per call over the blocks of {args.repeat} rounds of"
        f" torch.utils.benchmark blocked_autorange (min_run_time {args.min_run_time:g} s);"
        " fwd is a training forward (autograd recording); fwd+bwd"
        " also computes the input, weight and bias gradients. GFLOP/s counts 2*N*P*O*C*k*k"
        " per pass, 3 passes for fwd+bwd (conv2d does the same arithmetic with shared weights)."
        " speedup = unfold+einsum time / this op's time. saved MB: bytes of tensors autograd"
        " saves for backward (parameters excluded, each storage once); peak MB: CUDA peak"
        " allocated during fwd+bwd above the inputs (CUDA only)."
    )
    rows: list[LayerRow] = []
    for dataset in args.datasets:
        for index, layer in enumerate(layers_of(dataset)):
            rows += bench_layer(dataset, index, layer, args, batches[dataset])
    report["layers"] = layer_figures(rows, args.stat)
    text, slow = layer_report(report["layers"])
    report["ours_slower_than_baseline"] = slow
    print("\nPer layer\n" + text)
    print(
        "ours slower than unfold+einsum (fwd or fwd+bwd) on: "
        + (", ".join(slow) if slow else "none")
    )
    nets: list[NetRow] = []
    if not args.no_nets:
        for dataset in args.datasets:
            for op in OPS:
                nets.append(bench_net(dataset, op, args, batches[dataset]))
                gc.collect()  # one network's parameters and Adam state at a time
                if device.type == "cuda":
                    torch.cuda.empty_cache()
    report["nets"] = net_figures(nets, args.stat)
    if nets:
        print(
            "\nTraining step (forward + cross-entropy + backward + fused torch.optim.Adam), "
            f"{args.warmup} warm-up step(s), then {args.repeat} rounds of blocked_autorange; "
            f"samples/s and speedup from the {args.stat}\n" + net_report(report["nets"])
        )
    report["load_average"]["end"] = list(os.getloadavg())
    print(f"\nload average at end: {report['load_average']['end'][0]:.2f}")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1) + "\n")
        print(f"figures written to {args.json}")
    return report


if __name__ == "__main__":
    main()

"""How fast is the locally-connected op? Per paper layer, and per whole-network training step.

    python tools/perf.py [--device cpu|cuda] [--batch N] [--repeat R]
                            [--layers mnist,cifar10,imagenet] [--no-nets] [--stat min|median]

Three implementations of each of the paper's LC layers (Table 3) are timed side by side:
`ours` (biobench.nn.functional.locally_connected2d), `unfold+einsum` (the common recipe:
F.unfold, one einsum with the weight, reshape; autograd through einsum) and `conv2d` (the
shared-weight convolution of the same shape, for scale). Then one training step (forward,
cross-entropy, backward, Adam) of each paper LC network with each of the three ops.

Timing: warm-up calls, then `--repeat` blocks per measurement, each block long enough to
dwarf timer overhead (`--block`); the fastest block is reported (`--stat min`, the least
disturbed estimate on a shared machine) or the median one (`--stat median`). The three ops of
one layer take turns block by block, so a busy spell hits them alike. CUDA is synchronised
around every block.
"""

from __future__ import annotations

import argparse
import gc
import math
import os
import platform
import shlex
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from biobench.archs.lc import SPECS, build_spatial
from biobench.archs.stack import DataInfo
from biobench.nn.conv import SameConv2d
from biobench.nn.functional import same_padding
from biobench.nn.init import glorot_uniform_
from biobench.nn.locally_connected import LocallyConnected2d

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
STATS: dict[str, Callable[[list[float]], float]] = {"min": min, "median": statistics.median}
BASELINE = "unfold+einsum"


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


def layers_of(dataset: str) -> list[LayerSpec]:
    channels, size = NETS[dataset][0][0], NETS[dataset][0][1:]
    layers = []
    for kernel, out_channels, stride in SPECS[dataset][0]:
        layer = LayerSpec(channels, out_channels, kernel, stride, tuple(size))
        layers.append(layer)
        channels, size = out_channels, layer.output_size
    return layers


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
    shape, classes = NETS[dataset]
    return build_spatial(
        op,
        DataInfo(dataset, shape, classes),
        lambda c_in, c_out, k, s, size: make_op(op, LayerSpec(c_in, c_out, k, s, size)),
    )


def ours_as_baseline_weight(weight: Tensor) -> Tensor:
    """(out_h, out_w, k_h, k_w, C, O) -> (P, C*k_h*k_w, O), unfold's patch order."""
    oh, ow, kh, kw, c, o = weight.shape
    return weight.permute(0, 1, 4, 2, 3, 5).reshape(oh * ow, c * kh * kw, o)


# Measurement.


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_blocks(
    calls: dict[str, Callable[[], object]], device: torch.device, repeat: int, block_s: float
) -> dict[str, list[float]]:
    """Seconds per call, `repeat` blocks each, the calls taking turns block by block."""
    numbers = {}
    for name, call in calls.items():
        call()  # warm-up: allocator, lazy init, caches
        synchronize(device)
        start = time.perf_counter()
        call()
        synchronize(device)
        numbers[name] = max(1, math.ceil(block_s / max(time.perf_counter() - start, 1e-9)))
    times: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(repeat):
        for name, call in calls.items():
            synchronize(device)
            start = time.perf_counter()
            for _ in range(numbers[name]):
                call()
            synchronize(device)
            times[name].append((time.perf_counter() - start) / numbers[name])
    return times


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
    forward_s: float
    train_s: float
    saved: int
    peak: int | None
    batch: int

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
    times = time_blocks(calls, device, args.repeat, args.block)
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
                STATS[args.stat](times[f"{name}/forward"]),
                STATS[args.stat](times[f"{name}/train"]),
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
    step_s: list[float]
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

    for _ in range(args.warmup):
        step()
    times = time_blocks({"step": step}, device, args.repeat, 0.0)["step"]
    with saved_bytes(list(net.parameters())) as saved:
        loss = F.cross_entropy(net(x), y)
    del loss
    params = sum(p.numel() for p in net.parameters())
    return NetRow(dataset, op, params, times, saved[0], peak_bytes(step, device), batch)


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


def table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [headers, *rows]) for i in range(len(headers))]
    line = "  ".join("-" * w for w in widths)

    def fmt(row: list[str]) -> str:
        return "  ".join(
            c.ljust(w) if i < 2 else c.rjust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        )

    return "\n".join([fmt(headers), line, *map(fmt, rows)])


def megabytes(n: int | None) -> str:
    return "-" if n is None else f"{n / 2**20:.2f}"


def layer_report(rows: list[LayerRow]) -> tuple[str, list[str]]:
    base = {(r.dataset, r.index): r for r in rows if r.op == BASELINE}
    body, slow = [], []
    for r in rows:
        b = base[(r.dataset, r.index)]
        name = f"{r.dataset}.{r.index + 1} {r.layer.label()} N={r.batch}"
        body.append(
            [
                name if r.op == OPS[0] else "",
                r.op,
                f"{r.forward_s * 1e3:.3f}",
                f"{r.train_s * 1e3:.3f}",
                f"{r.gflops(r.forward_s, 1):.1f}",
                f"{r.gflops(r.train_s, 3):.1f}",
                f"{b.forward_s / r.forward_s:.2f}x",
                f"{b.train_s / r.train_s:.2f}x",
                megabytes(r.saved),
                megabytes(r.peak),
            ]
        )
        if r.op == "ours" and (r.forward_s >= b.forward_s or r.train_s >= b.train_s):
            slow.append(name)
    headers = [
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
    ]
    return table(headers, body), slow


def net_report(rows: list[NetRow], stat: str) -> str:
    summarize = STATS[stat]
    base = {r.dataset: summarize(r.step_s) for r in rows if r.op == BASELINE}
    body = []
    for r in rows:
        step = summarize(r.step_s)
        body.append(
            [
                f"{r.dataset} N={r.batch}" if r.op == OPS[0] else "",
                r.op,
                f"{r.params:,}",
                f"{min(r.step_s) * 1e3:.1f}",
                f"{statistics.median(r.step_s) * 1e3:.1f}",
                f"{r.batch / step:.1f}",
                f"{base[r.dataset] / step:.2f}x" if r.dataset in base else "-",
                megabytes(r.saved),
                megabytes(r.peak),
            ]
        )
    headers = [
        "network",
        "op",
        "params",
        "min ms",
        "median ms",
        "samples/s",
        "speedup",
        "saved MB",
        "peak MB",
    ]
    return table(headers, body)


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
    parser.add_argument("--repeat", type=int, default=5, help="timed blocks per measurement")
    parser.add_argument(
        "--layers", default="mnist,cifar10,imagenet", help="comma-separated datasets"
    )
    parser.add_argument(
        "--block", type=float, default=0.05, help="seconds per timed block of a layer op"
    )
    parser.add_argument(
        "--stat", choices=tuple(STATS), default="min", help="how blocks are summarised"
    )
    parser.add_argument("--warmup", type=int, default=1, help="untimed training steps per net")
    parser.add_argument("--no-nets", action="store_true", help="skip the whole-network steps")
    args = parser.parse_args(argv)
    args.device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda, but torch sees no CUDA device")
    args.datasets = [d.strip() for d in args.layers.split(",") if d.strip()]
    unknown = sorted(set(args.datasets) - set(NETS))
    if unknown:
        parser.error(f"unknown --layers {', '.join(unknown)}; choose from {', '.join(NETS)}")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    device = torch.device(args.device)
    words = sys.argv[1:] if argv is None else argv
    print(f"command: {sys.executable} -m biobench.perf {shlex.join(words)}".rstrip())
    print(f"date: {time.strftime('%Y-%m-%d %H:%M:%S %Z')}")
    print(
        f"machine: {machine(device)} ({args.device}); torch {torch.__version__}; "
        f"{torch.get_num_threads()} CPU threads; python {platform.python_version()}"
    )
    if device.type == "cuda":
        tf32 = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
        print(f"TF32 allowed: matmul {tf32[0]}, cudnn {tf32[1]}")
    print(f"load average at start: {os.getloadavg()[0]:.2f}")
    print(
        f"times: {args.stat} of {args.repeat} blocks;"
        " fwd is a training forward (autograd recording); fwd+bwd"
        " also computes the input, weight and bias gradients. GFLOP/s counts 2*N*P*O*C*k*k"
        " per pass, 3 passes for fwd+bwd (conv2d does the same arithmetic with shared weights)."
        " speedup = unfold+einsum time / this op's time. saved MB: bytes of tensors autograd"
        " saves for backward (parameters excluded, each storage once); peak MB: CUDA peak"
        " allocated during fwd+bwd above the inputs (CUDA only)."
    )
    rows: list[LayerRow] = []
    for dataset in args.datasets:
        batch = args.batch or DEFAULT_BATCH[args.device][dataset]
        for index, layer in enumerate(layers_of(dataset)):
            rows += bench_layer(dataset, index, layer, args, batch)
    text, slow = layer_report(rows)
    print("\nPer layer\n" + text)
    print(
        "ours slower than unfold+einsum (fwd or fwd+bwd) on: "
        + (", ".join(slow) if slow else "none")
    )
    if not args.no_nets:
        nets = []
        for dataset in args.datasets:
            batch = args.batch or DEFAULT_BATCH[args.device][dataset]
            for op in OPS:
                nets.append(bench_net(dataset, op, args, batch))
                gc.collect()  # one network's parameters and Adam state at a time
                if device.type == "cuda":
                    torch.cuda.empty_cache()
        print(
            "\nTraining step (forward + cross-entropy + backward + fused torch.optim.Adam), "
            f"{args.repeat} timed steps after {args.warmup} warm-up; samples/s and speedup "
            f"from the {args.stat}\n" + net_report(nets, args.stat)
        )
    print(f"\nload average at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()

"""The device benchmark: one script that times what the GPU path costs, and writes one JSON file.

    python tools/device.py [--device cuda|cpu] [--json FILE] [--tiny] [--budget SECONDS]
                           [--precisions fp32,tf32,bf16] [--compile both|on|off]
                           [--rules all|bp,fa,...] [--nets cifar10,imagenet]

Three parts, each figure with the machine, torch version and settings beside it:

  layers    every LC layer of the paper against conv2d and unfold + einsum (tools/perf.py's
            layer table, fp32);
  steps     one whole training step (`learner.train_step`, as training runs it: the phase
            clock, autocast for bf16, `execution.compiled_step` with compile) of the paper's
            CIFAR-10 LC net at batch 256 and ImageNet (64x64) LC net at batch 128, for every rule
            that trains an LC net, in each precision, without and with compile; the median of
            timed steps after warm-up, synchronised; and each step's ratio to BP's in the same
            precision and compile setting;
  overhead  tools/overhead.py: biobench's loop against a bare PyTorch loop (BP, FA, DFA, MNIST
            FC net, batch 128).

`--tiny` shrinks everything to seconds on a CPU (small images, batch 4, 2 timed steps, BP/FA/DTP
only, no layers table): CI runs it so the script never rots. A measurement that fails (out of
memory, a compile error) is recorded with its error and the script goes on. `--budget` stops
starting new measurements after that many seconds (default 420, so the whole fits in 8 min).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

from biobench.archs import ARCHITECTURES, DataInfo, build_network
from biobench.registry import ALGORITHMS, load_all
from biobench.training import execution
from biobench.training.cost import Clock

NETS = {  # the paper's LC nets and the batch sizes of the device goals
    "cifar10": (DataInfo("cifar10", (3, 32, 32), 10), 256),
    "imagenet": (DataInfo("imagenet", (3, 64, 64), 1000), 128),
}
TINY_NETS = {"cifar10": (DataInfo("cifar10", (3, 16, 16), 10), 4)}


def _tool(name: str) -> Any:
    path = Path(__file__).resolve().parent / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"biobench_tools_{name}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_step(
    rule: str,
    info: DataInfo,
    batch: int,
    precision: str,
    compile: bool,
    device: torch.device,
    steps: int,
    warmup: int,
) -> dict[str, Any]:
    """One configuration: median ms per training step, peak memory, or the error."""
    torch.manual_seed(0)
    entry = ALGORITHMS.entry(rule)
    net = build_network("lc", info).to(device)
    hp = {k: p.default for k, p in entry.hparams.items()}
    if "mode" in hp:
        hp["mode"] = "parallel"  # one step trains inverses and forward weights
    learner = ALGORITHMS.get(rule)(net, hp)
    learner.clock = Clock(device)
    step = execution.compiled_step(learner) if compile else learner.train_step
    x = torch.randn(batch, *info.input_shape, device=device)
    y = torch.randint(0, info.num_classes, (batch,), device=device)
    times = []
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    with execution.matmul_precision(precision):
        for i in range(warmup + steps):
            _sync(device)
            started = time.perf_counter()
            with execution.autocast(precision, device):
                learner.clock.begin_step()
                step(x, y)
                learner.clock.end_step()
            _sync(device)
            if i >= warmup:
                times.append((time.perf_counter() - started) * 1e3)
    phases = learner.clock.phase_ms(warmup + steps)
    peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
    return {
        "ms": statistics.median(times),
        "times_ms": times,
        "phases_ms": phases,
        "peak_mb": peak,
    }


def steps_part(args: argparse.Namespace, device: torch.device, deadline: float) -> list[dict]:
    nets = TINY_NETS if args.tiny else {k: NETS[k] for k in args.nets}
    lc = ARCHITECTURES.entry("lc")
    rules = [e.name for e in ALGORITHMS.entries() if lc.supports(e)]
    if args.rules != "all":
        rules = [r for r in args.rules.split(",") if r in rules]
    compiles = {"both": (False, True), "on": (True,), "off": (False,)}[args.compile]
    rows = []
    for net, (info, batch) in nets.items():
        for precision in args.precisions:
            for compile in compiles:
                base = None
                for rule in ["bp", *[r for r in rules if r != "bp"]]:
                    row = {"net": net, "batch": batch, "rule": rule, "precision": precision,
                           "compile": compile}  # fmt: skip
                    if time.monotonic() > deadline:
                        row["error"] = "skipped: --budget spent"
                    else:
                        try:
                            row.update(time_step(rule, info, batch, precision, compile, device,
                                                 args.steps, args.warmup))  # fmt: skip
                        except Exception as error:  # noqa: BLE001 - recorded, the script goes on
                            row["error"] = f"{type(error).__name__}: {str(error)[:300]}"
                        if device.type == "cuda":
                            torch.cuda.empty_cache()
                    if rule == "bp":
                        base = row.get("ms")
                    if "ms" in row and base:
                        row["ratio_to_bp"] = row["ms"] / base
                    rows.append(row)
                    shown = (
                        f"{row['ms']:9.2f} ms  x{row.get('ratio_to_bp', 0):.2f}"
                        if "ms" in row
                        else row["error"][:60]
                    )
                    print(
                        f"{net:<9}{batch:>5} {precision:<5}"
                        f"{'compiled' if compile else 'eager':<9}{rule:<8}{shown}",
                        flush=True,
                    )
    return rows


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--tiny", action="store_true")
    parser.add_argument("--budget", type=float, default=420.0)
    parser.add_argument("--precisions", default="fp32,tf32,bf16")
    parser.add_argument("--compile", choices=("both", "on", "off"), default="both")
    parser.add_argument("--rules", default="all")
    parser.add_argument("--nets", default="cifar10,imagenet")
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--warmup", type=int, default=None)
    args = parser.parse_args(argv)
    args.precisions = args.precisions.split(",")
    args.nets = args.nets.split(",")
    unknown = set(args.precisions) - set(execution.PRECISIONS) or set(args.nets) - set(NETS)
    if unknown:
        parser.error(f"unknown {', '.join(sorted(unknown))}")
    if args.tiny:
        args.rules = "bp,fa,dtp" if args.rules == "all" else args.rules
        args.precisions = [p for p in args.precisions if p != "tf32"] or ["fp32"]
        args.compile = "off" if args.compile == "both" else args.compile
    args.steps = args.steps or (2 if args.tiny else 20)
    args.warmup = args.warmup or (1 if args.tiny else 5)
    load_all()
    device = torch.device(args.device)
    started = time.monotonic()
    deadline = started + args.budget
    report: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "device": torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "argv": sys.argv[1:] if argv is None else argv,
    }
    if not args.tiny:
        perf = _tool("perf")
        report["layers"] = perf.main(["--device", device.type, "--no-nets", "--repeat", "3"])
    report["steps"] = steps_part(args, device, deadline)
    overhead = _tool("overhead")
    report["overhead"] = overhead.main(
        ["--device", device.type, *(["--steps", "20", "--rounds", "1"] if args.tiny else [])]
    )
    report["seconds"] = time.monotonic() - started
    if args.json:
        args.json.write_text(json.dumps(report, indent=1, default=str))
        print(f"wrote {args.json}")
    return report


if __name__ == "__main__":
    main()

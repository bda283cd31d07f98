"""What biobench's training loop costs over a bare PyTorch loop doing the same math.

    python tools/overhead.py [--device cpu|cuda] [--batch 128] [--steps 400] [--rounds 5]
                             [--rules bp,fa,dfa] [--json FILE]

For each rule, one epoch-like stretch of `--steps` minibatches of MNIST-shaped data (uint8,
28x28, 10 classes, random: the figures are about speed) on the paper's MNIST FC net (784 - 5 x
256 tanh - 10), at `--batch`:

  biobench  the loop's inner body exactly as `training/loop.py` runs it: this split's batches
            (uint8 -> float, scaled) drawn by a seeded permutation, the step's phase clock, and
            the rule's `train_step` (BP, FA or DFA learner as `biobench run` builds it);
  bare      the same math written plainly: the same batches from a float copy of the data,
            nn.Linear + tanh layers, F.cross_entropy, `loss.backward()` (BP), or the hand-
            written FA/DFA sweep with torch.mm, and a fused Adam.

Both start from the same initial weights, run alternately `--rounds` times, and the fastest
round of each is kept (the least disturbed on a shared machine). The ratio biobench / bare
is the loop's overhead; the goal is at most 1.15 for each rule.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from biobench.archs import DataInfo, build_network
from biobench.data.base import TensorSplit
from biobench.learners.base import output_error
from biobench.registry import ALGORITHMS, load_all
from biobench.training import distributed
from biobench.training.cost import Clock

MNIST = DataInfo("mnist", (1, 28, 28), 10)


def data(steps: int, batch: int, device: torch.device) -> TensorSplit:
    generator = torch.Generator().manual_seed(0)
    n = steps * batch
    x = torch.randint(0, 256, (n, 1, 28, 28), dtype=torch.uint8, generator=generator)
    y = torch.randint(0, 10, (n,), generator=generator)
    return TensorSplit(x, y, scale=1 / 255).to(device)


def biobench_epoch(rule: str, split: TensorSplit, batch: int) -> Callable[[], None]:
    torch.manual_seed(0)
    net = build_network("fc", MNIST).to(split.device)
    entry = ALGORITHMS.entry(rule)
    learner = ALGORITHMS.get(rule)(net, {k: p.default for k, p in entry.hparams.items()})
    clock = Clock(split.device)
    learner.clock = clock
    generator = torch.Generator().manual_seed(1)

    def epoch() -> None:  # training/loop.py's inner loop, as it runs
        for x, y, _own, _count in distributed.batches(split, batch, generator, None):
            clock.begin_step()
            learner.train_step(x, y)
            clock.end_step()
        clock.phase_ms(split.num_batches(batch))

    return epoch


class Bare(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        ref = build_network("fc", MNIST)  # the same initial weights
        self.linears = nn.ModuleList()
        for layer in ref.layers:
            linear = nn.Linear(layer.op.in_features, layer.op.out_features)
            linear.load_state_dict(layer.op.state_dict())
            self.linears.append(linear)

    def forward(self, x: Tensor) -> Tensor:
        h = x.flatten(1)
        for linear in self.linears[:-1]:
            h = torch.tanh(linear(h))
        return self.linears[-1](h)


def bare_epoch(rule: str, split: TensorSplit, batch: int) -> Callable[[], None]:
    net = Bare().to(split.device)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3, fused=True)
    x_all = split.x.float().mul_(1 / 255)
    y_all = split.y
    generator = torch.Generator().manual_seed(1)
    linears = list(net.linears)
    feedback = [torch.randn_like(l.weight) * 0.05 for l in linears[1:]]  # FA: W's shape
    direct = [torch.randn(l.out_features, 10, device=split.device) * 0.05 for l in linears[:-1]]

    def step_bp(x: Tensor, y: Tensor) -> None:
        loss = F.cross_entropy(net(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    @torch.no_grad()
    def step_feedback(x: Tensor, y: Tensor, dfa: bool) -> None:
        hs = [x.flatten(1)]
        for linear in linears[:-1]:
            hs.append(torch.tanh(torch.addmm(linear.bias, hs[-1], linear.weight.T)))
        logits = torch.addmm(linears[-1].bias, hs[-1], linears[-1].weight.T)
        e = output_error(logits, y)
        delta = e
        for l in range(len(linears) - 1, -1, -1):
            linears[l].weight.grad = delta.T @ hs[l]
            linears[l].bias.grad = delta.sum(0)
            if l > 0:
                signal = e @ direct[l - 1].T if dfa else delta @ feedback[l - 1]
                delta = signal * (1 - hs[l] * hs[l])
        optimizer.step()

    steps = {
        "bp": step_bp,
        "fa": lambda x, y: step_feedback(x, y, False),
        "dfa": lambda x, y: step_feedback(x, y, True),
    }
    step = steps[rule]

    def epoch() -> None:
        order = torch.randperm(len(y_all), generator=generator).to(y_all.device)
        for start in range(0, len(y_all), batch):
            index = order[start : start + batch]
            step(x_all[index], y_all[index])

    return epoch


def timed(run: Callable[[], None], device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    started = time.perf_counter()
    run()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - started


def measure(rule: str, args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    split = data(args.steps, args.batch, device)
    ours, bare = biobench_epoch(rule, split, args.batch), bare_epoch(rule, split, args.batch)
    ours(), bare()  # warm-up
    times: dict[str, list[float]] = {"biobench": [], "bare": []}
    for _ in range(args.rounds):
        times["biobench"].append(timed(ours, device))
        times["bare"].append(timed(bare, device))
    best = {k: min(v) / args.steps * 1e3 for k, v in times.items()}  # ms per step
    return {
        "rule": rule,
        "biobench_ms": best["biobench"],
        "bare_ms": best["bare"],
        "ratio": best["biobench"] / best["bare"],
        "rounds_s": times,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--rules", default="bp,fa,dfa")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    load_all()
    device = torch.device(args.device)
    rows = [measure(rule, args, device) for rule in args.rules.split(",")]
    print(
        f"MNIST FC net, batch {args.batch}, {args.steps} steps, best of {args.rounds} rounds, "
        f"{device}, {torch.get_num_threads()} threads, torch {torch.__version__}"
    )
    print(f"{'rule':<6}{'biobench ms/step':>18}{'bare ms/step':>14}{'ratio':>8}")
    for row in rows:
        print(
            f"{row['rule']:<6}{row['biobench_ms']:>18.3f}{row['bare_ms']:>14.3f}"
            f"{row['ratio']:>8.2f}"
        )
    report = {
        "machine": platform.machine(),
        "torch": torch.__version__,
        "device": str(device),
        "batch": args.batch,
        "steps": args.steps,
        "rows": rows,
    }
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    return report


if __name__ == "__main__":
    main()

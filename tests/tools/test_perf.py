"""The benchmark script runs and reports every column and JSON key it promises (its figures are
not tested: speed is measured by running it, not asserted here)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch

_PATH = Path(__file__).resolve().parents[2] / "tools" / "perf.py"
_SPEC = importlib.util.spec_from_file_location("perf", _PATH)
perf = importlib.util.module_from_spec(_SPEC)
sys.modules["perf"] = perf
_SPEC.loader.exec_module(perf)

# Written out rather than read from perf's constants, so dropping a column fails here.
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
TIMING_KEYS = {"min_s", "median_s", "mean_s", "iqr_s", "blocks", "runs", "times_s"}
LAYER_KEYS = {
    "dataset",
    "index",
    "layer",
    "in_channels",
    "out_channels",
    "kernel",
    "stride",
    "input_size",
    "output_size",
    "batch",
    "op",
    "multiply_adds",
    "forward_s",
    "train_s",
    "forward_gflops",
    "train_gflops",
    "forward_speedup",
    "train_speedup",
    "saved_bytes",
    "peak_bytes",
    "forward",
    "train",
}
NET_KEYS = {
    "dataset",
    "network",
    "batch",
    "op",
    "params",
    "step_s",
    "min_s",
    "median_s",
    "samples_per_s",
    "speedup",
    "saved_bytes",
    "peak_bytes",
    "step",
}
OPS = ["ours", "unfold+einsum", "conv2d"]
TINY = ["--device", "cpu", "--layers", "mnist", "--repeat", "2", "--min-run-time", "0.002"]


def header_of(out: str, title: str) -> list[str]:
    """The column names of the table printed under `title` (split on runs of 2+ spaces)."""
    lines = out.splitlines()
    header = lines[lines.index(title) + 1]
    return [c.strip() for c in header.split("  ") if c.strip()]


def check_timing(timing: dict) -> None:
    assert set(timing) == TIMING_KEYS
    assert timing["blocks"] == len(timing["times_s"]) >= 2  # at least one block per round
    assert timing["runs"] >= timing["blocks"]
    assert 0 < timing["min_s"] <= timing["median_s"]


def test_the_benchmark_prints_both_tables_and_writes_every_figure(
    capsys: pytest.CaptureFixture, tmp_path: Path
) -> None:
    path = tmp_path / "out" / "perf.json"
    returned = perf.main([*TINY, "--batch", "2", "--json", str(path)])
    out = capsys.readouterr().out

    assert "load average at start:" in out and "load average at end:" in out
    assert "blocked_autorange" in out
    assert header_of(out, "Per layer") == list(LAYER_COLUMNS)
    title = next(line for line in out.splitlines() if line.startswith("Training step"))
    assert header_of(out, title) == list(NET_COLUMNS)
    for text in ("mnist.1 1->32 k3 s2 28x28 N=2", "mnist.2 32->64 k3 s2 14x14 N=2", "mnist N=2"):
        assert text in out
    # the LC net (either implementation) and its conv twin, as archs/lc.py builds them
    assert "4,191,562" in out and "3,241,354" in out

    report = json.loads(path.read_text())
    assert report == json.loads(json.dumps(returned))
    assert report["device"] == {"type": "cpu", "name": perf.machine(torch.device("cpu"))}
    assert report["torch"] == torch.__version__
    assert report["settings"]["batch"] == {"mnist": 2}
    assert report["settings"]["repeat"] == 2 and report["settings"]["stat"] == "min"
    assert len(report["load_average"]["start"]) == len(report["load_average"]["end"]) == 3
    assert isinstance(report["ours_slower_than_baseline"], list)

    layers = report["layers"]
    assert [(f["index"], f["op"]) for f in layers] == [(i, op) for i in range(2) for op in OPS]
    for f in layers:
        assert set(f) == LAYER_KEYS
        assert f["batch"] == 2 and f["peak_bytes"] is None  # peak memory is CUDA only
        check_timing(f["forward"])
        check_timing(f["train"])
        assert f["forward_s"] == f["forward"]["min_s"] and f["train_s"] == f["train"]["min_s"]
        if f["op"] == "unfold+einsum":
            assert f["forward_speedup"] == f["train_speedup"] == 1

    nets = report["nets"]
    assert [(f["dataset"], f["op"]) for f in nets] == [("mnist", op) for op in OPS]
    assert [f["params"] for f in nets] == [4_191_562, 4_191_562, 3_241_354]
    for f in nets:
        assert set(f) == NET_KEYS
        check_timing(f["step"])
        assert f["samples_per_s"] == pytest.approx(2 / f["step_s"])


def test_no_nets_skips_the_training_steps(capsys: pytest.CaptureFixture) -> None:
    report = perf.main([*TINY, "--batch", "1", "--no-nets", "--stat", "median"])
    out = capsys.readouterr().out
    assert "Per layer" in out and "Training step" not in out
    assert report["nets"] == [] and report["settings"]["nets"] is False
    for f in report["layers"]:
        assert f["forward_s"] == f["forward"]["median_s"]


def test_the_layers_are_read_off_the_networks_archs_builds() -> None:
    assert [layer.label() for layer in perf.layers_of("cifar10")] == [
        "3->64 k5 s2 32x32",
        "64->128 k5 s2 16x16",
        "128->256 k3 s1 8x8",
    ]
    assert len(perf.layers_of("imagenet")) == 7


@pytest.mark.parametrize(
    "argv", [["--layers", "svhn"], ["--repeat", "0"], ["--min-run-time", "0"], ["--batch", "0"]]
)
def test_bad_options_are_refused(argv: list[str]) -> None:
    with pytest.raises(SystemExit):
        perf.parse(argv)


def test_the_device_script_runs_its_tiny_configuration(tmp_path: Path) -> None:
    # CI has no GPU: the script that times the GPU path runs on the CPU, tiny, so it never rots.
    path = Path(__file__).resolve().parents[2] / "tools" / "device.py"
    spec = importlib.util.spec_from_file_location("device_bench", path)
    device = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(device)
    out = tmp_path / "device.json"
    device.main(["--device", "cpu", "--tiny", "--json", str(out)])
    report = json.loads(out.read_text())
    steps = report["steps"]
    assert {(r["rule"], r["precision"]) for r in steps} == {
        (rule, precision) for rule in ("bp", "fa", "dtp") for precision in ("fp32", "bf16")
    }
    assert all("error" not in r and r["ms"] > 0 for r in steps), steps
    assert all(r["ratio_to_bp"] == 1.0 for r in steps if r["rule"] == "bp")
    assert {r["rule"] for r in report["overhead"]["rows"]} == {"bp", "fa", "dfa"}

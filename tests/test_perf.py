"""The benchmark script runs and reports every column it promises (its figures are not tested:
speed is measured by running it, not asserted here)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

_PATH = Path(__file__).resolve().parents[1] / "tools" / "perf.py"
_SPEC = importlib.util.spec_from_file_location("perf", _PATH)
perf = importlib.util.module_from_spec(_SPEC)
sys.modules["perf"] = perf
_SPEC.loader.exec_module(perf)


def test_the_benchmark_prints_layer_and_network_tables(capsys: pytest.CaptureFixture) -> None:
    perf.main(
        [
            "--device",
            "cpu",
            "--layers",
            "mnist",
            "--repeat",
            "1",
            "--block",
            "0.005",
            "--batch",
            "2",
        ]
    )
    out = capsys.readouterr().out
    for text in (
        "Per layer",
        "mnist.1 1->32 k3 s2 28x28",
        "unfold+einsum",
        "conv2d",
        "fwd GFLOP/s",
        "saved MB",
        "Training step",
        "4,191,562",
        "3,241,354",
    ):
        assert text in out


def test_unknown_layers_are_refused() -> None:
    with pytest.raises(SystemExit):
        perf.parse(["--layers", "svhn"])

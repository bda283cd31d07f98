"""What a run is: its spec (algorithm x architecture x dataset, resolved), the presets and
suites of benchmarks.yaml, and the typed settings (HParam) that learners and datasets declare.

No torch here: resolving a spec needs only the registries' declarations.
"""

from __future__ import annotations

from biobench.spec.params import HParam
from biobench.spec.presets import (
    Benchmarks,
    BenchmarkSpec,
    Preset,
    canonical_hash,
    load_benchmarks,
    parse_overrides,
    resolve,
    seedless_hash,
)

__all__ = [
    "BenchmarkSpec",
    "Benchmarks",
    "HParam",
    "Preset",
    "canonical_hash",
    "load_benchmarks",
    "parse_overrides",
    "resolve",
    "seedless_hash",
]

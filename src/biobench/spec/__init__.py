"""What a run is: its spec (algorithm x architecture x dataset, resolved), the presets and
suites of benchmarks.yaml, and the typed settings (HParam) that learners and datasets declare.

No torch here: resolving a spec needs only the registries' declarations.
"""

from __future__ import annotations

from biobench.spec.params import HParam, with_defaults
from biobench.spec.presets import Preset, Presets, load_presets
from biobench.spec.runspec import (
    RunSpec,
    canonical_hash,
    check_pair,
    parse_overrides,
    parse_seeds,
    resolve,
    seedless_hash,
)

__all__ = [
    "HParam",
    "Preset",
    "Presets",
    "RunSpec",
    "canonical_hash",
    "check_pair",
    "load_presets",
    "parse_overrides",
    "parse_seeds",
    "resolve",
    "seedless_hash",
    "with_defaults",
]

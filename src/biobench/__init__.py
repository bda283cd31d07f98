"""biobench: a benchmark for biologically-motivated deep learning.

The stable surface for plugin authors (a learning rule, an architecture or a dataset in a
package of your own, registered through an entry point; see docs/tutorials/own-rule.md) is
importable from here:

    from biobench import ADAM, HParam, Learner, adam

Names are loaded on first use, so `import biobench` (and the CLI's start-up) stays cheap.
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version
from typing import Any

try:
    __version__ = version("biobench")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

# name -> module that defines it
_PUBLIC = {
    # learning rules
    "Learner": "biobench.learners.base",
    "ADAM": "biobench.learners.base",
    "adam": "biobench.learners.base",
    "Trace": "biobench.learners.base",
    "local_forward": "biobench.learners.base",
    "local_backward": "biobench.learners.base",
    "local_grad": "biobench.learners.base",
    "layer_grads": "biobench.learners.base",
    "direct_layers": "biobench.learners.base",
    "make_optimizer": "biobench.learners.base",
    "OPTIMIZER": "biobench.learners.base",
    "output_error": "biobench.learners.base",
    "PredictiveCoding": "biobench.learners.predictive_coding",
    "WeightTransportError": "biobench.learners.base",
    # settings
    "HParam": "biobench.spec.params",
    "with_defaults": "biobench.spec.params",
    # networks
    "Stack": "biobench.archs.stack",
    "Layer": "biobench.archs.stack",
    "Dense": "biobench.nn.dense",
    "Tanh": "biobench.nn.activations",
    "ReLU": "biobench.nn.activations",
    "Identity": "biobench.nn.activations",
    "transpose": "biobench.nn.ops",
    "transport": "biobench.nn.ops",
    "glorot_": "biobench.nn.init",
    # datasets
    "Dataset": "biobench.data.base",
    "DataOptions": "biobench.data.base",
    "TensorSplit": "biobench.data.base",
    # registries
    "DataInfo": "biobench.registry",
    "ALGORITHMS": "biobench.registry",
    "ARCHITECTURES": "biobench.registry",
    "DATASETS": "biobench.registry",
    "register_family": "biobench.registry",
    # errors a plugin raises for bad input
    "BiobenchError": "biobench.errors",
    "DataError": "biobench.errors",
    "SpecError": "biobench.errors",
}
__all__ = sorted(_PUBLIC)


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'biobench' has no attribute {name!r}")


def __dir__() -> list[str]:
    return [*globals(), *__all__]

"""RunSpec: algorithm x architecture x dataset + hyperparameters, fully resolved, and `resolve`,
which builds one from a preset or from names, defaults and command-line overrides.

Resolution of a run's settings, later sources winning:
    hyperparameters: the learning rule's HParam defaults -> the paper's preset for the cell
                     (a plain run), or the named preset -> --set name=value
    seed/epochs/batch size: benchmarks.yaml `defaults` -> the dataset's registration
                     -> the preset -> --seed/--epochs/--batch-size
Everything a spec names is checked here, before any data loads: the names against the
registries, every value against its HParam, the architecture against the dataset's shape and
the learning rule's family.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any

from biobench.errors import SpecError
from biobench.registry import ALGORITHMS, ARCHITECTURES, DATASETS, FAMILIES, NETWORKS
from biobench.spec.params import HParam, inapplicable
from biobench.spec.presets import load_presets, positive

# Settings every run takes, whatever its rule, given like hyperparameters (`--set NAME=VALUE`).
# SETTINGS change what the run computes, so they are part of the experiment (its spec hash).
# OPTIONS say how it runs and what it measures beside its errors; runs differing only there
# share a spec hash (`compile` may reassociate sums, but the experiment is the same).
SETTINGS: dict[str, HParam] = {
    "precision": HParam(
        str,
        "fp32; tf32 (TensorFloat-32 matrix products on a GPU); bf16 (autocast to bfloat16, "
        "fp32 master weights)",
        choices=("fp32", "tf32", "bf16"),
        default="fp32",
    ),
    "val_split": HParam(
        int,
        "training images held out as a validation split, evaluated every epoch (0: none)",
        low=0,
        default=0,
    ),
}
OPTIONS: dict[str, HParam] = {
    "alignment": HParam(
        bool, "measure each layer's alignment with backprop after every epoch", default=True
    ),
    "alignment_batch": HParam(
        int, "samples in the probe batch alignment is measured on", low=1, default=256
    ),
    "compile": HParam(
        bool,
        "torch.compile the network and the rule's step (eager where it cannot)",
        default=False,
    ),
}
EVERY_RUN = {**SETTINGS, **OPTIONS}


@dataclass(frozen=True)
class RunSpec:
    algorithm: str
    architecture: str
    dataset: str
    epochs: int
    batch_size: int
    seed: int
    hparams: dict[str, Any] = field(default_factory=dict)
    data_settings: dict[str, Any] = field(default_factory=dict)  # e.g. augment
    preset: str | None = None  # the preset's name, when run from one
    # SETTINGS and OPTIONS given (--set, --precision, --compile); only the values given, so a
    # spec that gives none is stored and hashed as before they existed.
    settings: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        spec = asdict(self)
        for key in ("settings", "options"):
            if not spec[key]:
                del spec[key]
        return spec

    def setting(self, name: str) -> Any:
        """A SETTINGS or OPTIONS value: the one given, else its default."""
        given = self.settings if name in SETTINGS else self.options
        return given.get(name, EVERY_RUN[name].default)

    def spec_hash(self) -> str:
        """sha256 of the canonical JSON of everything that defines the experiment."""
        return canonical_hash({k: v for k, v in self.to_dict().items() if k != "options"})

    def run_fields(self) -> dict[str, Any]:
        """The columns of a run row that this spec determines."""
        return {
            "spec_hash": self.spec_hash(),
            "preset": self.preset,
            "algorithm": self.algorithm,
            "architecture": self.architecture,
            "dataset": self.dataset,
            "hparams": self.hparams,
            "spec": self.to_dict(),
            "seed": self.seed,
            "epochs": self.epochs,
            "batch_size": self.batch_size,
        }


def canonical_hash(spec: dict[str, Any]) -> str:
    return hashlib.sha256(
        json.dumps(spec, sort_keys=True, separators=(",", ":")).encode()
    ).hexdigest()


def seedless_hash(spec: dict[str, Any]) -> str:
    """The hash of a spec with its seed left out: runs that differ only in seed share it."""
    return canonical_hash(
        {k: v for k, v in spec.items() if k not in ("seed", "preset", "options")}
    )


def parse_overrides(pairs: list[str]) -> dict[str, str]:
    """`["lr=1e-3", "beta1=0.9"]` -> {"lr": "1e-3", ...}; malformed pairs are errors."""
    out: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        name, value = name.strip(), value.strip()
        if not sep or not name or not value:
            raise SpecError(f"--set {pair!r} is not name=value; e.g. --set lr=3e-4")
        if name in out:
            raise SpecError(f"--set {name} is given twice; keep one")
        out[name] = value
    return out


def parse_seeds(text: str) -> tuple[int, ...]:
    """ "0,1,2" -> (0, 1, 2); each a non-negative integer in ASCII digits, none twice, none
    beyond what `positive` allows. All are checked here, before the first seed trains."""
    parts = [part.strip() for part in text.split(",") if part.strip()]
    if (
        not parts
        or not all(part.isascii() and part.isdigit() for part in parts)
        or len({int(part) for part in parts}) != len(parts)
    ):
        raise SpecError(
            f"--seeds {text!r} is not a list of distinct non-negative integers; e.g. --seeds 0,1,2"
        )
    return tuple(positive("--seeds", int(part), allow_zero=True) for part in parts)


def check_pair(algorithm: str, architecture: str, dataset: str) -> None:
    """Refuse, before any data loads, a network that cannot be built for the dataset's shape
    or trained by the learning rule's family."""
    arch = ARCHITECTURES.entry(architecture)
    info = DATASETS.entry(dataset).info
    reason = arch.refuses(info) if arch.refuses is not None and info is not None else None
    if reason:
        raise SpecError(f"architecture {architecture!r} cannot take dataset {dataset!r}: {reason}")
    rule = ALGORITHMS.entry(algorithm)
    if not arch.supports(rule):
        supported = ", ".join(e.name for e in ALGORITHMS.entries() if arch.supports(e))
        if arch.families is not None and rule.family not in arch.families:
            families = ", ".join(FAMILIES[f] for f in arch.families)
            raise SpecError(
                f"architecture {architecture!r} supports {families} rules only, not {algorithm} "
                f"({FAMILIES[rule.family]}); use one of: {supported}"
            )
        raise SpecError(  # the rule's family may train it, but the rule cannot
            f"algorithm {algorithm!r} trains {NETWORKS[rule.networks]} only, and "
            f"{architecture!r} is not one; use one of: {supported}"
        )


def resolve(
    *,
    algorithm: str | None = None,
    architecture: str | None = None,
    dataset: str | None = None,
    preset: str | None = None,
    epochs: int | None = None,
    batch_size: int | None = None,
    seed: int | None = None,
    overrides: list[str] | None = None,
) -> RunSpec:
    """A full spec from a preset name or from (algorithm, architecture, dataset), with the
    declared defaults and the command line's options and --set overrides on top."""
    config = load_presets()
    chosen = config.preset(preset) if preset else None
    if chosen is not None:
        algorithm, architecture, dataset = chosen.algorithm, chosen.architecture, chosen.dataset
    if algorithm is None or architecture is None or dataset is None:
        raise SpecError("give --preset NAME, or all of --algo, --arch and --data")
    algorithm = ALGORITHMS.canonical(algorithm)
    architecture = ARCHITECTURES.canonical(architecture)
    dataset = DATASETS.canonical(dataset)
    check_pair(algorithm, architecture, dataset)
    schema = ALGORITHMS.entry(algorithm).hparams
    data_schema = DATASETS.entry(dataset).settings

    given_hp: dict[str, Any] = {}
    given_data: dict[str, Any] = {}
    settings: dict[str, Any] = {}
    options: dict[str, Any] = {}
    for name, value in parse_overrides(overrides or []).items():
        if name in schema:
            given_hp[name] = schema[name].parse(name, value)
        elif name in data_schema:
            given_data[name] = data_schema[name].parse(name, value)
        elif name in EVERY_RUN:
            value = EVERY_RUN[name].parse(name, value)
            (settings if name in SETTINGS else options)[name] = value
        else:
            also = f"; {dataset} takes {', '.join(data_schema)}" if data_schema else ""
            raise SpecError(
                f"--set {name}: {algorithm} has no hyperparameter {name!r}; "
                f"valid: {', '.join(schema) or 'none'}{also}; every run takes "
                f"{', '.join(EVERY_RUN)}"
            )

    hparams = {name: p.default for name, p in schema.items() if p.default is not None}
    if chosen is None:  # a plain run takes the paper's values for its cell, when there are some
        mode = given_hp.get("mode", hparams.get("mode"))
        cell = config.cell_preset(algorithm, architecture, dataset, mode)
        hparams.update(cell.hparams if cell else {})
    else:
        hparams.update(chosen.hparams)
    hparams.update(given_hp)
    wrong = inapplicable(schema, hparams, given_hp)
    if wrong:
        raise SpecError(f"--set {wrong}")
    missing = [name for name in schema if name not in hparams]
    if missing:
        raise SpecError(
            f"{algorithm} declares no default for {', '.join(missing)}; pass "
            + " ".join(f"--set {name}=VALUE" for name in missing)
        )

    run = {**config.run_defaults(dataset), **(chosen.run if chosen else {})}
    for key, value in (("epochs", epochs), ("batch_size", batch_size), ("seed", seed)):
        if value is not None:
            run[key] = positive(f"--{key.replace('_', '-')}", value, allow_zero=key == "seed")
    return RunSpec(
        algorithm=algorithm,
        architecture=architecture,
        dataset=dataset,
        epochs=run["epochs"],
        batch_size=run["batch_size"],
        seed=run["seed"],
        hparams={name: hparams[name] for name in schema},
        data_settings={**(chosen.data_settings if chosen else {}), **given_data},
        preset=chosen.name if chosen else None,
        settings={**(chosen.settings if chosen else {}), **settings},
        options=options,
    )

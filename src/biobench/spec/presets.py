"""BenchmarkSpec: algorithm x architecture x dataset + hyperparameters, fully resolved; and the
presets of benchmarks.yaml (the paper's cells, with reference numbers) and their groups.

Every value is validated where it enters: names against the registries, hyperparameters and
dataset settings against their declared types and ranges, the file's keys against the schema
below. A typo is an error naming the valid choices, never silently ignored.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import Any

import yaml

from biobench.errors import SpecError
from biobench.registry import ALGORITHMS, ARCHITECTURES, DATASETS, load_all

BENCHMARKS_ENV = "BIOBENCH_BENCHMARKS"
RUN_KEYS = ("seed", "epochs", "batch_size")
TOP_KEYS = ("defaults", "datasets", "hparams", "presets", "groups")
PRESET_KEYS = (
    "algorithm",
    "architecture",
    "dataset",
    "epochs",
    "batch_size",
    "seed",
    "hparams",
    "data_settings",
    "reference",
    "tolerance",
)
REFERENCE_KEYS = ("train_top1", "test_top1", "train_top5", "test_top5")


@dataclass(frozen=True)
class BenchmarkSpec:
    algorithm: str
    architecture: str
    dataset: str
    epochs: int
    batch_size: int
    seed: int
    hparams: dict[str, Any] = field(default_factory=dict)
    data_settings: dict[str, Any] = field(default_factory=dict)  # e.g. augment
    benchmark: str | None = None  # preset name, when run from one

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def spec_hash(self) -> str:
        """sha256 of the canonical JSON of everything that defines the experiment."""
        return canonical_hash(self.to_dict())

    def run_fields(self) -> dict[str, Any]:
        """The columns of a run row that this spec determines."""
        return {
            "spec_hash": self.spec_hash(),
            "benchmark": self.benchmark,
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
    return canonical_hash({k: v for k, v in spec.items() if k not in ("seed", "benchmark")})


@dataclass(frozen=True)
class Preset:
    name: str
    algorithm: str
    architecture: str
    dataset: str
    run: dict[str, int]  # epochs / batch_size / seed, where the preset sets them
    hparams: dict[str, Any]
    data_settings: dict[str, Any]
    reference: dict[str, float]
    tolerance: float

    @property
    def mode(self) -> str | None:
        return self.hparams.get("mode")


@dataclass(frozen=True)
class Benchmarks:
    """benchmarks.yaml, parsed and validated."""

    path: Path
    run: dict[str, int]
    datasets: dict[str, dict[str, int]]
    hparams: dict[str, dict[str, Any]]  # algorithm -> default hyperparameters
    presets: dict[str, Preset]
    groups: dict[str, list[str]]  # group -> preset names, nested groups expanded

    def preset(self, name: str) -> Preset:
        if name not in self.presets:
            near = [p for p in self.presets if name in p or p in name][:5]
            hint = f" (did you mean {', '.join(near)}?)" if near else ""
            raise SpecError(
                f"unknown benchmark {name!r}{hint}; `biobench list benchmarks` shows them all"
            )
        return self.presets[name]

    def group(self, name: str) -> list[str]:
        if name not in self.groups:
            raise SpecError(
                f"unknown suite {name!r}; choose one of: {', '.join(sorted(self.groups))}"
            )
        return self.groups[name]

    def cell_preset(
        self, algorithm: str, architecture: str, dataset: str, mode: Any
    ) -> Preset | None:
        """The paper's preset for this cell (and TP mode), if it has one."""
        for preset in self.presets.values():
            if (preset.algorithm, preset.architecture, preset.dataset) == (
                algorithm,
                architecture,
                dataset,
            ) and preset.mode == mode:
                return preset
        return None


def benchmarks_path() -> Path:
    if os.environ.get(BENCHMARKS_ENV):
        return Path(os.environ[BENCHMARKS_ENV])
    return Path(str(files("biobench") / "benchmarks.yaml"))


def load_benchmarks(path: Path | None = None) -> Benchmarks:
    path = path or benchmarks_path()
    try:
        stamp = path.stat().st_mtime_ns
    except OSError as error:
        raise SpecError(
            f"cannot read {path}: {error.strerror}; set {BENCHMARKS_ENV} to the file"
        ) from None
    return _parse(path, stamp)


@cache
def _parse(path: Path, _stamp: int) -> Benchmarks:
    load_all()
    try:
        content = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise SpecError(f"{path}{where} is not valid YAML; fix the file") from None
    _mapping(str(path), content, TOP_KEYS)
    run = _run_settings(f"{path}: defaults", content.get("defaults"))
    missing = [key for key in RUN_KEYS if key not in run]
    if missing:
        raise SpecError(f"{path}: defaults must set {', '.join(missing)}")
    datasets = _mapping(f"{path}: datasets", content.get("datasets"), DATASETS.names())
    hparams = {}
    for algorithm, table in _mapping(
        f"{path}: hparams", content.get("hparams"), ALGORITHMS.names()
    ).items():
        cells = _mapping(f"{path}: hparams.{algorithm}", table, ("default",))
        hparams[algorithm] = _hparams(
            f"{path}: hparams.{algorithm}.default", algorithm, cells.get("default")
        )
    presets = {
        name: _preset(f"{path}: presets.{name}", name, raw)
        for name, raw in (_mapping(f"{path}: presets", content.get("presets"))).items()
    }
    raw_groups = _mapping(f"{path}: groups", content.get("groups"))
    groups = {name: _expand(path, name, raw_groups, presets, ()) for name in raw_groups}
    return Benchmarks(
        path=path,
        run=run,
        datasets={
            name: _run_settings(f"{path}: datasets.{name}", raw) for name, raw in datasets.items()
        },
        hparams=hparams,
        presets=presets,
        groups=groups,
    )


def _mapping(where: str, raw: Any, allowed: Any = None) -> dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise SpecError(f"{where} must be a mapping, got {type(raw).__name__}")
    if allowed is not None:
        unknown = [str(key) for key in raw if key not in allowed]
        if unknown:
            raise SpecError(
                f"{where}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(allowed)}"
            )
    return raw


def _positive(name: str, value: Any, *, allow_zero: bool = False) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise SpecError(f"{name} must be an integer, got {value!r}")
    if value < 0 or (value == 0 and not allow_zero):
        raise SpecError(f"{name} must be {'>= 0' if allow_zero else '> 0'}, got {value}")
    return value


def _run_settings(where: str, raw: Any) -> dict[str, int]:
    return {
        key: _positive(f"{where}.{key}", value, allow_zero=key == "seed")
        for key, value in _mapping(where, raw, RUN_KEYS).items()
    }


def _hparams(where: str, algorithm: str, raw: Any) -> dict[str, Any]:
    schema = ALGORITHMS.get(algorithm).hparams
    out = {}
    for name, value in _mapping(where, raw).items():
        if name not in schema:
            raise SpecError(
                f"{where}: {algorithm} has no hyperparameter {name!r}; "
                f"valid: {', '.join(schema) or 'none'}"
            )
        out[name] = schema[name].parse(name, value)
    return out


def _data_settings(where: str, dataset: str, raw: Any) -> dict[str, Any]:
    schema = getattr(DATASETS.get(dataset), "settings", {})
    return {
        name: schema[name].parse(name, value)
        for name, value in _mapping(where, raw, tuple(schema)).items()
    }


def _preset(where: str, name: str, raw: Any) -> Preset:
    raw = _mapping(where, raw, PRESET_KEYS)
    for key in ("algorithm", "architecture", "dataset", "reference", "tolerance"):
        if key not in raw:
            raise SpecError(f"{where}: missing {key!r}")
    try:
        algorithm = ALGORITHMS.canonical(str(raw["algorithm"]))
        architecture = ARCHITECTURES.canonical(str(raw["architecture"]))
        dataset = DATASETS.canonical(str(raw["dataset"]))
    except SpecError as error:
        raise SpecError(f"{where}: {error}") from None
    reference = {}
    for key, value in _mapping(f"{where}.reference", raw["reference"], REFERENCE_KEYS).items():
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 100:
            raise SpecError(
                f"{where}.reference.{key} must be an error in % (0-100), got {value!r}"
            )
        reference[key] = float(value)
    if "test_top1" not in reference:
        raise SpecError(f"{where}.reference must give test_top1")
    tolerance = raw["tolerance"]
    if isinstance(tolerance, bool) or not isinstance(tolerance, int | float) or tolerance <= 0:
        raise SpecError(
            f"{where}.tolerance must be a positive number of points, got {tolerance!r}"
        )
    return Preset(
        name=name,
        algorithm=algorithm,
        architecture=architecture,
        dataset=dataset,
        run={
            key: _positive(f"{where}.{key}", raw[key], allow_zero=key == "seed")
            for key in RUN_KEYS
            if key in raw
        },
        hparams=_hparams(f"{where}.hparams", algorithm, raw.get("hparams")),
        data_settings=_data_settings(f"{where}.data_settings", dataset, raw.get("data_settings")),
        reference=reference,
        tolerance=float(tolerance),
    )


def _expand(
    path: Path,
    name: str,
    groups: dict[str, Any],
    presets: dict[str, Preset],
    seen: tuple[str, ...],
) -> list[str]:
    if name in seen:
        raise SpecError(f"{path}: group {name!r} includes itself")
    members = groups[name]
    if not isinstance(members, list) or not members:
        raise SpecError(f"{path}: groups.{name} must be a non-empty list of presets or groups")
    out: list[str] = []
    for member in members:
        if member in presets:
            out.append(member)
        elif member in groups:
            out.extend(_expand(path, member, groups, presets, (*seen, name)))
        else:
            raise SpecError(
                f"{path}: groups.{name} names {member!r}, neither a preset nor a group"
            )
    return list(dict.fromkeys(out))


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


def resolve(
    *,
    algorithm: str | None = None,
    architecture: str | None = None,
    dataset: str | None = None,
    benchmark: str | None = None,
    epochs: int | None = None,
    batch_size: int | None = None,
    seed: int | None = None,
    overrides: list[str] | None = None,
) -> BenchmarkSpec:
    """A full spec from a preset name or from (algorithm, architecture, dataset), with the
    defaults of benchmarks.yaml and the command line's options and --set overrides on top."""
    config = load_benchmarks()
    preset = config.preset(benchmark) if benchmark else None
    if preset is not None:
        algorithm, architecture, dataset = preset.algorithm, preset.architecture, preset.dataset
    if algorithm is None or architecture is None or dataset is None:
        raise SpecError("give --bench NAME, or all of --algo, --arch and --data")
    algorithm = ALGORITHMS.canonical(algorithm)
    architecture = ARCHITECTURES.canonical(architecture)
    dataset = DATASETS.canonical(dataset)
    supported = getattr(ARCHITECTURES.get(architecture), "datasets", (dataset,))
    if dataset not in supported:
        raise SpecError(
            f"architecture {architecture!r} has no network for dataset {dataset!r}; "
            f"use it with: {', '.join(sorted(supported))}"
        )
    schema = ALGORITHMS.get(algorithm).hparams
    data_schema = getattr(DATASETS.get(dataset), "settings", {})

    given_hp: dict[str, Any] = {}
    given_data: dict[str, Any] = {}
    for name, value in parse_overrides(overrides or []).items():
        if name in schema:
            given_hp[name] = schema[name].parse(name, value)
        elif name in data_schema:
            given_data[name] = data_schema[name].parse(name, value)
        else:
            also = f"; {dataset} takes {', '.join(data_schema)}" if data_schema else ""
            raise SpecError(
                f"--set {name}: {algorithm} has no hyperparameter {name!r}; "
                f"valid: {', '.join(schema) or 'none'}{also}"
            )

    hparams = dict(config.hparams.get(algorithm, {}))
    if preset is None:  # a plain run takes the paper's values for its cell, when there are some
        mode = given_hp.get("mode", hparams.get("mode"))
        preset_values = config.cell_preset(algorithm, architecture, dataset, mode)
        hparams.update(preset_values.hparams if preset_values else {})
    else:
        hparams.update(preset.hparams)
    hparams.update(given_hp)
    missing = [name for name in schema if name not in hparams]
    if missing:
        raise SpecError(
            f"{algorithm} needs {', '.join(missing)}: add them to {config.path} or pass --set"
        )

    run = {**config.run, **config.datasets.get(dataset, {}), **(preset.run if preset else {})}
    for key, value in (("epochs", epochs), ("batch_size", batch_size), ("seed", seed)):
        if value is not None:
            run[key] = _positive(f"--{key.replace('_', '-')}", value, allow_zero=key == "seed")
    return BenchmarkSpec(
        algorithm=algorithm,
        architecture=architecture,
        dataset=dataset,
        epochs=run["epochs"],
        batch_size=run["batch_size"],
        seed=run["seed"],
        hparams={name: hparams[name] for name in schema},
        data_settings={**(preset.data_settings if preset else {}), **given_data},
        benchmark=preset.name if preset else None,
    )

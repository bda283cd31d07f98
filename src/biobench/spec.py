"""BenchmarkSpec: algorithm x architecture x dataset + hyperparameters, fully resolved.

Defaults come from benchmarks.yaml (see the resolution order at its top); `--set name=value`
overrides are parsed by the algorithm's declared hyperparameters, so a typo, a wrong type or an
out-of-range value is an error naming the valid choices, never silently ignored.
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
RUN_KEYS = {"seed": int, "epochs": int, "batch_size": int}


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
        canonical = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


def benchmarks_path() -> Path:
    if os.environ.get(BENCHMARKS_ENV):
        return Path(os.environ[BENCHMARKS_ENV])
    return Path(str(files("biobench") / "benchmarks.yaml"))


@cache
def _load_yaml(path: Path) -> dict[str, Any]:
    try:
        content = yaml.safe_load(path.read_text())
    except OSError as error:
        raise SpecError(
            f"cannot read {path}: {error.strerror}; set {BENCHMARKS_ENV} to the file"
        ) from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise SpecError(f"{path}{where} is not valid YAML; fix the file") from None
    content = content or {}
    if not isinstance(content, dict):
        raise SpecError(f"{path} must be a mapping with keys defaults, datasets, hparams")
    unknown = set(content) - {"defaults", "datasets", "hparams"}
    if unknown:
        raise SpecError(
            f"{path}: unknown top-level key(s) {', '.join(sorted(unknown))}; "
            "allowed: defaults, datasets, hparams"
        )
    return content


def _run_settings(where: str, raw: Any) -> dict[str, int]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise SpecError(f"{where} must be a mapping of {', '.join(RUN_KEYS)}")
    out = {}
    for key, value in raw.items():
        if key not in RUN_KEYS:
            raise SpecError(f"{where}: unknown key {key!r}; allowed: {', '.join(RUN_KEYS)}")
        out[key] = _positive(f"{where}.{key}", value, allow_zero=key == "seed")
    return out


def _positive(name: str, value: Any, *, allow_zero: bool = False) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise SpecError(f"{name} must be an integer, got {value!r}")
    if value < 0 or (value == 0 and not allow_zero):
        raise SpecError(f"{name} must be {'>= 0' if allow_zero else '> 0'}, got {value}")
    return value


def _hparam_layers(
    config: dict[str, Any], path: Path, algorithm: str, cells: list[str]
) -> list[dict]:
    table = (config.get("hparams") or {}).get(algorithm) or {}
    if not isinstance(table, dict):
        raise SpecError(f"{path}: hparams.{algorithm} must be a mapping of cells")
    layers = []
    for cell in ("default", *cells):
        values = table.get(cell) or {}
        if not isinstance(values, dict):
            raise SpecError(f"{path}: hparams.{algorithm}.{cell} must be a mapping")
        layers.append((f"{path}: hparams.{algorithm}.{cell}", values))
    return layers


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
    algorithm: str,
    architecture: str,
    dataset: str,
    epochs: int | None = None,
    batch_size: int | None = None,
    seed: int | None = None,
    overrides: list[str] | None = None,
) -> BenchmarkSpec:
    """Validate names, fill defaults from benchmarks.yaml, apply command-line overrides."""
    load_all()
    algorithm = ALGORITHMS.canonical(algorithm)
    architecture = ARCHITECTURES.canonical(architecture)
    dataset = DATASETS.canonical(dataset)
    schema = ALGORITHMS.get(algorithm).hparams

    path = benchmarks_path()
    config = _load_yaml(path)
    run = _run_settings(f"{path}: defaults", config.get("defaults"))
    datasets = config.get("datasets") or {}
    for name in datasets:
        if name not in DATASETS:
            raise SpecError(
                f"{path}: datasets.{name} is not a dataset; "
                f"choose from: {', '.join(DATASETS.names())}"
            )
    run.update(_run_settings(f"{path}: datasets.{dataset}", datasets.get(dataset)))
    for key, value in (("epochs", epochs), ("batch_size", batch_size), ("seed", seed)):
        if value is not None:
            run[key] = _positive(f"--{key.replace('_', '-')}", value, allow_zero=key == "seed")
    missing_run = set(RUN_KEYS) - set(run)
    if missing_run:
        raise SpecError(f"{path}: defaults must set {', '.join(sorted(missing_run))}")

    hparams: dict[str, Any] = {}
    valid = ", ".join(schema) or "none"
    for where, values in _hparam_layers(
        config, path, algorithm, [dataset, f"{dataset}-{architecture}"]
    ):
        for name, value in values.items():
            if name not in schema:
                raise SpecError(
                    f"{where}: {algorithm} has no hyperparameter {name!r}; valid: {valid}"
                )
            hparams[name] = schema[name].parse(name, value)
    data_schema = getattr(DATASETS.get(dataset), "settings", {})
    data_settings: dict[str, Any] = {}
    for name, value in parse_overrides(overrides or []).items():
        if name in schema:
            hparams[name] = schema[name].parse(name, value)
        elif name in data_schema:
            data_settings[name] = data_schema[name].parse(name, value)
        else:
            also = f"; {dataset} takes {', '.join(data_schema)}" if data_schema else ""
            raise SpecError(
                f"--set {name}: {algorithm} has no hyperparameter {name!r}; valid: {valid}{also}"
            )
    missing = [name for name in schema if name not in hparams]
    if missing:
        raise SpecError(
            f"{algorithm} needs {', '.join(missing)}: add them to {path} or pass --set"
        )
    return BenchmarkSpec(
        algorithm=algorithm,
        architecture=architecture,
        dataset=dataset,
        epochs=run["epochs"],
        batch_size=run["batch_size"],
        seed=run["seed"],
        hparams={name: hparams[name] for name in schema},
        data_settings=data_settings,
    )

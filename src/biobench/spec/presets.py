"""Presets and suites: benchmarks.yaml (the paper's cells, with reference numbers) parsed and
validated.

A *preset* is one named, fully specified benchmark (a cell of the paper's tables, or one of
biobench's smoke runs) with the numbers `biobench check` holds it to; a *suite* is a named list
of presets and suites. Every value is validated where it enters: names against the registries,
hyperparameters and dataset settings against their declared types and ranges, the file's keys
against the schema below. A typo is an error naming the valid choices, never silently ignored.

Defaults do not live here: a learning rule's hyperparameters default to what its HParams
declare, a dataset's epochs and batch size to what its registration declares, and everything
else to this file's `defaults`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import Any

import yaml

from biobench.errors import SpecError
from biobench.registry import ALGORITHMS, ARCHITECTURES, DATASETS, load_all
from biobench.spec.params import LARGEST_INT

PRESETS_ENV = "BIOBENCH_BENCHMARKS"
RUN_KEYS = ("seed", "epochs", "batch_size")
TOP_KEYS = ("defaults", "presets", "suites")
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
class Presets:
    """benchmarks.yaml, parsed and validated."""

    path: Path
    run: dict[str, int]  # the run defaults: seed, epochs, batch_size
    presets: dict[str, Preset]
    suites: dict[str, list[str]]  # suite -> preset names, nested suites expanded

    def preset(self, name: str) -> Preset:
        if name not in self.presets:
            near = [p for p in self.presets if name in p or p in name][:5]
            hint = f" (did you mean {', '.join(near)}?)" if near else ""
            raise SpecError(
                f"unknown preset {name!r}{hint}; `biobench list presets` shows them all"
            )
        return self.presets[name]

    def suite(self, name: str) -> list[str]:
        if name not in self.suites:
            raise SpecError(
                f"unknown suite {name!r}; choose one of: {', '.join(sorted(self.suites))}"
            )
        return self.suites[name]

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

    def run_defaults(self, dataset: str) -> dict[str, int]:
        """seed, epochs and batch size for a run on `dataset` that no preset or option sets."""
        entry = DATASETS.entry(dataset)
        declared = {"epochs": entry.epochs, "batch_size": entry.batch_size}
        return {**self.run, **{k: v for k, v in declared.items() if v is not None}}


def presets_path() -> Path:
    if os.environ.get(PRESETS_ENV):
        return Path(os.environ[PRESETS_ENV])
    return Path(str(files("biobench") / "benchmarks.yaml"))


def load_presets(path: Path | None = None) -> Presets:
    path = path or presets_path()
    try:
        stamp = path.stat().st_mtime_ns
    except OSError as error:
        raise SpecError(
            f"cannot read {path}: {error.strerror}; set {PRESETS_ENV} to the file"
        ) from None
    return _parse(path, stamp)


@cache
def _parse(path: Path, _stamp: int) -> Presets:
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
    presets = {
        name: _preset(f"{path}: presets.{name}", name, raw)
        for name, raw in (_mapping(f"{path}: presets", content.get("presets"))).items()
    }
    raw_suites = _mapping(f"{path}: suites", content.get("suites"))
    suites = {name: _expand(path, name, raw_suites, presets, ()) for name in raw_suites}
    return Presets(path=path, run=run, presets=presets, suites=suites)


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


def positive(name: str, value: Any, *, allow_zero: bool = False) -> int:
    """A seed (`allow_zero`), epoch count or batch size, checked: an integer the results
    database can store (see LARGEST_INT)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise SpecError(f"{name} must be an integer, got {value!r}")
    if value < 0 or (value == 0 and not allow_zero):
        raise SpecError(f"{name} must be {'>= 0' if allow_zero else '> 0'}, got {value}")
    if value > LARGEST_INT:
        raise SpecError(
            f"{name} must be <= {LARGEST_INT} (the largest the results database stores), "
            f"got {value}"
        )
    return value


def _run_settings(where: str, raw: Any) -> dict[str, int]:
    return {
        key: positive(f"{where}.{key}", value, allow_zero=key == "seed")
        for key, value in _mapping(where, raw, RUN_KEYS).items()
    }


def _settings(where: str, owner: str, what: str, schema: Any, raw: Any) -> dict[str, Any]:
    out = {}
    for name, value in _mapping(where, raw).items():
        if name not in schema:
            raise SpecError(
                f"{where}: {owner} has no {what} {name!r}; valid: {', '.join(schema) or 'none'}"
            )
        out[name] = schema[name].parse(name, value)
    return out


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
            key: positive(f"{where}.{key}", raw[key], allow_zero=key == "seed")
            for key in RUN_KEYS
            if key in raw
        },
        hparams=_settings(
            f"{where}.hparams",
            algorithm,
            "hyperparameter",
            ALGORITHMS.entry(algorithm).hparams,
            raw.get("hparams"),
        ),
        data_settings=_settings(
            f"{where}.data_settings",
            dataset,
            "setting",
            DATASETS.entry(dataset).settings,
            raw.get("data_settings"),
        ),
        reference=reference,
        tolerance=float(tolerance),
    )


def _expand(
    path: Path,
    name: str,
    suites: dict[str, Any],
    presets: dict[str, Preset],
    seen: tuple[str, ...],
) -> list[str]:
    if name in seen:
        raise SpecError(f"{path}: suite {name!r} includes itself")
    members = suites[name]
    if not isinstance(members, list) or not members:
        raise SpecError(f"{path}: suites.{name} must be a non-empty list of presets or suites")
    out: list[str] = []
    for member in members:
        if member in presets:
            out.append(member)
        elif member in suites:
            out.extend(_expand(path, member, suites, presets, (*seen, name)))
        else:
            raise SpecError(
                f"{path}: suites.{name} names {member!r}, neither a preset nor a suite"
            )
    return list(dict.fromkeys(out))

"""Presets and suites: benchmarks.yaml (the paper's cells, with reference numbers) and the
user's preset files, parsed and validated.

A *preset* is one named, fully specified benchmark (a cell of the paper's tables, one of
biobench's smoke runs, or a user's, e.g. a study's best configuration) with, where there is
one, the reference number `biobench check` holds it to; a *suite* is a named list of presets
and suites. Every value is validated where it enters: names against the registries,
hyperparameters and dataset settings against their declared types and ranges, the file's keys
against the schema below. A typo is an error naming the file and the valid choices, never
silently ignored.

User preset files (`presets:` and `suites:` as in benchmarks.yaml, no `defaults`) are read
beside it: $BIOBENCH_HOME/presets.yaml when it exists (where `biobench study NAME --preset NEW`
writes by default), then each file BIOBENCH_PRESETS names (os.pathsep-separated), to which a
command's `--presets FILE` adds. A name that is already taken, by a built-in preset or by
another file, is an error naming both places: a preset means one thing on every machine.

Defaults do not live here: a learning rule's hyperparameters default to what its HParams
declare, a dataset's epochs and batch size to what its registration declares, and everything
else to benchmarks.yaml's `defaults`.
"""

from __future__ import annotations

import math
import os
import re
import stat
from dataclasses import dataclass, field, replace
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import Any

import yaml

from biobench.errors import BiobenchError, SpecError
from biobench.files import (
    YamlRefused,
    atomic_write,
    load_yaml,
    not_regular,
    read_user_text,
)
from biobench.paths import home
from biobench.registry import ALGORITHMS, ARCHITECTURES, DATASETS, load_all
from biobench.spec.params import LARGEST_INT

PRESETS_ENV = "BIOBENCH_BENCHMARKS"  # a file that replaces the packaged benchmarks.yaml
USER_PRESETS_ENV = "BIOBENCH_PRESETS"  # user preset files read beside it, os.pathsep-separated
USER_PRESETS_FILE = "presets.yaml"  # under $BIOBENCH_HOME: read when present, written by default
RUN_KEYS = ("seed", "epochs", "batch_size")
TOP_KEYS = ("defaults", "presets", "suites")
USER_TOP_KEYS = ("presets", "suites")  # run defaults are benchmarks.yaml's alone
PRESET_KEYS = (
    "algorithm",
    "architecture",
    "dataset",
    "epochs",
    "batch_size",
    "seed",
    "hparams",
    "data_settings",
    "settings",
    "reference",
    "tolerance",
    "note",
)
REFERENCE_KEYS = ("train_top1", "test_top1", "train_top5", "test_top5")
# What `study --preset NEW` accepts as NEW: a name to type on a command line and a YAML key.
PRESET_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


@dataclass(frozen=True)
class Preset:
    name: str
    algorithm: str
    architecture: str
    dataset: str
    run: dict[str, int]  # epochs / batch_size / seed, where the preset sets them
    hparams: dict[str, Any]
    data_settings: dict[str, Any]
    reference: dict[str, float]  # empty: no reference; else it gives test_top1
    tolerance: float | None  # None exactly when there is no reference
    note: str | None = None  # where the preset comes from, e.g. the study it was taken from
    source: Path | None = None  # the user preset file it is read from; None: benchmarks.yaml
    # Settings every run takes (runspec.SETTINGS, e.g. val_split), where the preset sets them.
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def mode(self) -> str | None:
        return self.hparams.get("mode")

    @property
    def has_reference(self) -> bool:
        return bool(self.reference)


@dataclass(frozen=True)
class Presets:
    """benchmarks.yaml and the user preset files, parsed and validated."""

    path: Path  # benchmarks.yaml
    run: dict[str, int]  # the run defaults: seed, epochs, batch_size
    presets: dict[str, Preset]
    suites: dict[str, list[str]]  # suite -> preset names, nested suites expanded
    files: tuple[Path, ...] = ()  # the user preset files read, in order

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
        """The paper's preset for this cell (and TP mode), if it has one. Only benchmarks.yaml's
        count: a plain run takes the same values on every machine, whatever presets a user
        keeps (a user's preset is run by its name)."""
        cell = (algorithm, architecture, dataset, mode)
        for preset in self.presets.values():
            mine = (preset.algorithm, preset.architecture, preset.dataset, preset.mode)
            if preset.source is None and mine == cell:
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


def user_presets_path() -> Path:
    """The user preset file read when present, and written by `study --preset` by default."""
    return home() / USER_PRESETS_FILE


def user_preset_files() -> list[Path]:
    """The user preset files to read, in order, each once: the one under $BIOBENCH_HOME when
    it exists, then BIOBENCH_PRESETS's (which must exist: a file named is a file meant)."""
    default = user_presets_path()
    named = [Path(p).expanduser() for p in os.environ.get(USER_PRESETS_ENV, "").split(os.pathsep)]
    found = [default] if default.is_file() else []
    found += [path for path in named if str(path) not in ("", ".")]
    unique: dict[str, Path] = {}
    for path in found:
        unique.setdefault(os.path.realpath(path), path)
    return list(unique.values())


def add_preset_files(paths: list[Path] | None) -> None:
    """A command's `--presets FILE ...`: read beside benchmarks.yaml by this process and the
    processes it starts (a suite's launcher jobs, the ranks of --nproc), as BIOBENCH_PRESETS
    entries; each file is checked here, before the command does anything else."""
    if not paths:
        return
    given = os.environ.get(USER_PRESETS_ENV, "")
    absolute = [str(Path(p).expanduser().absolute()) for p in paths]
    os.environ[USER_PRESETS_ENV] = os.pathsep.join([*absolute, *([given] if given else [])])
    try:
        load_presets()
    except BaseException:  # a file that cannot be read stays out of this process's setting
        os.environ[USER_PRESETS_ENV] = given
        if not given:
            del os.environ[USER_PRESETS_ENV]
        raise


def _stamp(path: Path, fix: str) -> tuple[int, int, int]:
    """What the parsed file is cached by: a file rewritten (atomically: a new inode) or edited
    is read again, even within the clock's resolution."""
    try:
        if path.is_dir():
            raise SpecError(f"cannot read {path}: it is a folder, not a file; {fix}")
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):  # a device or a pipe: never read, never waited on
            raise SpecError(f"cannot read {path}: {not_regular(info.st_mode)}; {fix}")
        return info.st_mtime_ns, info.st_ino, info.st_size
    except OSError as error:
        raise SpecError(f"cannot read {path}: {error.strerror}; {fix}") from None


def load_presets(path: Path | None = None) -> Presets:
    """benchmarks.yaml (or `path`), with the user preset files' presets and suites added."""
    path = path or presets_path()
    stamp = _stamp(path, f"set {PRESETS_ENV} to the file")
    files = user_preset_files()
    if not files:
        return _parse(path, stamp)
    fix = f"check --presets and {USER_PRESETS_ENV}"
    return _merge(path, stamp, tuple((file, _stamp(file, fix)) for file in files))


def _read_yaml(path: Path) -> Any:
    try:
        text = read_user_text(path, fix="fix the file")
    except BiobenchError as error:  # a SpecError: the preset files are a spec's input
        raise SpecError(str(error)) from None
    try:
        return load_yaml(text) or {}
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        why = f" ({error.problem})" if isinstance(error, YamlRefused) else ""
        raise SpecError(f"{path}{where} is not valid YAML{why}; fix the file") from None


@cache
def _parse(path: Path, _version: tuple[int, int, int]) -> Presets:
    load_all()
    content = _read_yaml(path)
    _mapping(str(path), content, TOP_KEYS)
    run = _run_settings(f"{path}: defaults", content.get("defaults"))
    missing = [key for key in RUN_KEYS if key not in run]
    if missing:
        raise SpecError(f"{path}: defaults must set {', '.join(missing)}")
    presets = {
        name: _preset(f"{path}: presets.{name}", name, raw)
        for name, raw in (_mapping(f"{path}: presets", content.get("presets"))).items()
    }
    raw_suites = _suites(f"{path}: suites", content.get("suites"))
    done: dict[str, list[str]] = {}
    suites = {name: _expand(path, name, raw_suites, presets, (), done) for name in raw_suites}
    return Presets(path=path, run=run, presets=presets, suites=suites)


@cache
def _parse_user(
    path: Path, _version: tuple[int, int, int]
) -> tuple[dict[str, Preset], dict[str, Any]]:
    """A user preset file's presets (validated) and its suites (expanded once merged)."""
    load_all()
    content = _read_yaml(path)
    _mapping(str(path), content, USER_TOP_KEYS)
    presets = {
        name: replace(_preset(f"{path}: presets.{name}", name, raw), source=path)
        for name, raw in _mapping(f"{path}: presets", content.get("presets")).items()
    }
    return presets, _suites(f"{path}: suites", content.get("suites"))


def _where(config: Presets, preset: Preset | None) -> str:
    return str(preset.source) if preset and preset.source else config.path.name


@cache
def _merge(
    path: Path, stamp: tuple[int, int, int], files: tuple[tuple[Path, tuple[int, int, int]], ...]
) -> Presets:
    """benchmarks.yaml's presets and suites, then each user file's, every name once."""
    config = _parse(path, stamp)
    presets = dict(config.presets)
    suites: dict[str, Any] = dict(config.suites)
    owners = {name: config.path.name for name in suites}
    raw: list[tuple[Path, dict[str, Any]]] = []
    for file, file_stamp in files:
        mine, my_suites = _parse_user(file, file_stamp)
        for name, preset in mine.items():
            if name in presets:
                raise SpecError(
                    f"preset {name!r} is in both {_where(config, presets[name])} and {file}; "
                    "rename it in one of them"
                )
            presets[name] = preset
        for name, members in my_suites.items():
            if name in suites or name in presets:
                other = owners.get(name) or _where(config, presets.get(name))
                raise SpecError(
                    f"suite {name!r} of {file} is already a "
                    f"{'suite' if name in suites else 'preset'} of {other}; rename it"
                )
            suites[name], owners[name] = members, str(file)
        raw.append((file, my_suites))
    done = dict(config.suites)  # benchmarks.yaml's, expanded already
    for file, my_suites in raw:
        for name in my_suites:
            suites[name] = _expand(file, name, suites, presets, (), done)
    return Presets(
        path=config.path,
        run=config.run,
        presets=presets,
        suites=suites,
        files=tuple(file for file, _ in files),
    )


def save_user_preset(path: Path, name: str, entry: dict[str, Any]) -> None:
    """Add preset `name` (a benchmarks.yaml preset entry) to the user preset file `path`, or
    replace it there, keeping the file's other presets and suites; the file is created when
    absent and replaced atomically. Everything is checked first: the name, the entry, the file
    as it is, and that no other file or benchmarks.yaml already has the name; nothing is
    written otherwise. YAML comments in the file are not kept."""
    if not PRESET_NAME.fullmatch(name):
        raise SpecError(
            f"preset name {name!r} must start with a letter or digit and hold only letters, "
            "digits, '.', '_' and '-'"
        )
    builtin_path = presets_path()
    builtin = _parse(builtin_path, _stamp(builtin_path, f"set {PRESETS_ENV} to the file"))
    if name in builtin.presets or name in builtin.suites:
        raise SpecError(
            f"{name!r} is a built-in {'preset' if name in builtin.presets else 'suite'} of "
            f"{builtin.path.name}; choose another name"
        )
    config = load_presets()  # every file as it is: a broken one is said before anything else
    target = os.path.realpath(path)
    owner = config.presets.get(name)
    if owner is not None and owner.source and os.path.realpath(owner.source) != target:
        raise SpecError(f"preset {name!r} is already in {owner.source}; choose another name")
    exists = path.exists() or path.is_symlink()
    if exists:  # validated as it is: a file biobench cannot read back is not rewritten
        _parse_user(path, _stamp(path, "choose another --presets file"))
    content = _read_yaml(path) if exists else {}
    _preset(f"{path}: presets.{name}", name, entry)
    presets = dict(_mapping(f"{path}: presets", content.get("presets")))
    presets[name] = entry
    content = {**content, "presets": presets}
    header = (
        "# biobench user presets, read beside benchmarks.yaml (`biobench list presets`).\n"
        "# `biobench study NAME --preset NEW` rewrites this file: comments are not kept.\n"
    )
    text = header + yaml.safe_dump(content, sort_keys=False, allow_unicode=True, width=99)
    atomic_write(path, text, fix="choose another --presets file")


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
        try:
            out[name] = schema[name].parse(name, value)
        except SpecError as error:  # which file and preset, not only which value
            raise SpecError(f"{where}: {error}") from None
    return out


def _preset(where: str, name: str, raw: Any) -> Preset:
    if not isinstance(name, str):
        raise SpecError(f"{where}: a preset's name must be text, got {name!r}")
    raw = _mapping(where, raw, PRESET_KEYS)
    for key in ("algorithm", "architecture", "dataset"):
        if key not in raw:
            raise SpecError(f"{where}: missing {key!r}")
    try:
        algorithm = ALGORITHMS.canonical(str(raw["algorithm"]))
        architecture = ARCHITECTURES.canonical(str(raw["architecture"]))
        dataset = DATASETS.canonical(str(raw["dataset"]))
    except SpecError as error:
        raise SpecError(f"{where}: {error}") from None
    reference, tolerance = _reference(where, raw.get("reference"), raw.get("tolerance"))
    note = raw.get("note")
    if note is not None and not isinstance(note, str):
        raise SpecError(f"{where}.note must be text, got {note!r}")
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
        tolerance=tolerance,
        note=note,
        settings=_settings(
            f"{where}.settings",
            "every run",
            "setting",
            _run_settings_schema(),
            raw.get("settings"),
        ),
    )


def _run_settings_schema() -> dict[str, Any]:
    from biobench.spec.runspec import SETTINGS  # runspec reads presets: imported when needed

    return SETTINGS


def _reference(where: str, raw: Any, tolerance: Any) -> tuple[dict[str, float], float | None]:
    """A preset's reference errors and tolerance; a preset with no published number has
    neither (`check` says so), and a tolerance alone is a mistake, not a reference."""
    if raw is None:
        if tolerance is not None:
            raise SpecError(
                f"{where}: a tolerance needs a reference; add reference: {{test_top1: ...}} "
                "or drop tolerance"
            )
        return {}, None
    reference = {}
    for key, value in _mapping(f"{where}.reference", raw, REFERENCE_KEYS).items():
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 100:
            raise SpecError(
                f"{where}.reference.{key} must be an error in % (0-100), got {value!r}"
            )
        reference[key] = float(value)
    if "test_top1" not in reference:
        raise SpecError(f"{where}.reference must give test_top1")
    if tolerance is None:
        raise SpecError(f"{where}: missing 'tolerance' (points either way of the reference)")
    return reference, _tolerance(where, tolerance)


def _tolerance(where: str, value: Any) -> float:
    """Points either way of a reference: a finite number in (0, 100]. NaN compares false with
    everything, so a NaN (or infinite) tolerance would pass every measured error."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or not 0 < value <= 100
    ):
        raise SpecError(f"{where}.tolerance must be a number of points in (0, 100], got {value!r}")
    return float(value)


def _suites(where: str, raw: Any) -> dict[str, Any]:
    """A file's `suites:` mapping, each name text and each entry a non-empty list of names."""
    suites = _mapping(where, raw)
    for name, members in suites.items():
        if not isinstance(name, str):
            raise SpecError(f"{where}: a suite's name must be text, got {name!r}")
        if not isinstance(members, list) or not members:
            raise SpecError(f"{where}.{name} must be a non-empty list of presets or suites")
        for member in members:
            if not isinstance(member, str):
                raise SpecError(
                    f"{where}.{name} holds {member!r}; each entry must be the name of a preset "
                    "or a suite"
                )
    return suites


def _expand(
    path: Path,
    name: str,
    suites: dict[str, Any],
    presets: dict[str, Preset],
    seen: tuple[str, ...],
    done: dict[str, list[str]],
) -> list[str]:
    """Suite `name`'s presets, its suites expanded; each suite is expanded once (`done`), so
    suites that name each other many times over cost time linear in the file's size."""
    if name in done:
        return done[name]
    if name in seen:
        cycle = " -> ".join((*seen[seen.index(name) :], name))
        raise SpecError(f"{path}: suite {name!r} includes itself ({cycle}); break the cycle")
    members = suites[name]
    out: list[str] = []
    for member in members:
        if member in presets:
            out.append(member)
        elif member in suites:
            out.extend(_expand(path, member, suites, presets, (*seen, name), done))
        else:
            raise SpecError(
                f"{path}: suites.{name} names {member!r}, neither a preset nor a suite"
            )
    done[name] = list(dict.fromkeys(out))
    return done[name]

"""A search's study: its spec, Optuna's storage in the results database, create or join.

Optuna's tables live in the same database as biobench's runs (one URL to back up); biobench
records its own schema revision in `biobench_version` so that Optuna's `alembic_version` is
Optuna's alone (store/versions.py). The study's spec (the cell, epochs, space, sampler...) is
kept as a study user attribute: a worker joining the study with another spec is refused.
"""

from __future__ import annotations

import json
import logging
import time
import warnings
from dataclasses import asdict, dataclass, field
from typing import Any

import optuna
from sqlalchemy import event, inspect

from biobench.errors import BiobenchError, SpecError
from biobench.registry import ALGORITHMS
from biobench.retry import retry
from biobench.search.space import TrialSeededSampler, dist_from_dict
from biobench.spec import RunSpec, resolve
from biobench.spec.params import Dist
from biobench.store import Store
from biobench.store.store import heartbeat_interval, lost_after

SAMPLERS = ("random", "tpe")
PRUNERS = ("none", "median", "hyperband")
OBJECTIVES = ("test", "val")  # the best test, or validation, top-1 error over the epochs
SPEC_ATTR = "biobench"  # the study user attribute holding its spec
MAX_RETRY = 3  # how often a trial whose worker died is run again
ADOPT_WAIT_S = 10.0  # how long an empty study may lack its spec (its creator writing it)

# biobench says what happens to trials itself, in one line each (Optuna would add tracebacks).
optuna.logging.set_verbosity(logging.ERROR)
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
warnings.filterwarnings("ignore", category=FutureWarning, module="optuna")


@dataclass(frozen=True)
class StudySpec:
    """What every trial of a study shares; two workers of one study must agree on all of it."""

    algorithm: str
    architecture: str
    dataset: str
    epochs: int
    batch_size: int
    seed: int
    space: dict[str, dict[str, Any]]  # name -> Dist.to_dict()
    fixed: dict[str, str] = field(default_factory=dict)  # --set name=value
    sampler: str = "random"
    pruner: str = "none"
    objective: str = "test"
    screen_epochs: int | None = None
    promote: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def column(self) -> str:
        """The epoch column whose best (lowest) value is a trial's objective."""
        return "val_top1" if self.objective == "val" else "test_top1"

    def dists(self) -> dict[str, Dist]:
        return {name: dist_from_dict(data) for name, data in self.space.items()}

    def kinds(self) -> dict[str, type]:
        schema = ALGORITHMS.entry(self.algorithm).hparams
        return {name: schema[name].kind for name in self.space}

    def searched(self) -> list[str]:
        """The hyperparameters sampled per trial (not fixed)."""
        return [name for name, dist in self.dists().items() if not dist.fixed]

    def run_spec(self, values: dict[str, Any]) -> RunSpec:
        """The run of a trial with these sampled values."""
        overrides = {**self.fixed, **{name: _text(value) for name, value in values.items()}}
        return resolve(
            algorithm=self.algorithm,
            architecture=self.architecture,
            dataset=self.dataset,
            epochs=self.epochs,
            batch_size=self.batch_size,
            seed=self.seed,
            overrides=[f"{name}={value}" for name, value in overrides.items()],
        )

    def differences(self, other: dict[str, Any]) -> list[str]:
        mine = json.loads(json.dumps(self.to_dict()))
        return [
            f"{key}: {_show(other.get(key))} in the study, {_show(mine[key])} asked"
            for key in mine
            if mine[key] != other.get(key)
        ]


def _text(value: Any) -> str:
    return repr(value) if isinstance(value, float) else str(value)


def _show(value: Any) -> str:
    return json.dumps(value, sort_keys=True) if isinstance(value, dict | list) else str(value)


def make_spec(
    *,
    algorithm: str,
    architecture: str,
    dataset: str,
    epochs: int | None,
    batch_size: int | None,
    seed: int | None,
    overrides: list[str],
    space: dict[str, Dist] | None,
    space_loader: Any = None,
    sampler: str = "random",
    pruner: str = "none",
    objective: str = "test",
    screen_epochs: int | None = None,
    promote: int | None = None,
) -> StudySpec:
    """A study's spec from the command line; everything is checked here, before any write.
    `space_loader(params, algorithm)` reads --space once the rule's hyperparameters are known."""
    from biobench.spec.params import default_space
    from biobench.spec.runspec import parse_overrides

    for what, value, valid in (
        ("--sampler", sampler, SAMPLERS),
        ("--pruner", pruner, PRUNERS),
        ("--objective", objective, OBJECTIVES),
    ):
        if value not in valid:
            raise SpecError(f"unknown {what} {value!r}; choose one of: {', '.join(valid)}")
    base = resolve(
        algorithm=algorithm,
        architecture=architecture,
        dataset=dataset,
        epochs=epochs,
        batch_size=batch_size,
        seed=seed,
        overrides=overrides,
    )
    if objective == "val" and not base.setting("val_split"):
        raise SpecError(
            "--objective val needs a validation split: add --set val_split=N (N training "
            "images held out, the same for every trial)"
        )
    if (screen_epochs is None) != (promote is None):
        raise SpecError("screening takes both --screen-epochs E and --promote K")
    if screen_epochs is not None and not 1 <= screen_epochs < base.epochs:
        raise SpecError(
            f"--screen-epochs {screen_epochs} must be from 1 to below --epochs ({base.epochs})"
        )
    if promote is not None and promote < 1:
        raise SpecError(f"--promote {promote} must be at least 1")
    params = ALGORITHMS.entry(base.algorithm).hparams
    chosen = space_loader(params, base.algorithm) if space_loader else space
    written = chosen is not None  # --space (or a space given in Python), not the default
    chosen = default_space(params, base.hparams) if chosen is None else chosen
    fixed = parse_overrides(overrides)
    both = [name for name in chosen if name in fixed] if written else []
    if both:  # the default space yields to --set; a space the user wrote never silently does
        raise SpecError(
            f"--set {both[0]} fixes what --space searches ({', '.join(both)}); drop it from "
            "one of them"
        )
    return StudySpec(
        algorithm=base.algorithm,
        architecture=base.architecture,
        dataset=base.dataset,
        epochs=base.epochs,
        batch_size=base.batch_size,
        seed=base.seed,
        space={name: dist.to_dict() for name, dist in chosen.items() if name not in fixed},
        fixed={name: fixed[name] for name in sorted(fixed)},
        sampler=sampler,
        pruner=pruner,
        objective=objective,
        screen_epochs=screen_epochs,
        promote=promote,
    )


def objective_of(store: Any, run: Any, spec: StudySpec) -> float | None:
    """A trial's objective: its run's best (lowest) test or validation top-1 error."""
    if spec.column == "test_top1":
        return run.best_test_top1
    values = [row[spec.column] for row in store.epochs([run.id]) if row[spec.column] is not None]
    return min(values) if values else None


# -- Optuna's storage in the results database -------------------------------------------------


def _sqlite_like_biobench(engine: Any) -> None:
    """Optuna's SQLite connections as biobench's own: a busy timeout and writers that take the
    lock up front (BEGIN IMMEDIATE), so workers sharing one file wait instead of failing."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        dbapi_connection.execute("PRAGMA busy_timeout=30000")

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    engine.dispose()  # connections made so far lack the hooks


def storage(store: Store) -> optuna.storages.RDBStorage:
    """Optuna's RDB storage on the store's database, with heartbeats: a trial whose worker
    stops beating for as long as biobench takes to call a run lost is failed and retried."""
    url = store.url.render_as_string(hide_password=False)
    beat = max(1, round(heartbeat_interval()))
    callback_kw = (
        "heartbeat_stale_trial_callback"
        if hasattr(optuna.storages, "RetryHeartbeatStaleTrialCallback")
        else "failed_trial_callback"
    )
    options = {
        "heartbeat_interval": beat,
        "grace_period": max(2 * beat, round(lost_after())),
        callback_kw: retry_callback(),
    }
    kwargs = {"connect_args": {"timeout": 30}} if store.is_sqlite else {}

    def make() -> optuna.storages.RDBStorage:
        made = optuna.storages.RDBStorage(url, engine_kwargs=kwargs, **options)
        if store.is_sqlite:
            _sqlite_like_biobench(made.engine)
        return made

    try:  # workers starting together on a new PostgreSQL race to create Optuna's tables
        return retry(make, retry_on=_is_race, delay=0.2, max_delay=2.0, attempts=8, jitter=True)
    except Exception as error:
        raise BiobenchError(
            f"cannot open Optuna's storage in {store.display_url}: {type(error).__name__}: "
            f"{str(error).splitlines()[0] if str(error) else ''}"
        ) from None


def _is_race(error: BaseException) -> bool:
    """Another worker creating the same tables, or stamping Optuna's schema version, first:
    PostgreSQL says "already exists" or "duplicate key", SQLite "UNIQUE constraint failed"
    (two workers inserting alembic_version's one row) or "database is locked"."""
    text = str(error).lower()
    races = ("already exists", "duplicate key", "unique constraint failed", "database is locked")
    return any(key in text for key in races)


def retry_callback() -> Any:
    callback_class = getattr(
        optuna.storages,
        "RetryHeartbeatStaleTrialCallback",
        optuna.storages.RetryFailedTrialCallback,
    )
    return callback_class(max_retry=MAX_RETRY)


def has_studies(store: Store) -> bool:
    with store._read_engine.connect() as connection:
        return inspect(connection).has_table("studies")


def sampler_for(spec: StudySpec) -> optuna.samplers.BaseSampler:
    random = TrialSeededSampler(spec.seed)
    if spec.sampler == "random":
        return random
    tpe = optuna.samplers.TPESampler(seed=spec.seed)
    if hasattr(tpe, "_random_sampler"):  # its startup trials, as reproducible as random's
        tpe._random_sampler = random
    return tpe


def pruner_for(spec: StudySpec) -> optuna.pruners.BasePruner:
    if spec.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=4)
    if spec.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=spec.epochs)
    return optuna.pruners.NopPruner()


def open_study(name: str, spec: StudySpec, store: Store) -> optuna.Study:
    """Create study `name` with `spec`, or join it if it exists with the same spec. A study
    another tool made in the database (no biobench spec) is refused, never adopted."""
    options = {"storage": storage(store), "sampler": sampler_for(spec), "pruner": pruner_for(spec)}
    try:
        study = optuna.create_study(study_name=name, direction="minimize", **options)
    except optuna.exceptions.DuplicatedStudyError:
        study = optuna.load_study(study_name=name, **options)
    else:
        study.set_user_attr(SPEC_ATTR, spec.to_dict())
        return study
    stored = _stored_spec(study)
    if stored is None:
        raise BiobenchError(
            f"study {name!r} in {store.display_url} was not made by `biobench search`; "
            "pass another --study"
        )
    differences = spec.differences(stored)
    if differences:
        raise BiobenchError(
            f"study {name!r} exists with another spec ({'; '.join(differences)}); join it "
            "with the same options, or pass another --study"
        )
    return study


def _stored_spec(study: optuna.Study) -> dict[str, Any] | None:
    """The study's biobench spec. A worker that has just created the study writes it a
    moment later, before any trial: an empty study is given ADOPT_WAIT_S to show it."""
    deadline = time.monotonic() + ADOPT_WAIT_S
    while True:
        stored = study.user_attrs.get(SPEC_ATTR)
        if stored is not None or study.get_trials(deepcopy=False):
            return stored
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.1)


def load(name: str, store: Store) -> tuple[optuna.Study, StudySpec]:
    """An existing study and its spec; unknown names are a BiobenchError."""
    names = study_names(store)
    if name not in names:
        raise BiobenchError(
            f"no study {name!r} in {store.display_url}; `biobench studies` lists them"
        )
    study = optuna.load_study(study_name=name, storage=storage(store))
    stored = study.user_attrs.get(SPEC_ATTR)
    if stored is None:
        raise BiobenchError(f"study {name!r} was not made by `biobench search`")
    return study, StudySpec(**stored)


def study_names(store: Store) -> list[str]:
    if not has_studies(store):
        return []
    return [s.study_name for s in optuna.get_all_study_summaries(storage(store))]

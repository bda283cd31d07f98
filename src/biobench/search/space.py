"""A search's space: the distribution of every searched hyperparameter, checked and sampled.

The default is the rule's own (`biobench.spec.params.default_space`: each HParam's `search`,
else the paper's Table 4 by the hyperparameter's role). `--space FILE` replaces it with a YAML
mapping, one entry per hyperparameter, read with yaml.safe_load and checked against the rule's
HParams before anything is written:

    lr: {low: 1e-5, high: 3e-4, log: true}   # a range, sampled on a log scale
    sigma: {low: 0.01, high: 0.3}              # a range, sampled uniformly
    beta2: {choices: [0.99, 0.999]}            # one of a list
    beta1: 0.9                                 # a fixed value

Hyperparameters the space leaves out take the values a plain `biobench run` would give them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import optuna
import yaml

from biobench.errors import BiobenchError, SpecError
from biobench.files import YamlRefused, load_yaml, read_user_text
from biobench.spec.params import Dist, HParam

_KEYS = {"low", "high", "log", "choices"}


def load_space(path: Path, params: Mapping[str, HParam], algorithm: str) -> dict[str, Dist]:
    """The space a YAML file declares, each entry checked against `params`; a SpecError naming
    the file and the fix otherwise."""
    where = f"space file {path}"
    try:
        text = read_user_text(path, fix="pass --space FILE.yaml", what="space file")
    except BiobenchError as error:  # a SpecError, as every other fault of the space
        raise SpecError(str(error)) from None
    try:
        raw = load_yaml(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = f" (line {mark.line + 1})" if mark is not None else ""
        why = f": {error.problem}" if isinstance(error, YamlRefused) else ""
        raise SpecError(
            f"{where} is not valid YAML{line}{why}; see the docs' 'Tune a rule with search'"
        ) from None
    if not isinstance(raw, dict) or not raw:
        raise SpecError(
            f"{where} must map hyperparameter names to ranges, e.g. "
            "`lr: {low: 1e-5, high: 3e-4, log: true}`"
        )
    space = {}
    for name, entry in raw.items():
        if name not in params:
            raise SpecError(
                f"{where}: {algorithm} has no hyperparameter {name!r}; valid: {', '.join(params)}"
            )
        space[name] = _entry(where, name, entry, params[name])
    return space


def _entry(where: str, name: str, entry: Any, param: HParam) -> Dist:
    if not isinstance(entry, dict):  # a fixed value
        entry = {"choices": [entry]}
    unknown = set(map(str, entry)) - _KEYS
    if unknown:
        raise SpecError(
            f"{where}: {name} has unknown key(s) {', '.join(sorted(unknown))}; use low, high, "
            "log or choices"
        )
    choices = entry.get("choices")
    if choices is not None and not isinstance(choices, list):
        raise SpecError(f"{where}: {name}'s choices must be a list, e.g. [0.99, 0.999]")
    log = entry.get("log", False)
    if not isinstance(log, bool):
        raise SpecError(f"{where}: {name}'s log must be true or false")
    dist = Dist(
        low=entry.get("low"),
        high=entry.get("high"),
        log=log,
        choices=tuple(choices) if choices is not None else None,
    )
    try:
        return dist.check(name, param)
    except SpecError as error:
        raise SpecError(f"{where}: {error}") from None


def dist_from_dict(data: Mapping[str, Any]) -> Dist:
    if "choices" in data:
        return Dist(choices=tuple(data["choices"]))
    return Dist(low=data["low"], high=data["high"], log=bool(data.get("log")))


def suggest(trial: optuna.Trial, space: Mapping[str, Dist], kinds: Mapping[str, type]) -> dict:
    """Sample every hyperparameter of `space` for `trial` (fixed ones are not sampled)."""
    values: dict[str, Any] = {}
    for name, dist in space.items():
        if dist.fixed:
            values[name] = dist.choices[0]  # type: ignore[index]
        elif dist.choices is not None:
            values[name] = trial.suggest_categorical(name, list(dist.choices))
        elif kinds[name] is int:
            values[name] = trial.suggest_int(name, int(dist.low), int(dist.high), log=dist.log)
        else:
            values[name] = trial.suggest_float(name, dist.low, dist.high, log=dist.log)
    return values


class TrialSeededSampler(optuna.samplers.RandomSampler):
    """Random search whose draws depend on (seed, trial number, hyperparameter) only.

    A RandomSampler seeded alike in several workers would hand each of them the same
    sequence, so workers sharing a study would repeat each other's configurations. Drawing
    each value from its own generator instead makes trial n sample the same configuration
    whichever worker runs it, and a seeded search reproducible with any number of workers.
    """

    def __init__(self, seed: int) -> None:
        super().__init__(seed=seed)
        self._base_seed = seed

    def sample_independent(
        self,
        study: optuna.Study,
        trial: optuna.trial.FrozenTrial,
        param_name: str,
        param_distribution: optuna.distributions.BaseDistribution,
    ) -> Any:
        key = f"{self._base_seed}:{trial.number}:{param_name}".encode()
        seed = int.from_bytes(hashlib.sha256(key).digest()[:4], "little")
        return optuna.samplers.RandomSampler(seed=seed).sample_independent(
            study, trial, param_name, param_distribution
        )

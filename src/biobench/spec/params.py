"""Typed, range-checked settings: an algorithm's hyperparameters, a dataset's options.

`--set name=value` strings are parsed here, strictly: a wrong type, a value out of range or not
among the choices is an error naming what the setting takes.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from biobench.errors import SpecError

# The largest seed, epoch count, batch size or run id: the results database keeps them in
# INTEGER columns, which are 32-bit on PostgreSQL. Larger values are refused up front, before
# anything trains, rather than failing when the run's row is written.
LARGEST_INT = 2**31 - 1

# The only spellings of numbers a setting accepts: ASCII decimal literals. Python's int() and
# float() also read "1_000" and full-width or other Unicode digits, which the recorded spec's
# readers (other tools, other languages, people) would not take for the same number.
DECIMAL = {
    int: re.compile(r"[+-]?[0-9]+"),
    float: re.compile(
        r"[+-]?(?:(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|inf|infinity|nan)",
        re.IGNORECASE,
    ),
}


@dataclass(frozen=True)
class HParam:
    """A hyperparameter's type, allowed range and meaning; parses `--set` strings strictly.

    A number is read only from an ASCII decimal literal: `10`, `-3`, `0.001`, `3e-4`, `1E+3`
    (and `inf`/`nan`, refused as not finite). `1_000`, full-width or other non-ASCII digits,
    hex and blanks inside are refused as "not a float"/"not a int". An int must fit in 64 bits
    (torch's integers). A bool is true/yes/1 or false/no/0, in any case.
    """

    kind: type
    help: str
    low: float | None = None  # inclusive unless low_open
    high: float | None = None  # inclusive unless high_open
    low_open: bool = False
    high_open: bool = False
    choices: tuple[Any, ...] | None = None
    default: Any = None  # what a run takes when neither a preset nor --set gives a value
    # What `biobench search` samples it from, when the rule declares it; else SEARCH_ROLES by
    # the hyperparameter's name (the paper's Table 4), else it is not searched.
    search: Dist | None = None
    # (other, values): the setting means something only while hyperparameter `other` is one
    # of `values` (beta1 with optimizer adam); set otherwise, it is refused (see `inapplicable`).
    applies: tuple[str, tuple[Any, ...]] | None = None

    def __post_init__(self) -> None:
        if self.default is not None:  # a declared default must itself be valid
            object.__setattr__(self, "default", self.parse("default", self.default))

    def parse(self, name: str, raw: Any) -> Any:
        value = raw
        if isinstance(raw, str) and self.kind is bool:
            value = {
                "true": True,
                "yes": True,
                "1": True,
                "false": False,
                "no": False,
                "0": False,
            }.get(raw.strip().lower(), raw)
        elif isinstance(raw, str):
            pattern = DECIMAL.get(self.kind)
            if pattern is not None and not pattern.fullmatch(raw):
                raise self._refuse(name, raw, f"is not a {self.kind.__name__}")
            try:
                value = self.kind(raw)
            except ValueError:
                raise self._refuse(name, raw, f"is not a {self.kind.__name__}") from None
        elif self.kind is float and isinstance(raw, int) and not isinstance(raw, bool):
            value = float(raw)
        if not isinstance(value, self.kind) or isinstance(value, bool) != (self.kind is bool):
            raise self._refuse(name, raw, f"is not a {self.kind.__name__}")
        if isinstance(value, int) and value.bit_length() > 63:
            raise self._refuse(name, raw, "does not fit in 64 bits")
        if isinstance(value, float) and not math.isfinite(value):
            raise self._refuse(name, raw, "is not finite")
        if not self._in_range(value):
            raise self._refuse(name, raw, "is out of range")
        if self.choices is not None and value not in self.choices:
            raise self._refuse(name, raw, "is not allowed")
        return value

    def _refuse(self, name: str, raw: Any, problem: str) -> SpecError:
        return SpecError(f"{name}={raw!r} {problem}; {self.describe(name)}")

    def _in_range(self, value: Any) -> bool:
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        return not (
            self.high is not None and (value >= self.high if self.high_open else value > self.high)
        )

    def domain(self) -> str:
        """What values it takes: "a float in (0, inf)", "one of parallel, alternating"."""
        if self.choices is not None:
            return f"one of {', '.join(map(str, self.choices))}"
        lo = "" if self.low is None else f"{'(' if self.low_open else '['}{self.low:g}"
        hi = "" if self.high is None else f"{self.high:g}{')' if self.high_open else ']'}"
        span = f" in {lo or '(-inf'}, {hi or 'inf)'}" if lo or hi else ""
        return f"a {self.kind.__name__}{span}"

    def describe(self, name: str) -> str:
        return f"{name} takes {self.domain()} ({self.help})"

    def shown_default(self) -> str:
        if self.default is None:
            return "-"
        return f"{self.default:g}" if isinstance(self.default, float) else str(self.default)


def inapplicable(
    params: Mapping[str, HParam], values: Mapping[str, Any], given: Iterable[str]
) -> str | None:
    """Why one of the `given` hyperparameters means nothing with the others' `values` (a line
    naming it, what it needs and the fix), or None: a setting that would be ignored is refused,
    never silently dropped."""
    for name in given:
        rule = params[name].applies if name in params else None
        if rule is None or values.get(rule[0]) in rule[1]:
            continue
        other, allowed = rule
        return (
            f"{name}={values[name]} applies to {other}={'/'.join(map(str, allowed))} only "
            f"(this run's {other} is {values.get(other)}); add --set {other}={allowed[0]} or "
            f"drop {name}"
        )
    return None


def with_defaults(params: Mapping[str, HParam], **defaults: Any) -> dict[str, HParam]:
    """A copy of `params` with other defaults, e.g. `with_defaults(ADAM, lr=3e-4)`."""
    unknown = set(defaults) - set(params)
    if unknown:
        raise KeyError(f"no such hyperparameter(s): {', '.join(sorted(unknown))}")
    return {
        name: replace(param, default=defaults[name]) if name in defaults else param
        for name, param in params.items()
    }


@dataclass(frozen=True)
class Dist:
    """A hyperparameter's search distribution: a range [low, high] sampled uniformly (on a log
    scale with `log`), or a list of `choices` sampled uniformly. One choice fixes the value."""

    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: tuple[Any, ...] | None = None

    def check(self, name: str, param: HParam) -> Dist:
        """This distribution with its values parsed by `param`; a bound or choice `param`
        refuses, an empty range or a log range reaching 0 are SpecErrors."""
        if self.choices is not None:
            if self.low is not None or self.high is not None or self.log:
                raise SpecError(f"{name}: give choices or low/high, not both")
            if not self.choices:
                raise SpecError(f"{name}: choices is empty; list at least one value")
            choices = tuple(param.parse(name, value) for value in self.choices)
            if len(set(choices)) != len(choices):
                raise SpecError(f"{name}: choices {list(self.choices)} repeat a value")
            return replace(self, choices=choices)
        if self.low is None or self.high is None:
            raise SpecError(f"{name}: give both low and high, or choices")
        if param.kind not in (int, float):
            raise SpecError(f"{name} is a {param.kind.__name__}: give choices, not a range")
        low, high = param.parse(name, self.low), param.parse(name, self.high)
        if not low < high:
            raise SpecError(f"{name}: low {low:g} is not below high {high:g}")
        if self.log and low <= 0:
            raise SpecError(f"{name}: a log range needs low > 0, got {low:g}")
        return replace(self, low=low, high=high)

    @property
    def fixed(self) -> bool:
        return self.choices is not None and len(self.choices) == 1

    def to_dict(self) -> dict[str, Any]:
        if self.choices is not None:
            return {"choices": list(self.choices)}
        return {"low": self.low, "high": self.high, "log": self.log}

    def describe(self) -> str:
        if self.choices is not None:
            return (
                "{"
                + ", ".join(f"{c:g}" if isinstance(c, float) else str(c) for c in self.choices)
                + "}"
            )
        return f"[{self.low:g}, {self.high:g}]{' log' if self.log else ''}"


# The paper's search space (Table 4), by role: every rule whose hyperparameters carry these
# names is searched over it unless it declares its own `search`.
_ADAM_SPACE = {
    "lr": Dist(1e-5, 3e-4, log=True),
    "beta1": Dist(choices=(0.9,)),
    "beta2": Dist(choices=(0.99, 0.999)),
    "eps": Dist(choices=(1e-4, 1e-6, 1e-8)),
}
SEARCH_ROLES: dict[str, Dist] = {
    **_ADAM_SPACE,
    **{f"inverse_{name}": dist for name, dist in _ADAM_SPACE.items()},
    "alpha": Dist(0.01, 0.2),
    "sigma": Dist(0.01, 0.3),
}


def default_space(
    params: Mapping[str, HParam], values: Mapping[str, Any] | None = None
) -> dict[str, Dist]:
    """The search space of a rule: each hyperparameter's own `search`, else its role's; with
    the run's `values`, less what they make inapplicable (no beta2 under optimizer=sgd)."""
    space = {}
    for name, param in params.items():
        dist = param.search or SEARCH_ROLES.get(name)
        if dist is not None and not (values and inapplicable(params, values, [name])):
            space[name] = dist.check(name, param)
    return space

"""Typed, range-checked settings: an algorithm's hyperparameters, a dataset's options.

`--set name=value` strings are parsed here, strictly: a wrong type, a value out of range or not
among the choices is an error naming what the setting takes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from biobench.errors import SpecError


@dataclass(frozen=True)
class HParam:
    """A hyperparameter's type, allowed range and meaning; parses `--set` strings strictly."""

    kind: type
    help: str
    low: float | None = None  # inclusive unless low_open
    high: float | None = None  # inclusive unless high_open
    low_open: bool = False
    high_open: bool = False
    choices: tuple[Any, ...] | None = None
    default: Any = None  # what a run takes when neither a preset nor --set gives a value

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
            try:
                value = self.kind(raw) if self.kind is not float else float(raw)
            except ValueError:
                raise SpecError(
                    f"{name}={raw!r} is not a {self.kind.__name__}; {self.describe(name)}"
                ) from None
        elif self.kind is float and isinstance(raw, int) and not isinstance(raw, bool):
            value = float(raw)
        if not isinstance(value, self.kind) or isinstance(value, bool) != (self.kind is bool):
            raise SpecError(f"{name}={raw!r} is not a {self.kind.__name__}; {self.describe(name)}")
        if isinstance(value, float) and not math.isfinite(value):
            raise SpecError(f"{name}={raw!r} is not finite; {self.describe(name)}")
        if not self._in_range(value):
            raise SpecError(f"{name}={raw!r} is out of range; {self.describe(name)}")
        if self.choices is not None and value not in self.choices:
            raise SpecError(f"{name}={raw!r} is not allowed; {self.describe(name)}")
        return value

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


def with_defaults(params: Mapping[str, HParam], **defaults: Any) -> dict[str, HParam]:
    """A copy of `params` with other defaults, e.g. `with_defaults(ADAM, lr=3e-4)`."""
    unknown = set(defaults) - set(params)
    if unknown:
        raise KeyError(f"no such hyperparameter(s): {', '.join(sorted(unknown))}")
    return {
        name: replace(param, default=defaults[name]) if name in defaults else param
        for name, param in params.items()
    }

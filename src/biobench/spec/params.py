"""Typed, range-checked settings: an algorithm's hyperparameters, a dataset's options.

`--set name=value` strings are parsed here, strictly: a wrong type, a value out of range or not
among the choices is an error naming what the setting takes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from biobench.errors import SpecError

_BOOLS = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}


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

    def describe(self, name: str) -> str:
        lo = "" if self.low is None else f"{'(' if self.low_open else '['}{self.low:g}"
        hi = "" if self.high is None else f"{self.high:g}{')' if self.high_open else ']'}"
        span = f" in {lo or '(-inf'}, {hi or 'inf)'}" if lo or hi else ""
        if self.choices is not None:
            return f"{name} takes one of {', '.join(map(str, self.choices))} ({self.help})"
        return f"{name} takes a {self.kind.__name__}{span} ({self.help})"

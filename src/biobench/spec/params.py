"""Typed, range-checked settings: an algorithm's hyperparameters, a dataset's options.

`--set name=value` strings are parsed here, strictly: a wrong type, a value out of range or not
among the choices is an error naming what the setting takes.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
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


def with_defaults(params: Mapping[str, HParam], **defaults: Any) -> dict[str, HParam]:
    """A copy of `params` with other defaults, e.g. `with_defaults(ADAM, lr=3e-4)`."""
    unknown = set(defaults) - set(params)
    if unknown:
        raise KeyError(f"no such hyperparameter(s): {', '.join(sorted(unknown))}")
    return {
        name: replace(param, default=defaults[name]) if name in defaults else param
        for name, param in params.items()
    }

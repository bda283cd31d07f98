"""Name -> implementation registries for algorithms, architectures and datasets.

Entries register themselves with a decorator where they are defined, so adding an algorithm,
an architecture or a dataset is one new module and nothing else changes:

    @ALGORITHMS.register("bp")
    class Backprop(Learner): ...
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from biobench.errors import SpecError

T = TypeVar("T")


class Registry(Generic[T]):
    """Names (and aliases) mapped to entries; unknown or duplicate names are errors."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}
        self._aliases: dict[str, str] = {}

    def register(self, name: str, *, aliases: tuple[str, ...] = ()) -> Callable[[T], T]:
        def add(entry: T) -> T:
            for key in (name, *aliases):
                if key in self._entries or key in self._aliases:
                    raise ValueError(f"{self.kind} {key!r} is registered twice")
            self._entries[name] = entry
            for alias in aliases:
                self._aliases[alias] = name
            return entry

        return add

    def canonical(self, name: str) -> str:
        """The registered name for `name` or one of its aliases."""
        key = self._aliases.get(name, name)
        if key not in self._entries:
            raise SpecError(
                f"unknown {self.kind} {name!r}; choose one of: {', '.join(self.names())}"
            )
        return key

    def get(self, name: str) -> T:
        return self._entries[self.canonical(name)]

    def names(self) -> list[str]:
        return sorted(self._entries)

    def aliases(self, name: str) -> list[str]:
        return sorted(alias for alias, target in self._aliases.items() if target == name)

    def __contains__(self, name: object) -> bool:
        return name in self._entries or name in self._aliases

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())


ALGORITHMS: Registry = Registry("algorithm")
ARCHITECTURES: Registry = Registry("architecture")
DATASETS: Registry = Registry("dataset")


def load_all() -> None:
    """Import the packages whose modules fill the registries (they need torch)."""
    for package in ("biobench.learners", "biobench.archs", "biobench.data"):
        importlib.import_module(package)

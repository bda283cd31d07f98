"""Self-describing registries of learning rules, architectures and datasets.

An entry carries everything the rest of biobench needs to know about it: its name and aliases,
the label and order it takes in tables, its family and the networks it can train (learning
rules), which learning-rule families and which input shapes it supports and whether it is a
stack of layers (architectures), its input shape, classes, settings and run defaults
(datasets). Nothing elsewhere is keyed by an entry's name, so adding one is one module:

    @ALGORITHMS.register("bp", aliases=("backprop",), label="BP", family="backprop")
    class Backprop(Learner): ...

Other packages add entries through entry points (groups `biobench.learners`,
`biobench.architectures`, `biobench.datasets`); `load_all()` imports them after the built-ins.
An entry point may name a registered object (its module registers it on import) or an
unregistered one, which is registered under the entry point's name with the metadata it carries
as attributes (a Learner subclass's `label`, `family`, `order`, `hparams`). A plugin that fails
to import is reported in one line and left out; the built-ins keep working.

No torch here: the CLI and the spec resolver read the registries' declarations cheaply.
"""

from __future__ import annotations

import dataclasses
import importlib
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from biobench.errors import SpecError
from biobench.text import printable

if TYPE_CHECKING:
    from biobench.spec.params import HParam

# Learning-rule families, in the order tables group them ("other" always last). A module that
# brings a family of its own (biobench's predictive coding, a plugin's) adds it with
# `register_family` before registering its rules.
FAMILIES = {
    "backprop": "backprop",
    "feedback": "feedback alignment",
    "target-propagation": "target propagation",
    "other": "other rules",
}


def register_family(name: str, title: str) -> None:
    """Add a learning-rule family: `name` is what rules declare as their `family`, `title` how
    tables head its group. Tables group it after the families already registered, before
    "other". Registering a name again with the same title does nothing; with another, it is
    an error (two packages would be claiming one family for different rules)."""
    if FAMILIES.get(name, title) != title:
        raise ValueError(f"family {name!r} is already registered as {FAMILIES[name]!r}")
    if name in FAMILIES:
        return
    other = FAMILIES.pop("other")
    FAMILIES[name] = title
    FAMILIES["other"] = other


# Which networks a learning rule can train (its `networks`): every rule trains a stack of
# layers, the only kind its public API (`local_forward`, `transpose`, `net.layers`) reaches; a
# rule that trains through autograd with each op's backward replaced (BP, the feedback family
# on resnet20) trains any network of conv and dense ops.
NETWORKS = {
    "layered": "layered networks (a stack of layers: fc, lc, conv)",
    "any": "any network of conv and dense ops",
}


@dataclass(frozen=True)
class DataInfo:
    """What an architecture needs to know about its dataset: per-sample shape and classes."""

    name: str
    input_shape: tuple[int, int, int]  # (C, H, W)
    num_classes: int


@dataclass(frozen=True)
class Entry:
    name: str
    target: Any  # the Learner class, the network builder, the dataset loader
    aliases: tuple[str, ...] = ()
    label: str = ""  # how tables name it (default: the name)
    order: int = 1000  # where tables put it (then by name)
    help: str = ""  # one line (default: the first line of the target's docstring)
    origin: str = "biobench"  # or the distribution a plugin came from

    @property
    def display(self) -> str:
        return self.label or self.name


@dataclass(frozen=True)
class AlgorithmEntry(Entry):
    family: str = "other"  # one of FAMILIES
    networks: str = "layered"  # one of NETWORKS

    @property
    def hparams(self) -> Mapping[str, HParam]:
        return self.target.hparams


@dataclass(frozen=True)
class ArchitectureEntry(Entry):
    # Learning-rule families this network can be trained with (None: every family).
    families: tuple[str, ...] | None = None
    # Why the network cannot be built for a dataset (None: it can); checked before data loads.
    refuses: Callable[[DataInfo], str | None] | None = None
    # A stack of layers (a `Stack`, whose `layers` every rule walks); else only the rules whose
    # `networks` is "any" can train it.
    layered: bool = True

    def supports(self, algorithm: AlgorithmEntry) -> bool:
        """Whether the rule's family may train this network, and the rule can."""
        family = self.families is None or algorithm.family in self.families
        return family and (self.layered or algorithm.networks == "any")


@dataclass(frozen=True)
class DatasetEntry(Entry):
    input_shape: tuple[int, int, int] | None = None  # known before loading, when declared
    num_classes: int | None = None
    settings: Mapping[str, HParam] = field(default_factory=dict)  # --set name=value options
    epochs: int | None = None  # run defaults for this dataset (else benchmarks.yaml defaults)
    batch_size: int | None = None
    # Training images in the full dataset, where known before loading: what `preflight`
    # projects a preset's full protocol from (epochs x steps per epoch).
    train_size: int | None = None

    @property
    def info(self) -> DataInfo | None:
        if self.input_shape is None or self.num_classes is None:
            return None
        return DataInfo(self.name, tuple(self.input_shape), self.num_classes)  # type: ignore[arg-type]


E = TypeVar("E", bound=Entry)
_BASE_FIELDS = {"name", "target", "aliases", "origin"}


class Registry(Generic[E]):
    """Names (and aliases) mapped to entries; unknown or duplicate names are errors."""

    def __init__(self, kind: str, entry_type: type[E], group: str) -> None:
        self.kind = kind
        self.entry_type = entry_type
        self.group = group  # the entry-point group other packages register through
        self._entries: dict[str, E] = {}
        self._aliases: dict[str, str] = {}
        self.broken: dict[str, str] = {}  # plugin name -> why it failed to load

    def register(self, name: str, *, aliases: tuple[str, ...] = (), **meta: Any) -> Callable:
        """Decorator: register the decorated object under `name`, with metadata given here or
        carried by the object as attributes of the same names."""

        def add(target: Any) -> Any:
            self.add(self.make_entry(name, target, aliases=aliases, **meta))
            return target

        return add

    def make_entry(self, name: str, target: Any, **given: Any) -> E:
        names = {f.name for f in dataclasses.fields(self.entry_type)}
        unknown = set(given) - names
        if unknown:
            raise TypeError(f"{self.kind} {name!r}: unknown metadata {sorted(unknown)}")
        values = dict(given)
        for meta in names - _BASE_FIELDS - set(given):
            if hasattr(target, meta):  # e.g. a Learner subclass's `label` or `family`
                values[meta] = getattr(target, meta)
        if not values.get("help"):
            doc = (getattr(target, "__doc__", None) or "").strip()
            values["help"] = doc.splitlines()[0] if doc else ""
        return self.entry_type(name=name, target=target, **values)

    def add(self, entry: E) -> None:
        for key in (entry.name, *entry.aliases):
            if key in self._entries or key in self._aliases:
                raise ValueError(f"{self.kind} {key!r} is registered twice")
        self._entries[entry.name] = entry
        for alias in entry.aliases:
            self._aliases[alias] = entry.name

    def canonical(self, name: str) -> str:
        """The registered name for `name` or one of its aliases."""
        key = self._aliases.get(name, name)
        if key not in self._entries:
            if key in self.broken:
                raise SpecError(
                    f"{self.kind} {name!r} is a plugin that failed to load: {self.broken[key]}"
                )
            raise SpecError(
                f"unknown {self.kind} {name!r}; choose one of: {', '.join(self.names())}"
            )
        return key

    def entry(self, name: str) -> E:
        return self._entries[self.canonical(name)]

    def get(self, name: str) -> Any:
        """The registered object itself (learner class, builder, loader)."""
        return self.entry(name).target

    def entries(self) -> list[E]:
        """Every entry, in table order."""
        return sorted(self._entries.values(), key=lambda e: (e.order, e.name))

    def names(self) -> list[str]:
        return sorted(self._entries)

    def aliases(self, name: str) -> list[str]:
        return sorted(alias for alias, target in self._aliases.items() if target == name)

    def find(self, target: Any) -> E | None:
        return next((e for e in self._entries.values() if e.target is target), None)

    def __contains__(self, name: object) -> bool:
        return name in self._entries or name in self._aliases

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())


ALGORITHMS: Registry[AlgorithmEntry] = Registry("algorithm", AlgorithmEntry, "biobench.learners")
ARCHITECTURES: Registry[ArchitectureEntry] = Registry(
    "architecture", ArchitectureEntry, "biobench.architectures"
)
DATASETS: Registry[DatasetEntry] = Registry("dataset", DatasetEntry, "biobench.datasets")
REGISTRIES = (ALGORITHMS, ARCHITECTURES, DATASETS)
_BUILTIN = ("biobench.learners", "biobench.archs", "biobench.data")
_loaded: list[bool] = []


def load_all() -> None:
    """Import the built-in entries, then every installed plugin's (once per process)."""
    if _loaded:
        return
    _loaded.append(True)
    for package in _BUILTIN:
        importlib.import_module(package)
    for registry in REGISTRIES:
        for point in entry_points(group=registry.group):
            _load_plugin(registry, point)


def _load_plugin(registry: Registry, point: Any) -> None:
    origin = point.dist.name if getattr(point, "dist", None) else point.value
    try:
        target = point.load()
        if registry.find(target) is None:  # not registered by its own module: by the point
            entry = (
                target
                if isinstance(target, registry.entry_type)
                else registry.make_entry(point.name, target, origin=origin)
            )
            _validate(registry, entry)
            registry.add(dataclasses.replace(entry, origin=origin))
    except Exception as error:  # a broken plugin must not take the built-ins down with it
        message = f"{type(error).__name__}: {error}".splitlines()[0]
        registry.broken[point.name] = f"{point.value} ({message})"
        print(
            printable(
                f"warning: {registry.kind} plugin {point.name!r} from {origin} failed to load "
                f"({message}); biobench goes on without it"
            ),
            file=sys.stderr,
        )


def _validate(registry: Registry, entry: Entry) -> None:
    if registry is ALGORITHMS:
        from biobench.learners.base import Learner

        if not (isinstance(entry.target, type) and issubclass(entry.target, Learner)):
            raise TypeError(f"{entry.target!r} is not a subclass of biobench.Learner")
    elif not callable(entry.target):
        raise TypeError(f"{entry.target!r} is not callable")
    if isinstance(entry, AlgorithmEntry) and entry.family not in FAMILIES:
        raise TypeError(f"family {entry.family!r} is not one of {', '.join(FAMILIES)}")
    if isinstance(entry, AlgorithmEntry) and entry.networks not in NETWORKS:
        raise TypeError(f"networks {entry.networks!r} is not one of {', '.join(NETWORKS)}")

"""`biobench list`: what biobench knows: presets, suites and the registries' entries."""

from __future__ import annotations

from enum import Enum
from typing import Annotated, Any

import typer

from biobench.cli.app import PresetsOption, app, console, handle_errors, printable


class ListWhat(str, Enum):
    presets = "presets"
    benchmarks = "benchmarks"  # the old name of presets, kept as an alias
    suites = "suites"
    algorithms = "algorithms"
    architectures = "architectures"
    datasets = "datasets"


def _add_row(table: Any, *cells: str) -> None:
    """Cells shown as written, never read as terminal markup, with their control characters
    escaped (a name or a plugin's text cannot drive the terminal)."""
    from rich.text import Text

    table.add_row(*(Text(printable(cell)) for cell in cells))


def _key_column(table: Any, title: str, names: list[str]) -> None:
    """A column of names users copy: never wrapped or cut, whatever the width."""
    widths = [len(title), *(len(printable(name)) for name in names)]
    table.add_column(title, no_wrap=True, min_width=max(widths))


@app.command("list")
@handle_errors
def list_entries(
    what: Annotated[ListWhat, typer.Argument(help="What to list.", metavar="WHAT")] = (
        ListWhat.presets
    ),
    presets: PresetsOption = None,
) -> None:
    """List presets (user preset files' too), suites, algorithms (with their hyperparameters),
    architectures or datasets, plugins included."""
    from rich.table import Table

    from biobench.registry import ALGORITHMS, ARCHITECTURES, DATASETS, FAMILIES
    from biobench.spec import load_presets
    from biobench.spec.params import default_space
    from biobench.spec.presets import add_preset_files

    add_preset_files(presets)
    config = load_presets()
    table = Table(box=None, pad_edge=False)
    if what in (ListWhat.presets, ListWhat.benchmarks):
        _key_column(table, "preset", list(config.presets))
        columns = ("algorithm", "arch", "data", "epochs", "reference test %")
        for column in columns + (("from",) if config.files else ()):
            table.add_column(column)
        for name, preset in config.presets.items():
            epochs = preset.run.get("epochs") or config.run_defaults(preset.dataset)["epochs"]
            reference = "/".join(
                f"{preset.reference[k]:.2f}"
                for k in ("test_top1", "test_top5")
                if k in preset.reference
            )
            mode = f" ({preset.mode})" if preset.mode else ""
            origin = (str(preset.source) if preset.source else "benchmarks.yaml",)
            _add_row(
                table,
                name,
                preset.algorithm + mode,
                preset.architecture,
                preset.dataset,
                str(epochs),
                f"{reference} ±{preset.tolerance:g}" if preset.has_reference else "none",
                *(origin if config.files else ()),
            )
    elif what == ListWhat.suites:
        _key_column(table, "suite", list(config.suites))
        table.add_column("presets")
        for name, members in config.suites.items():
            _add_row(table, name, f"{len(members)}: {', '.join(members)}")
    elif what == ListWhat.algorithms:  # one row per hyperparameter: what --set takes
        families = {
            e.name: e.family + (f" [{e.origin}]" if e.origin != "biobench" else "")
            for e in ALGORITHMS.entries()
        }
        _key_column(table, "algorithm", ALGORITHMS.names())
        _key_column(table, "family", list(families.values()))
        _key_column(table, "--set", [n for e in ALGORITHMS.entries() for n in e.hparams])
        table.add_column("default", no_wrap=True)
        table.add_column("searched", no_wrap=True)  # `search`'s default space
        table.add_column("meaning (values)")
        for entry in ALGORITHMS.entries():
            first = (entry.name, families[entry.name])
            space = default_space(entry.hparams)
            for name, param in entry.hparams.items():
                meaning = f"{param.help}; {param.domain()}"
                searched = space[name].describe() if name in space else "-"
                _add_row(table, *first, name, param.shown_default(), searched, meaning)
                first = ("", "")
    elif what == ListWhat.architectures:
        _key_column(table, "architecture", ARCHITECTURES.names())
        for column in ("aliases", "learning rules", "from"):
            table.add_column(column)
        for entry in ARCHITECTURES.entries():
            rules = ", ".join(FAMILIES[f] for f in entry.families) if entry.families else "all"
            _add_row(table, entry.name, ", ".join(entry.aliases), rules, entry.origin)
    else:
        _key_column(table, "dataset", DATASETS.names())
        for column in ("shape", "classes", "settings (--set)", "from"):
            table.add_column(column)
        for entry in DATASETS.entries():
            shape = "x".join(map(str, entry.input_shape)) if entry.input_shape else "-"
            _add_row(
                table,
                entry.name,
                shape,
                str(entry.num_classes or "-"),
                ", ".join(entry.settings) or "-",
                entry.origin,
            )
    console.print(table)
    notes = [
        (entry.name, arch, whose)
        for entry in ALGORITHMS.entries()
        for arch, whose in getattr(entry.target, "constructions", {}).items()
    ]
    if what == ListWhat.algorithms and notes:  # whose construction a rule is on a network
        console.print()
        for name, arch, whose in notes:
            console.print(f"{name} on {arch}: {whose}", markup=False, highlight=False)

"""The documentation's reference pages, generated from the code at every build.

MkDocs loads this file as a hook (`hooks:` in mkdocs.yml): `on_files` adds three pages that are
never written by hand, so they cannot drift from what biobench accepts:

- reference/cli.md: every command of the Typer app (subgroups included), its help, usage and
  every option and argument with click's own help line (default, range, choices);
- reference/registry.md: every learning rule with its declared hyperparameters (type, range,
  default, the space `search` draws it from, the setting it applies under), every
  architecture (which families train it) and every dataset (shape, classes, defaults, its
  `--set` settings), plus the settings every run takes;
- reference/presets.md: every preset of benchmarks.yaml with its spec, epochs, reference
  numbers, tolerance and suites.

`python tools/docs_reference.py OUT_DIR` writes the same pages to a folder, to read them
without building the site.
"""

from __future__ import annotations

import html
import inspect
import re
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

PAGES = ("reference/cli.md", "reference/registry.md", "reference/presets.md")
_GENERATED = (
    "*Generated from the code at build time by `tools/docs_reference.py`; "
    "edit the code's help text, not this page.*"
)


def escape(text: str) -> str:
    """Markdown- and HTML-safe text, code spans (`...`) kept as they are: help text is
    written for a terminal, where `<last|none>`, `x>=1`, `[default: 0]` or a `*` mean nothing
    special."""
    parts = re.split(r"(`[^`]*`)", text)
    out = []
    for i, part in enumerate(parts):
        if i % 2:  # a code span: Markdown escapes its HTML itself
            out.append(part)
            continue
        part = part.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        out.append(re.sub(r"([\\*_\[\]|#])", r"\\\1", part))
    return "".join(out)


def code(text: str) -> str:
    """`text` as one inline code span, whatever backticks it holds."""
    ticks = "``" if "`" in text else "`"
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{ticks}{pad}{text}{pad}{ticks}"


def cell(text: str) -> str:
    """Text for a table cell: one line, its pipes escaped (in a code span, where a backslash
    would show, the span is written as HTML with the pipe as an entity)."""
    parts = re.split(r"(`[^`]*`)", " ".join(text.split()))
    for i, part in enumerate(parts):
        if i % 2 and "|" in part:
            inner = html.escape(part.strip("`").strip()).replace("|", "&#124;")
            parts[i] = f"<code>{inner}</code>"
        elif not i % 2:
            parts[i] = part.replace("|", "\\|")
    return "".join(parts)


# -- the command line ------------------------------------------------------------------------


def commands() -> Iterator[tuple[list[str], Any, Any]]:
    """(path, command, context) for every command of the app, groups first, depth first:
    (["run"], ...), (["db"], ...), (["db", "upgrade"], ...)."""
    import typer

    from biobench.cli import app

    root = typer.main.get_command(app)
    context_type = type(root.make_context("biobench", ["--help"], resilient_parsing=True))

    def walk(group: Any, parent: Any, path: list[str]) -> Iterator[tuple[list[str], Any, Any]]:
        for name in group.list_commands(parent):
            command = group.get_command(parent, name)
            if command is None or command.hidden:
                continue
            context = context_type(command, info_name=name, parent=parent)
            yield [*path, name], command, context
            if hasattr(command, "list_commands"):
                yield from walk(command, context, [*path, name])

    root_context = context_type(root, info_name="biobench")
    yield [], root, root_context
    yield from walk(root, root_context, [])


def _help_paragraphs(text: str) -> list[str]:
    return [" ".join(p.split()) for p in inspect.cleandoc(text or "").split("\n\n") if p.strip()]


def cli_page() -> str:
    lines = [
        "# Command reference",
        "",
        _GENERATED,
        "",
        "Every command, argument and option `biobench` takes, as `biobench COMMAND --help` "
        "prints it. The guides show them at work: [Train](../guide/training.md), "
        "[Presets, compare and check](../guide/presets.md), "
        "[Tune a rule with search](../tutorials/search.md).",
        "",
    ]
    for path, command, context in commands():
        title = " ".join(["biobench", *path])
        lines += [f"## {title}", ""]
        lines += [escape(p) + "\n" for p in _help_paragraphs(command.help or "")]
        pieces = " ".join(command.collect_usage_pieces(context))
        lines += ["```text", f"{title} {pieces}".rstrip(), "```", ""]
        if hasattr(command, "list_commands"):
            subs = [c for c in command.list_commands(context) if c]
            named = ", ".join(
                f"[{code(f'{title} {s}')}](#{_anchor(f'{title} {s}')})" for s in subs
            )
            lines += [f"Commands: {named}.", ""]
        params = [p for p in command.get_params(context)]
        rows = []
        for param in params:
            record = param.get_help_record(context)
            if record is None:  # an argument: named by its metavar, helped by its own text
                name = param.metavar or (param.name or "").upper()
                record = (name, getattr(param, "help", "") or "")
                if not param.required:
                    record = (f"[{name}]", record[1])
            rows.append(f"- {code(record[0])}: {escape(' '.join(record[1].split()))}")
        if rows:
            lines += ["Options and arguments:", "", *rows, ""]
    return "\n".join(lines)


def _anchor(title: str) -> str:
    """The id MkDocs' toc extension gives a heading."""
    return re.sub(r"[\s]+", "-", re.sub(r"[^\w\s-]", "", title).strip().lower())


# -- the registries --------------------------------------------------------------------------


def _hparam_rows(
    params: Mapping[str, Any], space: Mapping[str, Any], searchable: bool = True
) -> list[str]:
    """A table of declared settings; `searchable`: with the search and applies-when columns
    (a rule's hyperparameters), else without (settings no search draws)."""
    rows = [
        "| name | takes | default | searched | applies when | meaning |",
        "|---|---|---|---|---|---|",
    ]
    if not searchable:
        rows = ["| name | takes | default | meaning |", "|---|---|---|---|"]
    for name, param in params.items():
        searched = code(space[name].describe()) if name in space else "-"
        applies = "-"
        if param.applies:
            other, values = param.applies
            applies = code(f"{other}={'/'.join(map(str, values))}")
        cells = [code(name), escape(param.domain()), code(param.shown_default())]
        cells += [searched, applies] if searchable else []
        cells.append(escape(param.help))
        rows.append("| " + " | ".join(cell(c) for c in cells) + " |")
    return rows


def registry_page() -> str:
    from biobench.registry import ALGORITHMS, ARCHITECTURES, DATASETS, FAMILIES, NETWORKS, load_all
    from biobench.spec.params import default_space
    from biobench.spec.runspec import OPTIONS, SETTINGS

    load_all()
    lines = [
        "# Rules, networks, datasets and settings",
        "",
        _GENERATED,
        "",
        "What `--algo`, `--arch`, `--data` and `--set NAME=VALUE` take: each registry entry "
        "with the declarations it carries (`biobench list algorithms|architectures|datasets` "
        "prints the same). An installed plugin's entries appear in `biobench list`; this page "
        "shows biobench's own.",
        "",
        "## Settings every run takes",
        "",
        "Given like hyperparameters (`--set NAME=VALUE`), whatever the rule.",
        "",
        "What a run computes (part of its spec: a run that differs here is another cell):",
        "",
        *_hparam_rows(SETTINGS, {}, searchable=False),
        "",
        "How a run goes and what it measures beside its errors (not part of its spec):",
        "",
        *_hparam_rows(OPTIONS, {}, searchable=False),
        "",
        "## Learning rules (`--algo`)",
        "",
        "*searched*: the range `biobench search` draws the hyperparameter from by default "
        "(`-`: not searched); *applies when*: the setting is refused unless that other "
        "setting has one of these values.",
        "",
    ]
    for entry in ALGORITHMS.entries():
        if entry.origin != "biobench":
            continue
        lines += [f"### {entry.name}", ""]
        facts = [
            f"label in tables: {escape(entry.display)}",
            f"family: {FAMILIES[entry.family]}",
            f"trains: {NETWORKS[entry.networks]}",
        ]
        if entry.aliases:
            facts.append("aliases: " + ", ".join(code(a) for a in entry.aliases))
        lines += [escape(entry.help), ""] if entry.help else []
        lines += ["; ".join(facts) + ".", ""]
        for arch, whose in getattr(entry.target, "constructions", {}).items():
            lines += [f"On `{arch}`: {escape(whose)}", ""]
        lines += [*_hparam_rows(entry.hparams, default_space(entry.hparams)), ""]
    lines += ["## Architectures (`--arch`)", ""]
    lines += ["| name | aliases | trained by | layered | what |", "|---|---|---|---|---|"]
    for entry in ARCHITECTURES.entries():
        if entry.origin != "biobench":
            continue
        rules = ", ".join(FAMILIES[f] for f in entry.families) if entry.families else "every rule"
        row = (
            code(entry.name),
            ", ".join(code(a) for a in entry.aliases) or "-",
            rules,
            "yes" if entry.layered else "no",
            escape(entry.help),
        )
        lines.append("| " + " | ".join(cell(c) for c in row) + " |")
    lines += ["", "## Datasets (`--data`)", ""]
    for entry in DATASETS.entries():
        if entry.origin != "biobench":
            continue
        shape = "×".join(map(str, entry.input_shape)) if entry.input_shape else "-"
        facts = [f"shape (C×H×W): {shape}", f"classes: {entry.num_classes or '-'}"]
        if entry.epochs:
            facts.append(f"default epochs: {entry.epochs}")
        if entry.batch_size:
            facts.append(f"default batch size: {entry.batch_size}")
        if entry.train_size:
            facts.append(f"training images: {entry.train_size:,}")
        if entry.aliases:
            facts.append("aliases: " + ", ".join(code(a) for a in entry.aliases))
        lines += [f"### {entry.name}", ""]
        lines += [escape(entry.help), ""] if entry.help else []
        lines += ["; ".join(facts) + ".", ""]
        if entry.settings:
            lines += [*_hparam_rows(entry.settings, {}, searchable=False), ""]
    return "\n".join(lines)


# -- the presets -----------------------------------------------------------------------------


def presets_page() -> str:
    from biobench.spec.presets import load_presets

    config = load_presets()
    member_of: dict[str, list[str]] = {}
    for suite, members in config.suites.items():
        for name in members:
            member_of.setdefault(name, []).append(suite)
    lines = [
        "# Presets and their references",
        "",
        _GENERATED,
        "",
        "Every preset of `benchmarks.yaml`: the spec, its epochs and batch size, the reference "
        "errors `check` holds a run to (in %, train and test top-1; test top-1 and top-5 for "
        "ImageNet) with the tolerance in points, and the suites it belongs to. Where each "
        "reference comes from: [Reference protocols](../references.md). The hyperparameters "
        "are in `benchmarks.yaml` (`biobench list presets` lists the same presets).",
        "",
        "## Suites",
        "",
        "| suite | presets |",
        "|---|---|",
    ]
    for suite, members in config.suites.items():
        lines.append(f"| {code(suite)} | {len(members)}: {cell(', '.join(members))} |")
    lines += [
        "",
        "## Presets",
        "",
        "| preset | rule | arch | data | epochs | batch | reference | tolerance | suites |",
        "|---|---|---|---|---:|---:|---|---:|---|",
    ]
    for name, preset in config.presets.items():
        defaults = config.run_defaults(preset.dataset)
        epochs = preset.run.get("epochs") or defaults["epochs"]
        batch = preset.run.get("batch_size") or defaults["batch_size"]
        reference = ", ".join(f"{k} {v:.2f}" for k, v in preset.reference.items()) or "none"
        mode = f" ({preset.mode})" if preset.mode else ""
        row = (
            code(name),
            code(preset.algorithm) + mode,
            code(preset.architecture),
            code(preset.dataset),
            str(epochs),
            str(batch),
            reference,
            f"{preset.tolerance:g}" if preset.tolerance is not None else "-",
            ", ".join(member_of.get(name, [])) or "-",
        )
        lines.append("| " + " | ".join(cell(c) for c in row) + " |")
    return "\n".join(lines) + "\n"


def pages() -> dict[str, str]:
    """Every generated page, by its path under docs/."""
    return {
        "reference/cli.md": cli_page(),
        "reference/registry.md": registry_page(),
        "reference/presets.md": presets_page(),
    }


# -- the MkDocs hook -------------------------------------------------------------------------


def on_files(files: Any, config: Any) -> Any:
    from mkdocs.structure.files import File

    for path, text in pages().items():
        files.append(File.generated(config, path, content=text))
    return files


if __name__ == "__main__":
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "reference-out")
    for path, text in pages().items():
        (out / path).parent.mkdir(parents=True, exist_ok=True)
        (out / path).write_text(text)
        print(out / path)

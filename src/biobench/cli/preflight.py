"""`biobench preflight`: does each preset's own configuration learn, at its real input shape,
before a GPU-week is spent on it (training/preflight.py)."""

from __future__ import annotations

import json
import math
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

from biobench.cli.app import PresetsOption, app, console, err_console, handle_errors
from biobench.text import printable


class PreflightFormat(str, Enum):
    table = "table"
    json = "json"


StepsOption = Annotated[
    int | None,
    typer.Option(
        "--steps",
        help="Most minibatches each preset trains (default 200); it stops once it learns.",
        show_default=False,
        min=1,
        metavar="N",
    ),
]


def shown(text: str) -> str:
    """A user-named string (a preset's name) for the terminal: control characters escaped,
    and rich markup shown as text."""
    from rich.markup import escape

    return escape(printable(text))


def _duration(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "?"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 3 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def _memory(mb: float | None) -> str:
    return "?" if mb is None else f"{mb / 1024:.1f} GiB" if mb >= 1024 else f"{mb:.0f} MiB"


def preflight_specs(
    specs: list[Any],
    *,
    steps: int | None,
    device: str | None,
    data_dir: Path | None,
    format: PreflightFormat = PreflightFormat.table,
    threads: int | None = None,
) -> list[Any]:
    """Preflight each spec (each once), print the reports, and return them; what failed is
    said last, one line each, naming the setting a retry found at fault."""
    from rich.markup import escape
    from rich.table import Table

    from biobench.paths import default_data_dir
    from biobench.results.render import print_natural
    from biobench.spec import seedless_hash
    from biobench.training.environment import use_threads
    from biobench.training.preflight import DEFAULT_STEPS, preflight
    from biobench.training.runner import resolve_device

    where = resolve_device(device or "auto")
    threads = use_threads(threads, 1)  # timings as one process of a run would measure them
    root = (data_dir or default_data_dir()).expanduser()
    unique = list({seedless_hash(spec.to_dict()): spec for spec in specs}.values())
    reports = []
    for index, spec in enumerate(unique, 1):
        name = spec.preset or f"{spec.algorithm}/{spec.architecture}/{spec.dataset}"
        if format == PreflightFormat.table:
            err_console.print(f"preflight {index}/{len(unique)}: {shown(name)}", highlight=False)

        def retry(setting: str, name: str = name) -> None:
            if format == PreflightFormat.table:
                err_console.print(
                    f"  {shown(name)} did not learn: trying again with {escape(setting)} changed",
                    highlight=False,
                )

        reports.append(
            preflight(
                spec,
                steps=steps or DEFAULT_STEPS,
                device=where,
                data_dir=root,
                on_retry=retry,
            )
        )
    if format == PreflightFormat.json:
        sys.stdout.write(json.dumps([r.to_dict() for r in reports], indent=2) + "\n")
        return reports
    table = Table(
        box=None,
        pad_edge=False,
        title_justify="left",
        title=f"preflight on {where}, {threads} thread(s) (proxy errors in %)",
    )
    for column in (
        "preset",
        "verdict",
        "proxy error",
        "loss",
        "ms/step",
        "memory",
        "parameters",
        "full protocol",
    ):
        table.add_column(column, justify="left" if column in ("preset", "verdict") else "right")
    colour = {"learns": "green", "does not learn": "bold red", "diverges": "bold red"}
    for r in reports:
        table.add_row(
            shown(r.preset),
            f"[{colour[r.verdict]}]{r.verdict}[/]",
            f"{r.error_start:.0f} -> {r.error_end:.0f}",
            f"{r.loss_start:.2f} -> {r.loss_end:.2f}",
            f"{r.ms_per_step:.0f}",
            _memory(r.peak_memory_mb),
            f"{r.parameters:,}",
            _duration(r.projected_s),
        )
    print_natural(console, table)  # never cut or folded: a narrow terminal wraps whole lines
    known = [r.projected_s for r in reports if r.projected_s is not None]
    console.print(
        f"full protocols: {_duration(sum(known))} of training steps on {where}"
        + (f" ({len(reports) - len(known)} of unknown size)" if len(known) < len(reports) else "")
        + f"; proxies: {', '.join(sorted({escape(r.proxy) for r in reports}))}",
        highlight=False,
    )
    for r in reports:
        if not r.learns:
            fault = f"; at fault: {escape(r.suspect)}" if r.suspect else ""
            console.print(
                f"[bold red]{r.verdict}[/]: {shown(r.preset)}: {escape(r.reason)}{fault}",
                highlight=False,
            )
    return reports


def failed(reports: list[Any]) -> str | None:
    bad = [r.preset for r in reports if not r.learns]
    if not bad:
        return None
    return f"{len(bad)} of {len(reports)} preset(s) failed preflight: {', '.join(bad)}"


@app.command()
@handle_errors
def preflight(
    preset: Annotated[
        list[str] | None,
        typer.Option(
            "--preset", help="Only this preset (repeatable).", show_default=False, metavar="NAME"
        ),
    ] = None,
    suite: Annotated[
        str | None, typer.Option("--suite", help="Only this suite's presets.", metavar="NAME")
    ] = None,
    steps: StepsOption = None,
    device: Annotated[
        str | None,
        typer.Option(help="cpu, cuda, cuda:N or auto (the default).", metavar="DEVICE"),
    ] = None,
    data_dir: Annotated[
        Path | None,
        typer.Option(
            "--data-dir",
            help="Where the datasets' own files are looked for (never downloaded); without "
            "them the digits, resized to the dataset's shape, stand in.",
            show_default=False,
            metavar="DIR",
        ),
    ] = None,
    format: Annotated[
        PreflightFormat, typer.Option("--format", help="Output format.")
    ] = PreflightFormat.table,
    threads: Annotated[
        int | None,
        typer.Option(
            "--threads",
            help="CPU threads (torch's). Default: the cores this process may use.",
            show_default=False,
            min=1,
            metavar="N",
        ),
    ] = None,
    presets: PresetsOption = None,
) -> None:
    """Train each preset a few steps at its real shape and settings; exit 1 if one does not learn.

    With no --preset or --suite: every preset, built-in and user's. Each trains on its
    dataset's own files when --data-dir holds them, else on the offline digits resized to its
    shape; the report gives its verdict, the measured ms/step and memory, and the projected
    time of its full protocol here.
    """

    from biobench.spec import load_presets, resolve
    from biobench.spec.presets import add_preset_files

    add_preset_files(presets)
    config = load_presets()
    names = config.suite(suite) if suite else []
    names += [config.preset(name).name for name in preset or []]
    if not suite and not preset:
        names = list(config.presets)
    specs = [resolve(preset=name) for name in dict.fromkeys(names)]
    problem = failed(
        preflight_specs(
            specs, steps=steps, device=device, data_dir=data_dir, format=format, threads=threads
        )
    )
    if problem:  # exit 1, as `check` on a regression: the input was fine, a preset is not
        err_console.print(f"[red]error:[/] {shown(problem)}", highlight=False)
        raise typer.Exit(1)

"""`biobench report`: the results as a static site, or served live on localhost."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from biobench.cli.app import (
    BiobenchError,
    DbOption,
    PresetsOption,
    app,
    console,
    handle_errors,
    printable,
)


@app.command()
@handle_errors
def report(
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="Write the site into this folder (new, empty, or a site it wrote).",
            show_default=False,
            metavar="DIR",
        ),
    ] = None,
    suite: Annotated[
        str | None,
        typer.Option("--suite", help="Only the runs of this suite's presets.", metavar="NAME"),
    ] = None,
    data: Annotated[
        list[str] | None,
        typer.Option(
            "--data", help="Only this dataset (repeatable).", show_default=False, metavar="NAME"
        ),
    ] = None,
    title: Annotated[
        str | None,
        typer.Option("--title", help="The site's title.", show_default=False, metavar="TEXT"),
    ] = None,
    serve: Annotated[
        bool,
        typer.Option(
            "--serve",
            help="Instead: serve the site from the live database on 127.0.0.1, refreshing "
            "while runs are going (Ctrl-C stops it).",
        ),
    ] = False,
    port: Annotated[
        int, typer.Option("--port", help="With --serve: the port.", min=1, max=65535)
    ] = 8000,
    db: DbOption = None,
    presets: PresetsOption = None,
) -> None:
    """Write the results as a static website, or serve it live on localhost.

    Leaderboards (compare's tables), a page per run and per study, and cost against error; the
    site opens from file:// and makes no request outside itself."""
    from biobench.registry import DATASETS, load_all
    from biobench.report.model import Filters
    from biobench.spec import load_presets
    from biobench.spec.presets import add_preset_files
    from biobench.store import Store

    if serve == (out is not None):
        raise BiobenchError(
            "give --out DIR to write the site, or --serve to serve it live (not both)"
        )
    if suite and data:
        raise BiobenchError("give --suite or --data, not both")
    add_preset_files(presets)
    load_all()
    filters = Filters(
        datasets={DATASETS.canonical(name) for name in data} if data else None,
        presets=set(load_presets().suite(suite)) if suite else None,
    )
    store = Store(db)
    if serve:
        _serve(store, filters, title, port)
        return
    from biobench.report.site import build

    assert out is not None
    built = build(store, out, filters, title)
    index = (out / "index.html").resolve()
    console.print(
        f"wrote {built.pages} page(s) ({built.runs} run(s), {built.boards} leaderboard(s), "
        f"{built.bytes / 1e6:.1f} MB) to {printable(str(out))}; open {printable(index.as_uri())}",
        markup=False,
        highlight=False,
    )


def _serve(store: object, filters: object, title: str | None, port: int) -> None:
    from biobench.report.serve import HOST, LiveSite, make_server

    try:
        server = make_server(LiveSite(store, filters, title), port)  # type: ignore[arg-type]
    except OSError as error:
        raise BiobenchError(
            f"cannot serve on {HOST}:{port}: {error.strerror}; pick another --port"
        ) from None
    console.print(
        f"serving {store.display_url} at http://{HOST}:{server.server_address[1]}/ "  # type: ignore[attr-defined]
        "(Ctrl-C stops it)",
        markup=False,
        highlight=False,
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        console.print("stopped", markup=False)
    finally:
        server.server_close()

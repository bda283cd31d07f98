"""`biobench report`: the results as a static site, from `model.SiteData`.

Pages are Jinja2 templates (templates/*.html.j2) with autoescaping on: every name, value and
message a database holds is escaped where it is shown, and data for the charts is embedded
with Jinja's `tojson` (which escapes <, >, & and ' too) inside a <script type=
"application/json">. The site needs nothing but its own files: Chart.js and the few lines
that sort and filter tables ship in static/ and are linked relatively, so it opens from
file:// and from any static host, and makes no request outside itself.
"""

from __future__ import annotations

import json
import shlex
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2

from biobench.errors import BiobenchError
from biobench.report import model
from biobench.report.model import Filters, SiteData
from biobench.results.alignment import TITLES as ALIGNMENT_TITLES
from biobench.store import RunStatus, Store

MARKER = ".biobench-report"  # a folder holding it is a site this command wrote, to rewrite
STATIC = ("chart.umd.min.js", "chart.js-LICENSE.md", "report.css", "report.js", "charts.js")
STATUS_CLASS = {status.value: f"status-{status.value}" for status in RunStatus}


def package_files(folder: str) -> Any:
    return resources.files("biobench.report").joinpath(folder)


def static_bytes(name: str) -> bytes:
    if name not in STATIC:
        raise KeyError(name)
    return package_files("static").joinpath(name).read_bytes()


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("biobench.report", "templates"),
        autoescape=jinja2.select_autoescape(["html", "html.j2"], default=True),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["shown"] = model.shown
    env.filters["pretty"] = _pretty
    env.filters["finite"] = model.finite
    env.filters["quote"] = shlex.quote
    env.filters["param"] = _param
    env.globals["STATUS_CLASS"] = STATUS_CLASS
    return env


def _pretty(value: Any) -> str:
    """A spec or environment value: JSON for lists and mappings, '-' for none."""
    if value is None:
        return "-"
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True, default=str)
    return str(value)


def _param(value: Any) -> str:
    """A value a trial drew: floats to 4 significant digits (a learning rate of 1e-4 and an
    eps of 1e-8 both stay readable)."""
    if isinstance(value, float):
        return f"{value:.4g}"
    return "-" if value is None else str(value)


ENV = _environment()


@dataclass
class Site:
    """The pages of one snapshot of the database: path -> how to render it."""

    data: SiteData
    live: bool = False  # served: pages refresh themselves while a run is going
    refresh_s: int = 5

    def _page(self, template: str, root: str, **values: Any) -> str:
        refresh = self.refresh_s if self.live and self.data.running else None
        return ENV.get_template(template).render(
            data=self.data, root=root, refresh=refresh, live=self.live, **values
        )

    def pages(self) -> dict[str, Callable[[], str]]:
        out: dict[str, Callable[[], str]] = {
            "index.html": self.index,
            "leaderboard.html": self.leaderboard,
            "runs.html": self.runs_list,
            "cost.html": self.cost,
        }
        for run in self.data.runs:
            out[model.run_href(run.id)] = lambda run=run: self.run_page(run)
        for number, _ in enumerate(self.data.studies, 1):
            out[f"studies/{number}.html"] = lambda n=number: self.study_page(n)
        return out

    def index(self) -> str:
        counts: dict[str, int] = {}
        for run in self.data.runs:
            counts[run.status.value] = counts.get(run.status.value, 0) + 1
        return self._page("index.html.j2", "", counts=counts)

    def leaderboard(self) -> str:
        return self._page("leaderboard.html.j2", "")

    def runs_list(self) -> str:
        rows = [(run, model.run_summary(run, self.data.epochs.get(run.id, []))) for run in
                self.data.runs]  # fmt: skip
        return self._page("runs.html.j2", "", rows=rows)

    def run_page(self, run: Any) -> str:
        epochs = self.data.epochs.get(run.id, [])
        layers = self.data.layers.get(run.id, [])
        charts = {"curves": model.curves(epochs), "alignment": model.alignment(layers)}
        return self._page(
            "run.html.j2",
            "../",
            run=run,
            summary=model.run_summary(run, epochs),
            epochs=epochs,
            table=model.epoch_table(epochs),
            blown_up=model.blown_up(epochs),
            charts=charts,
            alignment_titles=ALIGNMENT_TITLES,
            costs=model.phase_costs(epochs),
            command=model.reproduce(run),
        )

    def study_page(self, number: int) -> str:
        study = self.data.studies[number - 1]
        shown = {run.id for run in self.data.runs}
        points = {
            "trial": [row["trial"] for row in study["trials"]],
            "objective": [model.finite(row["objective"]) for row in study["trials"]],
            "state": [row["state"] for row in study["trials"]],
        }
        return self._page(
            "study.html.j2", "../", study=study, shown=shown, points=points, yaml=_yaml
        )

    def cost(self) -> str:
        rows = [] if self.data.cost.empty else self.data.cost.to_dict("records")
        points = [
            {
                "group": f"{r['dataset']} / {r['architecture']} / {r['device']} / batch "
                f"{r['batch_size']} / {r['precision']}",
                "label": r["label"],
                "step": model.finite(r["step_vs_bp"]),
                "memory": model.finite(r["memory_vs_bp"]),
                "flops": model.finite(r["flops_vs_bp"]),
                "error": model.finite(r["test_top1"]),
            }
            for r in rows
        ]
        return self._page("cost.html.j2", "", rows=rows, points=points)


def _yaml(entry: dict[str, Any]) -> str:
    import yaml

    return yaml.safe_dump(entry, sort_keys=False, allow_unicode=True)


def _prepare(out: Path) -> None:
    """Make `out` ready for a site: a new or empty folder, or one this command wrote before
    (its pages are replaced; nothing else in it is touched)."""
    if out.exists() and not out.is_dir():
        raise BiobenchError(f"--out {out} is a file, not a folder; pass a folder")
    if out.is_dir() and any(out.iterdir()) and not (out / MARKER).exists():
        raise BiobenchError(
            f"--out {out} holds files this command did not write; pass an empty or new folder"
        )
    try:
        out.mkdir(parents=True, exist_ok=True)
        for folder in ("runs", "studies", "static"):
            shutil.rmtree(out / folder, ignore_errors=True)
        for page in out.glob("*.html"):
            page.unlink()
        (out / MARKER).write_text("written by `biobench report`; rewritten by it\n")
    except OSError as error:
        raise BiobenchError(f"cannot write the site to {out}: {error.strerror}") from None


@dataclass(frozen=True)
class Built:
    pages: int
    runs: int
    boards: int
    bytes: int


def write(site: Site, out: Path) -> Built:
    """Write every page of `site` and the static files under `out`."""
    _prepare(out)
    pages = site.pages()
    total = 0
    try:
        for folder in ("runs", "studies", "static"):
            (out / folder).mkdir()
        for name in STATIC:
            total += (out / "static" / name).write_bytes(static_bytes(name))
        for path, render in pages.items():
            total += (out / path).write_bytes(render().encode())
    except OSError as error:  # a full disk, a folder removed meanwhile
        raise BiobenchError(f"cannot write the site to {out}: {error.strerror}") from None
    return Built(len(pages), len(site.data.runs), len(site.data.boards), total)


def build(
    store: Store, out: Path, filters: Filters | None = None, title: str | None = None
) -> Built:
    """`biobench report --out DIR`: the static site of `store`'s runs (those `filters`
    keeps) in `out`."""
    return write(Site(model.load(store, filters, title)), out)

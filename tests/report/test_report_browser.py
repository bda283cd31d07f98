"""The report in a real browser: Debian's Chromium, driven by Playwright.

Every page loads with no console error and asks for nothing outside the site; the leaderboard
sorts and filters; a cell's link reaches its run; the charts draw and show an epoch's numbers
on hover; a hostile name runs no script. Screenshots of the leaderboard and of a run page go to
the test's folder, and also to $BIOBENCH_REPORT_SHOTS when set (to be looked at).
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from biobench.cli import app
from biobench.report.serve import LiveSite, make_server
from biobench.report.site import build
from biobench.store import Store
from support.report import HOSTILE, fill, fill_hostile

CHROMIUM = Path("/usr/bin/chromium")
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason="no /usr/bin/chromium (Debian's chromium package; .ci/run installs it)",
    ),
]
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PAGES = [
    "index.html",
    "leaderboard.html",
    "runs.html",
    "cost.html",
    "runs/1.html",  # two seeds of a cell
    "runs/6.html",  # diverged
    "runs/7.html",  # no epochs
    "runs/9.html",  # lost
    "runs/10.html",  # a script in its names and values
    "studies/1.html",  # a script in its name
]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("report")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("BIOBENCH_HOME", str(folder / "home"))
        url = f"sqlite:///{folder / 'results.db'}"
        store = Store(url)
        fill(store)
        fill_hostile(store)  # run 10
        args = ["search", "--study", HOSTILE, "--algo", "bp", "--arch", "fc"]
        args += ["--data", "synthetic", "--trials", "2", "--epochs", "1", "--batch-size", "256"]
        result = CliRunner().invoke(app, [*args, "--device", "cpu", "--db", url])
        assert result.exit_code == 0, result.output
        build(store, folder / "site")
    return folder / "site"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield browser
        browser.close()


class Watched:
    """A page with every request, console error, page error and dialog it caused recorded."""

    def __init__(self, browser: Any) -> None:
        self.context = browser.new_context(viewport={"width": 1400, "height": 900})
        self.page = self.context.new_page()
        self.requests: list[str] = []
        self.errors: list[str] = []
        self.dialogs: list[str] = []
        self.page.on("request", lambda request: self.requests.append(request.url))
        self.page.on(
            "console",
            lambda message: self.errors.append(message.text) if message.type == "error" else None,
        )
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))
        self.page.on("dialog", self._dialog)

    def _dialog(self, dialog: Any) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def watched(browser: Any) -> Iterator[Watched]:
    watched = Watched(browser)
    yield watched
    watched.close()


def shots(tmp_path: Path, name: str) -> Path:
    return tmp_path / name


def keep(shot: Path) -> None:
    folder = os.environ.get("BIOBENCH_REPORT_SHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(folder) / shot.name)


@pytest.mark.parametrize("page", PAGES)
def test_each_page_loads_with_no_error_and_no_request_outside_the_site(
    site: Path, watched: Watched, page: str
) -> None:
    watched.page.goto((site / page).as_uri())
    watched.page.wait_for_load_state("load")
    assert watched.errors == []
    assert watched.dialogs == []  # no script of a name or value ran
    charts = watched.page.evaluate(
        "Array.from(document.querySelectorAll('canvas')).map(c => !!Chart.getChart(c))"
        " .filter(drawn => !drawn).length"
        if watched.page.evaluate("typeof Chart !== 'undefined'")
        else "0"
    )
    assert charts == 0  # every canvas holds a chart
    assert watched.requests
    outside = [url for url in watched.requests if not url.startswith(site.as_uri() + "/")]
    assert outside == []


def test_the_charts_draw_and_hover_shows_the_epochs_numbers(
    site: Path, watched: Watched, tmp_path: Path
) -> None:
    page = watched.page
    page.goto((site / "runs" / "1.html").as_uri())
    drawn = page.evaluate(
        "['chart-top1', 'chart-top5', 'chart-update_angle']"
        ".map(id => Chart.getChart(id) ? Chart.getChart(id).data.datasets.length : 0)"
    )
    assert drawn == [2, 2, 2]  # train and test; two layers
    box = page.locator("#chart-top1").bounding_box()
    chart = "Chart.getChart('chart-top1')"
    x = page.evaluate(f"{chart}.scales.x.getPixelForValue(1)")  # the second epoch
    page.mouse.move(box["x"] + x, box["y"] + box["height"] / 2)
    page.wait_for_function(f"{chart}.tooltip.dataPoints && {chart}.tooltip.opacity > 0")
    title = page.evaluate(f"{chart}.tooltip.title")
    values = page.evaluate(f"{chart}.tooltip.dataPoints.map(p => [p.dataset.label, p.raw])")
    assert title == ["epoch 2"]
    assert values == [["train top-1", 0.5], ["test top-1", 1.6]]
    shot = shots(tmp_path, "report-run-page.png")
    page.screenshot(path=str(shot), full_page=True)
    keep(shot)
    assert watched.errors == []


def column(page: Any, table: str, index: int) -> list[str]:
    return page.eval_on_selector_all(
        f"{table} tbody tr", f"rows => rows.map(r => r.cells[{index}].textContent.trim())"
    )


def test_the_leaderboard_sorts_and_filters(site: Path, watched: Watched, tmp_path: Path) -> None:
    page = watched.page
    page.goto((site / "leaderboard.html").as_uri())
    board = "section#b2 table"  # lc: BP 1.20, FA 9.00
    header = page.locator(f"{board} thead th", has_text="lc test")
    assert column(page, board, 3) == ["1.20", "9.00"]
    header.click()
    assert header.get_attribute("aria-sort") == "ascending"
    assert column(page, board, 3) == ["1.20", "9.00"]
    header.click()
    assert header.get_attribute("aria-sort") == "descending"
    assert column(page, board, 3) == ["9.00", "1.20"]
    method = page.locator(f"{board} thead th", has_text="method")
    method.click()
    assert column(page, board, 1) == ["BP", "FA"]
    page.fill("#filter", "feedback")
    visible = page.eval_on_selector_all(
        f"{board} tbody tr", "rows => rows.filter(r => !r.hidden).map(r => r.cells[1].textContent)"
    )
    assert visible == ["FA"]
    page.fill("#filter", "")
    shot = shots(tmp_path, "report-leaderboard.png")
    page.screenshot(path=str(shot), full_page=True)
    keep(shot)
    assert watched.errors == []


def test_a_cells_link_reaches_its_run_page(site: Path, watched: Watched) -> None:
    page = watched.page
    page.goto((site / "leaderboard.html").as_uri())
    page.locator("section#b2 table tbody tr", has_text="FA").locator("a").first.click()
    page.wait_for_load_state("load")
    assert page.url == (site / "runs" / "5.html").as_uri()
    assert page.locator("h1").inner_text() == "Run 5: fa / lc / mnist"


def test_the_served_site_asks_only_its_own_origin(site: Path, watched: Watched) -> None:
    store = Store(f"sqlite:///{site.parent / 'results.db'}")
    server = make_server(LiveSite(store, max_age_s=0), 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    origin = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        for path in ("/leaderboard.html", "/runs/1.html"):
            watched.page.goto(origin + path)
            watched.page.wait_for_load_state("load")
    finally:
        server.shutdown()
        server.server_close()
    assert watched.errors == []
    assert [url for url in watched.requests if not url.startswith(origin + "/")] == []

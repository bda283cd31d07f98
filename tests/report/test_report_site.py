"""`biobench report --out DIR`: the static site, checked as HTML (no browser here)."""

from __future__ import annotations

import html
import json
import re
import shlex
from html.parser import HTMLParser
from importlib import resources
from pathlib import Path

import pytest
from markupsafe import escape
from typer.testing import CliRunner

from biobench.cli import app
from biobench.report import model
from biobench.report.site import MARKER, STATIC, build
from biobench.results.compare import comparison_tables, load_comparison
from biobench.spec import resolve
from biobench.store import Store
from biobench.store.urls import mask_url
from support.report import HOSTILE, add_run, fill, fill_hostile

runner = CliRunner()


class Tables(HTMLParser):
    """Every table of a page: its rows' cell texts and each cell's links."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[dict] = []
        self._cell: list[str] | None = None
        self._in_head = False

    def handle_starttag(self, tag: str, attrs: list) -> None:
        attributes = dict(attrs)
        if tag == "table":
            self.tables.append({"attrs": attributes, "header": [], "rows": [], "links": []})
        elif tag == "thead":
            self._in_head = True
        elif tag == "tbody":
            self._in_head = False
        elif tag == "tr" and self.tables and not self._in_head:
            self.tables[-1]["rows"].append([])
            self.tables[-1]["links"].append([])
        elif tag in ("td", "th"):
            self._cell = []
            if not self._in_head:
                self.tables[-1]["links"][-1].append([])
        elif tag == "a" and self._cell is not None and not self._in_head:
            self.tables[-1]["links"][-1][-1].append(attributes["href"])

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None:
            text = "".join(self._cell).strip()
            table = self.tables[-1]
            (table["header"] if self._in_head else table["rows"][-1]).append(text)
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def tables(page: Path) -> list[dict]:
    parser = Tables()
    parser.feed(page.read_text())
    return parser.tables


@pytest.fixture
def store(db_url: str) -> Store:
    store = Store(db_url)
    fill(store)
    return store


@pytest.fixture
def site(store: Store, tmp_path: Path) -> Path:
    build(store, tmp_path / "site")
    return tmp_path / "site"


def boards(site: Path) -> list[dict]:
    return [t for t in tables(site / "leaderboard.html") if "board" in t["attrs"]["class"]]


def test_the_leaderboards_are_compares_tables_cell_for_cell(store: Store, site: Path) -> None:
    """One source of truth: each board is compare's table on one network, every cell the text
    `compare` prints (its family named on every row, as a sorted row needs)."""
    expected = []
    for _, header, rows in comparison_tables(load_comparison(store)):
        archs = len(header[2:]) // 5
        for index in range(archs):
            columns = [2 + 5 * index + k for k in range(5)]
            family, kept = "", []
            for row in rows:
                family = row[0] or family
                cells = [row[c] for c in columns]
                if any(cells):
                    kept.append([family, row[1], *cells])
            expected.append(([header[0], header[1], *(header[c] for c in columns)], kept))
    shown = [(t["header"][:-1], [row[:-1] for row in t["rows"]]) for t in boards(site)]
    assert shown == expected
    assert len(shown) == 2  # fc and lc


def test_the_leaderboards_agree_with_the_compare_command(store: Store, site: Path) -> None:
    """Every cell of every board is the cell `biobench compare --format markdown` prints under
    the same column, on the same method's row."""
    url = store.url.render_as_string(hide_password=False)
    printed = runner.invoke(app, ["compare", "--format", "markdown", "--db", url])
    assert printed.exit_code == 0, printed.output
    lines = [line for line in printed.stdout.splitlines() if line.startswith("| ")]
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    printed_rows = {
        cells[1]: dict(zip(header, cells, strict=True))
        for line in lines[1:]
        if (cells := [cell.strip() for cell in line.strip("|").split("|")])
    }
    compared = 0
    for board in boards(site):
        for row in board["rows"]:
            for column, cell in zip(board["header"][2:-1], row[2:-1], strict=True):
                assert printed_rows[row[1]][column] == cell, (row[1], column)
                compared += 1
    assert compared == 4 * 5  # BP and DTP on fc, BP and FA on lc


def test_every_number_links_to_the_run_it_comes_from(store: Store, site: Path) -> None:
    frame = load_comparison(store)
    fc = boards(site)[0]
    bp = fc["rows"][0]
    assert bp[1] == "BP" and bp[-1] == "1, 2"
    links = fc["links"][0]
    assert links[2:4] == [["runs/1.html"], ["runs/1.html"]]  # train, test: a mean of runs 1, 2
    assert links[4] == []  # the published number is no run's
    assert links[-1] == ["runs/1.html", "runs/2.html"]
    for href in {h for row in fc["links"] for cell in row for h in cell}:
        assert (site / href).is_file()
    assert set(frame["run_ids"]) == {"1,2", "3", "4", "5"}


def test_the_sign_of_a_difference_is_coloured(site: Path) -> None:
    text = (site / "leaderboard.html").read_text()
    # DTP's +0.67 above the paper is worse: red; BP's own +0.00 gap is neither.
    assert re.search(r'class="num worse"[^>]*><a [^>]*>\+0\.67<', text)
    assert re.search(r'class="num"[^>]*><a [^>]*>\+0\.00<', text)


def test_the_caption_names_the_protocol_and_the_selection(site: Path) -> None:
    text = (site / "leaderboard.html").read_text()
    assert "mnist: 500 epochs, batch 128 (errors in %, best test epoch)" in text


def test_a_cell_measured_under_another_protocol_is_marked_as_compare_marks_it(
    sqlite_url: str, tmp_path: Path
) -> None:
    store = Store(sqlite_url)
    add_run(store, "mnist-fc-bp", [(1.0, 2.0)], epochs=3)
    build(store, tmp_path / "site")
    (board,) = boards(tmp_path / "site")
    assert board["rows"][0][4] == "0.00 / 1.48*"
    assert "* paper: 500 epochs, batch 128" in (tmp_path / "site" / "leaderboard.html").read_text()


def test_each_run_has_a_page_with_its_spec_environment_curves_and_command(
    store: Store, site: Path
) -> None:
    page = (site / "runs" / "1.html").read_text()
    run = store.run(1)
    assert run.spec_hash in page
    for label in ("biobench", "git commit", "torch", "device", "host", "processes", "precision"):
        assert f"<th>{label}</th>" in page
    data = json.loads(re.search(r'id="run-data">(.*?)</script>', page).group(1))
    assert data["curves"]["epoch"] == [1, 2, 3]
    assert data["curves"]["test_top1"] == [4.0, 1.6, 1.7]
    assert data["alignment"]["metrics"]["update_angle"]["L1 w1"] == [41.0, 42.0, 43.0]
    assert "step_ms_forward" in page


def test_the_command_on_a_run_page_reproduces_its_spec_hash(store: Store, site: Path) -> None:
    page = (site / "runs" / "4.html").read_text()
    command = html.unescape(re.search(r'<pre id="command">(.*?)</pre>', page).group(1))
    args = shlex.split(command)[2:]
    options = dict(zip(args[0::2], args[1::2], strict=True))
    overrides = [value for name, value in zip(args[0::2], args[1::2], strict=True)
                 if name == "--set"]  # fmt: skip
    spec = resolve(
        preset=options["--preset"],
        epochs=int(options["--epochs"]),
        batch_size=int(options["--batch-size"]),
        seed=int(options["--seed"]),
        overrides=overrides,
    )
    assert spec.spec_hash() == store.run(4).spec_hash


@pytest.mark.parametrize(
    ("run", "says"),
    [
        (6, "diverged"),  # with nan and inf epochs
        (7, "no epoch finished yet"),
        (8, "running"),
        (9, "lost"),
    ],
)
def test_awkward_runs_have_pages_that_say_what_they_are(site: Path, run: int, says: str) -> None:
    page = (site / "runs" / f"{run}.html").read_text()
    assert says in page


def test_a_diverged_epoch_shows_its_nan_and_inf_and_charts_a_gap(site: Path) -> None:
    page = (site / "runs" / "6.html").read_text()
    assert ">nan<" in page and ">inf<" in page
    data = json.loads(re.search(r'id="run-data">(.*?)</script>', page).group(1))
    assert data["curves"]["test_top1"] == [9.5, None]
    assert "epoch 2: NaN or inf errors (the run diverged there)" in page


def test_an_empty_database_gives_a_site_that_says_so(sqlite_url: str, tmp_path: Path) -> None:
    build(Store(sqlite_url), tmp_path / "site")
    for page in ("index.html", "leaderboard.html", "runs.html", "cost.html"):
        assert 'class="empty"' in (tmp_path / "site" / page).read_text()
    assert "holds no runs yet" in (tmp_path / "site" / "index.html").read_text()


def test_names_and_values_holding_a_script_are_shown_escaped(
    sqlite_url: str, tmp_path: Path
) -> None:
    store = Store(sqlite_url)
    run_id = fill_hostile(store)
    build(store, tmp_path / "site", title=HOSTILE)
    for page in (tmp_path / "site").rglob("*.html"):
        text = page.read_text()
        assert "<script>alert" not in text, page
    run_page = (tmp_path / "site" / "runs" / f"{run_id}.html").read_text()
    assert str(escape(HOSTILE)) in run_page  # shown, as text
    # A layer's name reaches the chart data inside a <script>: it cannot close it.
    data = json.loads(re.search(r'id="run-data">(.*?)</script>', run_page).group(1))
    assert f"L1 </script>{HOSTILE}" in data["alignment"]["metrics"]["update_angle"]


def test_no_secret_of_the_database_url_is_in_the_site(store: Store, tmp_path: Path) -> None:
    if store.url.password is None:  # SQLite: as if the URL had carried a password and a token
        store.url = store.url.set(username="me", password="hunter2pw", query={"token": "tok3n"})
        store.display_url = mask_url(store.url)
    secrets = [str(store.url.password).encode(), *(v.encode() for v in store.url.query.values())]
    build(store, tmp_path / "site")
    for page in (tmp_path / "site").rglob("*"):
        if page.is_file():
            text = page.read_bytes()
            assert not [secret for secret in secrets if secret in text], page
    assert f"{store.url.username}:***@" in (tmp_path / "site" / "index.html").read_text()


def test_the_cost_page_puts_each_rule_beside_bp_against_its_error(site: Path) -> None:
    (table,) = [t for t in tables(site / "cost.html") if t["attrs"].get("id") == "cost"]
    header = table["header"]
    step_vs_bp, error = header.index("ms/step") + 1, header.index("test top-1")
    rows = {(row[0], row[2]): row for row in table["rows"]}
    bp, fa = rows[("BP", "fc")], rows[("FA", "lc")]
    assert bp[step_vs_bp] == "1.00"
    # BP fc: seed 0 three epochs at 2 ms/step, seed 1 two at 3 (median 2); best test 1.6, 1.4.
    assert bp[header.index("ms/step")] == "2.00" and bp[error] == "1.50"
    assert fa[error] == "9.00"
    assert [h for row in table["links"] for cell in row for h in cell]


def test_suite_and_data_filters_keep_only_their_runs(store: Store, tmp_path: Path) -> None:
    add_run(store, None, [(50.0, 60.0)], algorithm="bp", architecture="fc", dataset="synthetic")
    build(store, tmp_path / "mnist", model.Filters(datasets={"mnist"}))
    build(store, tmp_path / "fa", model.Filters(presets={"mnist-lc-fa", "mnist-fc-fa"}))
    build(store, tmp_path / "all")
    assert not (tmp_path / "mnist" / "runs" / "10.html").exists()
    assert (tmp_path / "all" / "runs" / "10.html").exists()
    assert sorted(p.name for p in (tmp_path / "fa" / "runs").iterdir()) == [
        "5.html",
        "7.html",
        "9.html",
    ]
    assert [b["attrs"]["data-architecture"] for b in boards(tmp_path / "fa")] == ["lc"]


def test_the_cli_writes_the_site_and_refuses_bad_input(store: Store, tmp_path: Path) -> None:
    url = store.url.render_as_string(hide_password=False)
    result = runner.invoke(app, ["report", "--out", str(tmp_path / "s"), "--db", url])
    assert result.exit_code == 0, result.output
    assert "wrote" in result.stdout and (tmp_path / "s" / MARKER).exists()
    again = runner.invoke(app, ["report", "--out", str(tmp_path / "s"), "--db", url])
    assert again.exit_code == 0, again.output  # its own site is rewritten
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    refused = runner.invoke(app, ["report", "--out", str(tmp_path / "other"), "--db", url])
    assert refused.exit_code == 2 and "did not write" in refused.output
    both = runner.invoke(app, ["report", "--db", url])
    assert both.exit_code == 2 and "--out DIR" in both.output
    mixed = runner.invoke(
        app, ["report", "--out", str(tmp_path / "x"), "--suite", "smoke", "--data", "mnist"]
    )
    assert mixed.exit_code == 2 and "not both" in mixed.output


def test_the_package_ships_its_templates_and_scripts() -> None:
    """What a non-editable wheel must hold (pyproject's package-data)."""
    root = resources.files("biobench.report")
    for name in STATIC:
        assert root.joinpath("static", name).is_file()
    for name in ("base", "index", "leaderboard", "runs", "run", "study", "cost"):
        assert root.joinpath("templates", f"{name}.html.j2").is_file()
    pyproject = (Path(__file__).parents[2] / "pyproject.toml").read_text()
    assert '"biobench.report" = ["templates/*.html.j2", "static/*"]' in pyproject
    assert '"biobench.report",' in pyproject


@pytest.mark.slow
def test_a_study_page_shows_its_trials_best_first_and_its_preset_escaped(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'results.db'}"
    args = ["search", "--study", HOSTILE, "--algo", "bp", "--arch", "fc", "--data", "synthetic"]
    args += ["--trials", "2", "--epochs", "1", "--batch-size", "256", "--device", "cpu"]
    result = runner.invoke(app, [*args, "--db", url])
    assert result.exit_code == 0, result.output
    build(Store(url), tmp_path / "site")
    page = (tmp_path / "site" / "studies" / "1.html").read_text()
    assert "<script>alert" not in page and str(escape(HOSTILE)) in page
    (trials,) = [t for t in tables(tmp_path / "site" / "studies" / "1.html")]
    objectives = [float(row[trials["header"].index("objective")]) for row in trials["rows"]]
    assert objectives == sorted(objectives)
    assert 'id="preset"' in page and "hparams:" in page
    assert "lr" in trials["header"]  # the parameter each trial drew
    (studies,) = tables(tmp_path / "site" / "index.html")
    assert studies["rows"][0][-1] == f"{objectives[0]:.2f}"  # the best objective, as a number


@pytest.mark.slow
def test_a_trained_run_has_its_environment_alignment_and_cost_on_its_page(
    tmp_path: Path,
) -> None:
    """Realism: two 1-epoch digits runs, trained, then reported."""
    import torch

    url = f"sqlite:///{tmp_path / 'results.db'}"
    for algo in ("bp", "dfa"):
        args = ["run", "--algo", algo, "--arch", "fc", "--data", "digits", "--epochs", "1"]
        result = runner.invoke(app, [*args, "--device", "cpu", "--threads", "1", "--db", url])
        assert result.exit_code == 0, result.output
    build(Store(url), tmp_path / "site")
    page = (tmp_path / "site" / "runs" / "2.html").read_text()
    assert f"<td>{torch.__version__}</td>" in page
    data = json.loads(re.search(r'id="run-data">(.*?)</script>', page).group(1))
    assert data["curves"]["epoch"] == [1] and data["curves"]["test_top1"][0] is not None
    assert data["alignment"]["metrics"]["update_angle"]  # DFA measured against BP
    assert "<th>step_ms</th>" in page
    (board,) = boards(tmp_path / "site")
    assert [row[1] for row in board["rows"]] == ["BP", "DFA"]
    (bp,) = Store(url).runs([1])
    (dfa,) = Store(url).runs([2])
    assert board["rows"][1][6] == f"{dfa.best_test_top1 - bp.best_test_top1:+.2f}"


def test_an_out_that_is_a_file_or_unwritable_is_one_line(store: Store, tmp_path: Path) -> None:
    url = store.url.render_as_string(hide_password=False)
    (tmp_path / "file").write_text("x")
    result = runner.invoke(app, ["report", "--out", str(tmp_path / "file"), "--db", url])
    assert result.exit_code == 2 and "is a file, not a folder" in result.output
    result = runner.invoke(app, ["report", "--out", "/proc/biobench-site", "--db", url])
    assert (
        result.exit_code == 2 and "cannot write the site to /proc/biobench-site" in result.output
    )

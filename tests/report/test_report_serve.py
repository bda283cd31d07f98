"""`biobench report --serve`: the site from the live database, on localhost."""

from __future__ import annotations

import threading
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from typer.testing import CliRunner

from biobench.cli import app
from biobench.report.serve import LiveSite, make_server
from biobench.store import Store
from support.report import add_run, fill

runner = CliRunner()


@pytest.fixture
def store(sqlite_url: str) -> Store:
    store = Store(sqlite_url)
    fill(store)
    return store


@pytest.fixture
def served(store: Store) -> Iterator[str]:
    """The live site on a free port, read again on every request (max_age_s=0)."""
    server = make_server(LiveSite(store, max_age_s=0, refresh_s=3), 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def fetch(url: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.headers["Content-Type"], response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.headers["Content-Type"], error.read().decode()


def test_it_listens_on_localhost_only(store: Store) -> None:
    server = make_server(LiveSite(store), 0)
    try:
        assert server.server_address[0] == "127.0.0.1"
    finally:
        server.server_close()


@pytest.mark.parametrize(
    "path", ["/", "/index.html", "/leaderboard.html", "/runs.html", "/cost.html", "/runs/1.html"]
)
def test_it_serves_the_sites_pages(served: str, path: str) -> None:
    status, kind, body = fetch(served + path)
    assert status == 200 and kind.startswith("text/html") and "</html>" in body


def test_it_serves_the_shipped_scripts_and_nothing_else(served: str) -> None:
    status, kind, body = fetch(served + "/static/chart.umd.min.js")
    assert status == 200 and kind.startswith("text/javascript") and "Chart.js v4" in body
    for path in ("/static/../site.py", "/static/%2e%2e/site.py", "/../pyproject.toml", "/x"):
        assert fetch(served + path)[0] == 404, path


def test_running_runs_are_shown_with_their_latest_epoch_and_pages_refresh(
    store: Store, served: str
) -> None:
    _, _, board = fetch(served + "/leaderboard.html")
    assert 'id="running"' in board and "run 8</a>" in board and "epoch 1/500" in board
    assert '<meta http-equiv="refresh" content="3">' in board
    store.write_epoch(8, 2, {"train_top1": 5.0, "test_top1": 6.0})
    _, _, board = fetch(served + "/leaderboard.html")
    assert "epoch 2/500" in board and "test top-1 6.00%" in board  # read again, live
    _, _, page = fetch(served + "/runs/8.html")
    assert "epoch 2 of 500" in page and "running" in page


def test_pages_stop_refreshing_when_no_run_is_going(store: Store, served: str) -> None:
    store.set_status(8, "finished")
    _, _, board = fetch(served + "/leaderboard.html")
    assert 'http-equiv="refresh"' not in board and 'id="running"' not in board


def test_a_run_that_starts_gets_its_page(store: Store, served: str) -> None:
    assert fetch(served + "/runs/10.html")[0] == 404
    add_run(store, "mnist-fc-bp", [(1.0, 2.0)], seed=5, status="running")
    status, _, page = fetch(served + "/runs/10.html")
    assert status == 200 and "running" in page


def test_the_static_site_never_refreshes(store: Store, tmp_path) -> None:  # noqa: ANN001
    from biobench.report.site import build

    build(store, tmp_path / "site")  # a run is going, but a file is a snapshot
    assert 'http-equiv="refresh"' not in (tmp_path / "site" / "leaderboard.html").read_text()


def test_a_port_in_use_is_one_line(store: Store) -> None:
    server = make_server(LiveSite(store), 0)
    try:
        port = server.server_address[1]
        url = store.url.render_as_string(hide_password=False)
        result = runner.invoke(app, ["report", "--serve", "--port", str(port), "--db", url])
        assert result.exit_code == 2 and f"cannot serve on 127.0.0.1:{port}" in result.output
    finally:
        server.server_close()


@pytest.mark.slow
def test_the_command_serves_until_stopped(store: Store) -> None:
    """`biobench report --serve` in a process of its own: it says where, serves, and stops on
    Ctrl-C (SIGINT) with exit 0."""
    import signal
    import socket
    import subprocess
    import sys

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = store.url.render_as_string(hide_password=False)
    command = [sys.executable, "-m", "biobench", "report", "--serve", "--port", str(port)]
    process = subprocess.Popen(
        [*command, "--db", url], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        said = process.stdout.readline()
        assert f"at http://127.0.0.1:{port}/" in said
        status, _, page = fetch(f"http://127.0.0.1:{port}/runs/1.html")
        assert status == 200 and "Run 1: bp / fc / mnist" in page
    finally:
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=30)
    assert process.returncode == 0, output

"""`biobench report --serve`: the same site, rendered from the live database on request.

A stdlib ThreadingHTTPServer on 127.0.0.1 (never another interface: the site shows what a
database holds, to whoever reaches it). Each request renders its page from a snapshot of the
database at most `max_age_s` old; while a run is going every page refreshes itself, so a
browser left open follows its epochs.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

from biobench.report import model
from biobench.report.model import Filters
from biobench.report.site import STATIC, Site, static_bytes
from biobench.store import Store

HOST = "127.0.0.1"
TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
         ".css": "text/css; charset=utf-8", ".md": "text/plain; charset=utf-8"}  # fmt: skip


class LiveSite:
    """Pages rendered from a snapshot of the database, read again when older than
    `max_age_s` (one read at a time, shared by the requests that arrive meanwhile)."""

    def __init__(
        self,
        store: Store,
        filters: Filters | None = None,
        title: str | None = None,
        max_age_s: float = 2.0,
        refresh_s: int = 5,
    ) -> None:
        self.store, self.filters, self.title = store, filters, title
        self.max_age_s, self.refresh_s = max_age_s, refresh_s
        self._lock = threading.Lock()
        self._site: Site | None = None
        self._pages: dict[str, Callable[[], str]] = {}
        self._read_at = 0.0

    def pages(self) -> dict[str, Callable[[], str]]:
        with self._lock:
            if self._site is None or time.monotonic() - self._read_at > self.max_age_s:
                data = model.load(self.store, self.filters, self.title)
                self._site = Site(data, live=True, refresh_s=self.refresh_s)
                self._pages = self._site.pages()
                self._read_at = time.monotonic()
            return self._pages

    def get(self, path: str) -> tuple[int, str, bytes]:
        """(status, content type, body) for a request's path."""
        path = unquote(urlsplit(path).path).lstrip("/") or "index.html"
        if path.startswith("static/") and path.removeprefix("static/") in STATIC:
            name = path.removeprefix("static/")
            return HTTPStatus.OK, TYPES[name[name.rfind(".") :]], static_bytes(name)
        render = self.pages().get(path)
        if render is None:
            body = b"<!doctype html><title>not found</title><p>no such page; <a href=/>home</a>"
            return HTTPStatus.NOT_FOUND, TYPES[".html"], body
        return HTTPStatus.OK, TYPES[".html"], render().encode()


def make_server(site: LiveSite, port: int) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            status, kind, body = site.get(self.path)
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return  # a request log line per page would bury the one line that matters

    server = ThreadingHTTPServer((HOST, port), Handler)
    server.daemon_threads = True
    return server

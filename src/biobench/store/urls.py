"""Database URLs: parsing them (psycopg 3 for PostgreSQL) and masking their secrets.

Secrets are found by reading the URL's parts, never by a pattern on the raw string, so a
password holding "/", ":" or "@", or given as ?password=, is masked wherever a URL or an argv
is printed or stored.
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import unquote_plus

from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, make_url

from biobench.errors import StoreError

# Query parameters whose value is a secret, by a part of their (lower-case) name: libpq's
# password and sslpassword, and the passwd/pwd/secret/token/api_key spellings other drivers use.
_SECRET_PARAMS = ("pass", "pwd", "secret", "token", "credential", "apikey", "api_key")


def is_secret_param(name: str) -> bool:
    return any(part in unquote_plus(name).lower() for part in _SECRET_PARAMS)


def _secret_spans(text: str) -> list[tuple[int, int]]:
    """Where the secrets of a URL (or a URL-bearing argument such as --db=URL) are in `text`.

    Read generously, as no single parser can: a password may hold an unencoded /, :, ? or @,
    so the user info runs from the first ":" after "://" to the LAST "@", and query parameters
    are read after every "?" (the first may sit inside the password).
    """
    start = text.find("://") + 3 if "://" in text else 0
    spans = []
    at = text.rfind("@", start)
    colon = text.find(":", start, at) if at >= 0 else -1
    if colon >= 0:
        spans.append((colon + 1, at))
    question = text.find("?", start)
    while question >= 0:
        offset = question + 1
        for part in text[offset:].split("&"):
            name, equals, _ = part.partition("=")
            if equals and is_secret_param(name):
                spans.append((offset + len(name) + 1, offset + len(part)))
            offset += len(part) + 1
        question = text.find("?", question + 1)
    return spans


def mask_url(url: str | URL) -> str:
    """`url` with every secret in it (password, password= and token= parameters...) replaced
    by ***, however it is written: also strings SQLAlchemy cannot parse, and arguments like
    --db=URL. Text without a URL's secrets comes back unchanged."""
    text = url.render_as_string(hide_password=False) if isinstance(url, URL) else str(url)
    merged: list[list[int]] = []
    for begin, end in sorted(s for s in _secret_spans(text) if s[0] < s[1]):
        if merged and begin <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([begin, end])
    kept, last = [], 0
    for begin, end in merged:
        kept += [text[last:begin], "***"]
        last = end
    return "".join([*kept, text[last:]])


# The command-line options whose value is a database URL (every option declared with
# metavar="URL"; a test holds the two equal).
URL_OPTIONS = ("--db",)


def mask_argv(argv: Sequence[str]) -> list[str]:
    """`argv` as it may be shown or stored: the secrets of every URL masked, whether it is an
    option's value (`--db URL`, `--db=URL`, a URL without a scheme included) or any other
    argument holding one (`--set x=postgresql://...`). Every hint that repeats a command goes
    through here."""
    out = []
    for i, arg in enumerate(argv):
        option, equals, _ = arg.partition("=")
        after_option = i > 0 and argv[i - 1] in URL_OPTIONS
        if after_option or (equals and option in URL_OPTIONS) or "://" in arg:
            arg = mask_url(arg)
        out.append(arg)
    return out


def parse_url(raw: str) -> URL:
    """Parse a database URL, defaulting PostgreSQL to the psycopg (v3) driver we depend on."""
    try:
        url = make_url(raw)
    except (sa_exc.ArgumentError, ValueError):
        raise StoreError(
            f"cannot parse database URL {mask_url(raw)!r}; expected e.g. "
            "sqlite:///path/results.db or postgresql://user:password@host/dbname"
        ) from None
    parts = [url.username, url.password, url.host, url.database, *url.query]
    for values in url.query.values():
        parts += [values] if isinstance(values, str) else values
    if any("\x00" in part for part in parts if part):  # raw or as %00: drivers fail on it
        raise StoreError(f"database URL {mask_url(raw)!r} holds a NUL character; remove it")
    if url.host and "@" in url.host:  # SQLAlchemy ends the password at its first "@"
        raise StoreError(
            f"the password in database URL {mask_url(raw)} holds an '@'; write it as %40"
        )
    if url.drivername in ("postgres", "postgresql"):
        url = url.set(drivername="postgresql+psycopg")
    try:
        url.get_dialect()
    except (sa_exc.NoSuchModuleError, ImportError):
        raise StoreError(
            f"unknown database scheme {url.drivername!r} in {mask_url(url)}; "
            "use sqlite:///path/results.db or postgresql://user:password@host/dbname"
        ) from None
    return url

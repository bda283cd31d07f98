"""Tests for the gaps a mutation run (tools/mutation.sh) showed in store/urls.py: each fails on a
plausible one-line bug there, asserting what a user relies on: which query parameters print as
***, a password without a user name masked too, and the URL spellings a store accepts.
"""

from __future__ import annotations

import pytest

from biobench.errors import StoreError
from biobench.store import Store, mask_url
from biobench.store.urls import parse_url


@pytest.mark.parametrize(
    "name",
    ["password", "sslpassword", "passwd", "pwd", "secret", "client_secret", "token"]
    + ["credential", "credentials", "apikey", "api_key", "API_KEY", "pass%77ord"],
)
def test_every_spelling_of_a_secret_query_parameter_prints_masked(name: str) -> None:
    raw = f"postgresql://u@h/db?sslmode=require&{name}=s3cret9x&application_name=bb"
    assert mask_url(raw) == (f"postgresql://u@h/db?sslmode=require&{name}=***&application_name=bb")


def test_a_password_given_without_a_user_name_prints_masked() -> None:
    assert mask_url("postgresql://:s3cret9x@h/db") == "postgresql://:***@h/db"
    assert mask_url("--db=postgresql://:s3cret9x@h/db") == "--db=postgresql://:***@h/db"


def test_a_secret_parameter_after_a_password_holding_a_question_mark_prints_masked() -> None:
    raw = "postgresql://u:a?b=c@h/db?password=s3cret9x&sslmode=require"
    assert mask_url(raw) == "postgresql://u:***@h/db?password=***&sslmode=require"


def test_a_password_holding_a_secret_parameter_is_masked_whole() -> None:
    # The password's span and the parameter's overlap: one *** covers both.
    assert mask_url("postgresql://u:a?token=s3cret9x@h/db") == "postgresql://u:***"
    raw = "postgresql://u:a?token=s3cret9x@h/db?sslmode=require&application_name=bb"
    assert mask_url(raw) == "postgresql://u:***&application_name=bb"


def test_an_empty_password_prints_empty_not_as_a_hidden_secret() -> None:
    raw = "postgresql://u:@h/db?password=&sslmode=require"
    assert mask_url(raw) == raw


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (
            "u:s3cret9x@ no scheme",
            "cannot parse database URL 'u:***@ no scheme'; expected e.g. "
            "sqlite:///path/results.db or postgresql://user:password@host/dbname",
        ),
        (
            "postgresql://u:s3cret9x@et@h/db",
            "the password in database URL postgresql://u:***@h/db holds an '@'; write it as %40",
        ),
        (
            "mysqll://u:s3cret9x@h/db",
            "unknown database scheme 'mysqll' in mysqll://u:***@h/db; "
            "use sqlite:///path/results.db or postgresql://user:password@host/dbname",
        ),
    ],
)
def test_a_url_that_cannot_be_used_is_refused_with_one_line_saying_what_to_write(
    raw: str, message: str
) -> None:
    with pytest.raises(StoreError) as caught:
        parse_url(raw)
    assert str(caught.value) == message


def test_postgres_and_postgresql_urls_both_open_with_psycopg() -> None:
    for scheme in ("postgres", "postgresql"):
        url = parse_url(f"{scheme}://u:s3cret9x@h/db")
        assert url.drivername == "postgresql+psycopg"
        assert Store(f"{scheme}://u:s3cret9x@h/db", check=False).display_url == (
            "postgresql+psycopg://u:***@h/db"
        )

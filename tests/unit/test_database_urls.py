"""db/urls.py reads a database URL as SQLAlchemy's make_url does (the engine, the key file and the one-shot
reader of ``show`` must find the same database and file)."""

from __future__ import annotations

import pytest
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from db.urls import parse_database_url

URLS = [
    "sqlite:///./opsconductor.db",
    "sqlite:////var/lib/opsc/opsc.db",
    "sqlite://",
    "sqlite:///:memory:",
    "sqlite:///with%20space.db?timeout=20",
    "sqlite+pysqlite:///x.db",
    "postgresql+psycopg2://opsc:p%40ss%3Aword@db.internal:5433/opsc?sslmode=require&application_name=show",
    "postgresql://db/opsc",
    "postgresql:///opsc?host=/var/run/postgresql",
    "postgresql://[::1]:5432/opsc",
    "postgresql://user@host/",
    "postgresql+asyncpg://u:p@h/d",
]


@pytest.mark.parametrize("url", URLS)
def test_the_parts_are_make_urls(url: str) -> None:
    """Driver, user, password, host, port, database and query: the same values as SQLAlchemy's."""
    theirs, ours = make_url(url), parse_database_url(url)
    assert (ours.drivername, ours.username, ours.password, ours.host, ours.port, ours.database, ours.query) == (
        theirs.drivername, theirs.username, theirs.password, theirs.host, theirs.port, theirs.database,
        dict(theirs.query),
    )  # fmt: skip
    assert (ours.backend, ours.driver) == (theirs.get_backend_name(), theirs.drivername.partition("+")[2] or None)


def test_the_password_is_not_in_the_repr() -> None:
    """A parsed URL may reach a log or a traceback: its repr leaves the password out."""
    assert "s3cret" not in repr(parse_database_url("postgresql://opsc:s3cret@db/opsc"))


@pytest.mark.parametrize("url", ["opsconductor.db", "postgresql+psycopg2://u:p@h:/d", "postgresql://h:x/d"])
def test_what_is_not_a_url_is_refused(url: str) -> None:
    """What make_url refuses (no scheme, an empty or non-numeric port): the direct reader then leaves the URL
    to the ORM, which reports it, instead of reading a database every other command fails to open."""
    with pytest.raises((ValueError, ArgumentError)):
        make_url(url)
    with pytest.raises(ValueError):
        parse_database_url(url)

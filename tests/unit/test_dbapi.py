"""db/dbapi.py, the one-shot reader's connection (issue 15): what it opens, what it leaves to the ORM
(``DirectReadUnavailable``), and how it reads times and placeholders. SQLite only; PostgreSQL is read by
tests/integration/test_direct_show.py through the ``db`` fixture."""

from __future__ import annotations

import os
import sqlite3
import threading
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.dialects.postgresql.psycopg import PGDialect_psycopg
from sqlalchemy.dialects.postgresql.psycopg2 import PGDialect_psycopg2
from sqlalchemy.engine import make_url

from db.dbapi import POSTGRESQL_CONNECT_TIMEOUT_S, DirectReadUnavailable, connect_keywords, read_only, utc
from db.urls import parse_database_url


@pytest.fixture
def database(tmp_path: Path) -> Path:
    path = tmp_path / "opsc.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE t (id INTEGER, name TEXT, at TEXT)")
        conn.execute("INSERT INTO t VALUES (1, 'a?b', '2026-01-02 03:04:05.678901'), (2, '100%', NULL)")
    return path


def test_a_sqlite_file_is_read_with_qmark_sql(database: Path) -> None:
    """``?`` placeholders; a ``?`` or ``%`` inside a value is data."""
    with read_only(f"sqlite:///{database}") as conn:
        assert conn.rows("SELECT id, name FROM t WHERE name = ? OR id = ? ORDER BY id", ["a?b", 2]) == [
            (1, "a?b"),
            (2, "100%"),
        ]


def test_the_connection_refuses_to_write(database: Path) -> None:
    """Read-only: a write is a driver error, which the caller reads as 'use the ORM'."""
    with read_only(f"sqlite:///{database}") as conn, pytest.raises(DirectReadUnavailable):
        conn.rows("DELETE FROM t")
    with sqlite3.connect(database) as check:
        assert check.execute("SELECT count(*) FROM t").fetchone() == (2,)


def test_a_missing_file_is_not_created(tmp_path: Path) -> None:
    """The engine creates the file 0600 (db/engine.py); SQLite would make it 0644: leave it to the engine."""
    missing = tmp_path / "none.db"
    with pytest.raises(DirectReadUnavailable), read_only(f"sqlite:///{missing}"):
        pass
    assert not missing.exists()


def test_a_database_without_the_table_or_not_a_database_is_left_to_the_orm(tmp_path: Path, database: Path) -> None:
    """No schema yet, or not SQLite at all: the ORM path says so in its own words."""
    with read_only(f"sqlite:///{database}") as conn, pytest.raises(DirectReadUnavailable):
        conn.rows("SELECT * FROM executions")
    junk = tmp_path / "junk.db"
    junk.write_text("this is not a database " * 100)
    with pytest.raises(DirectReadUnavailable), read_only(f"sqlite:///{junk}") as conn:
        conn.rows("SELECT name FROM sqlite_master")


@pytest.mark.parametrize(
    "url",
    [
        "sqlite://",
        "sqlite:///:memory:",
        "sqlite:///file:x.db?mode=ro&uri=true",
        "sqlite:///x.db?timeout=20",
        "sqlite+aiosqlite:///x.db",
        "postgresql+asyncpg://u:p@127.0.0.1/d",
        "postgresql+pg8000://u:p@127.0.0.1/d",
        "postgresql+psycopg2://u:p@/d?host=h1&host=h2",  # SQLAlchemy joins a repeated host into a multi-host one
        "postgresql+psycopg://u:p@/d?host=h1&host=h2",
        "postgresql+psycopg2://u:p@/d?host=h1:5433",  # and splits a host:port
        "postgresql+psycopg2://u:p@/d?host=h1,h2&port=1,2",
        "mysql://u:p@127.0.0.1/d",
        "not a url",
    ],
)
def test_other_urls_and_drivers_are_left_to_the_orm(url: str) -> None:
    """Only the plain SQLite file and the psycopg and psycopg2 forms are read directly; the message never quotes
    the URL."""
    with pytest.raises(DirectReadUnavailable) as refused, read_only(url):
        pass
    assert "u:p" not in str(refused.value)


@pytest.mark.parametrize("driver", ["+psycopg", "+psycopg2", ""])  # no driver: SQLAlchemy 2.1 takes psycopg (3)
def test_an_unreachable_postgresql_is_left_to_the_orm(driver: str) -> None:
    """Nothing listens on port 1: the connection fails at once, and the ORM path reports it."""
    url = f"postgresql{driver}://opsc:s3cret@127.0.0.1:1/opsc"
    with pytest.raises(DirectReadUnavailable) as refused, read_only(url):
        pass
    assert "s3cret" not in str(refused.value)


def test_stored_times_read_as_aware_utc() -> None:
    """SQLite's text without an offset is UTC; a driver's aware datetime is converted to UTC."""
    assert utc("2026-01-02 03:04:05.678901") == datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    assert utc("2026-01-02 03:04:05") == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    plus_two = datetime(2026, 1, 2, 5, 4, 5, tzinfo=timezone(timedelta(hours=2)))
    assert utc(plus_two) == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC) and utc(plus_two).tzinfo is UTC  # type: ignore[union-attr]
    assert utc(None) is None


@pytest.mark.parametrize(
    "url",
    [
        "postgresql+psycopg2://opsc:p%40ss%3Aw%2Fd@db.example:5433/opsc?sslmode=require",
        "postgresql+psycopg2://opsc@db.example/opsc?dbname=other",  # the query wins, as in SQLAlchemy
        "postgresql+psycopg2://opsc@db.example/opsc?host=/var/run/postgresql",
        "postgresql+psycopg2://opsc@db.example:5433/opsc?port=5434&user=other&password=x",
        "postgresql+psycopg2://opsc@/opsc?host=/var/run/postgresql",
        "postgresql+psycopg2://:@db.example/",  # empty parts are left out
        "postgresql+psycopg2:///opsc?connect_timeout=2",
    ],
)
@pytest.mark.parametrize("dialect", [PGDialect_psycopg2, PGDialect_psycopg])
def test_postgresql_keywords_are_what_sqlalchemys_dialect_passes(url: str, dialect: Any) -> None:
    """The direct reader connects where the engine does: the same libpq keywords as SQLAlchemy's psycopg2 and
    psycopg dialects (``?dbname=`` over the path, ``?host=`` over the host...), plus a connect timeout of its
    own."""
    _args, expected = dialect().create_connect_args(make_url(url))
    assert connect_keywords(parse_database_url(url)) == {"connect_timeout": POSTGRESQL_CONNECT_TIMEOUT_S, **expected}


def test_a_path_starting_with_two_slashes_is_not_read_as_a_uri_authority(database: Path) -> None:
    """``sqlite://///localhost/DIR/opsc.db``: SQLAlchemy opens the file ``//localhost/DIR/opsc.db`` (no such file
    here); a ``file://localhost/DIR/opsc.db`` URI would open ``/DIR/opsc.db``, another database."""
    with pytest.raises(DirectReadUnavailable), read_only(f"sqlite://///localhost{database}"):
        pass
    with read_only(f"sqlite:///{'/' + str(database)}") as conn:  # //DIR/opsc.db: the same file on POSIX
        assert conn.rows("SELECT count(*) FROM t") == [(2,)]


def test_a_url_no_driver_can_take_is_left_to_the_orm(tmp_path: Path) -> None:
    """A path that is not UTF-8 (a byte from the environment), a NUL in a PostgreSQL password: the ORM path
    reports them; the direct reader does not fail the command on its own account."""
    not_utf8 = os.fsdecode(b"opsc-\xff.db")
    nul = "opsc:s3cr%00et@127.0.0.1:1/opsc"
    for url in (f"sqlite:///{tmp_path}/{not_utf8}", f"postgresql+psycopg2://{nul}", f"postgresql+psycopg://{nul}"):
        with pytest.raises(DirectReadUnavailable) as refused, read_only(url):
            pass
        assert "s3cr" not in str(refused.value)


def test_a_fifo_is_left_to_the_orm_at_once(tmp_path: Path) -> None:
    """A FIFO where the file should be: a read-only open would wait for a writer for ever; the ORM's fails."""
    fifo = tmp_path / "opsc.db"
    os.mkfifo(fifo)
    outcome: list[BaseException] = []

    def attempt() -> None:
        try:
            with read_only(f"sqlite:///{fifo}"):
                pass
        except BaseException as exc:  # handed to the test's thread
            outcome.append(exc)

    reader = threading.Thread(target=attempt, daemon=True)
    reader.start()
    reader.join(timeout=10)
    assert not reader.is_alive(), "the direct reader blocked on a FIFO"
    assert [type(exc) for exc in outcome] == [DirectReadUnavailable]


def test_a_path_with_a_nul_is_not_cut_short(database: Path) -> None:
    """``%00`` in the path: Python refuses it for the engine; SQLite would read the URI up to it (``opsc.db``)."""
    with pytest.raises(DirectReadUnavailable), read_only(f"sqlite:///{database}%00.other"):
        pass

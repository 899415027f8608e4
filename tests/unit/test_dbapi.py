"""db/dbapi.py, the one-shot reader's connection (issue 15): what it opens, what it leaves to the ORM
(``DirectReadUnavailable``), and how it reads times and placeholders. SQLite only; PostgreSQL is read by
tests/integration/test_direct_show.py through the ``db`` fixture."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from db.dbapi import DirectReadUnavailable, read_only, utc


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
        "postgresql+psycopg://u:p@127.0.0.1/d",
        "mysql://u:p@127.0.0.1/d",
        "not a url",
    ],
)
def test_other_urls_and_drivers_are_left_to_the_orm(url: str) -> None:
    """Only the plain SQLite file and psycopg2 forms are read directly; the message never quotes the URL."""
    with pytest.raises(DirectReadUnavailable) as refused, read_only(url):
        pass
    assert "u:p" not in str(refused.value)


def test_an_unreachable_postgresql_is_left_to_the_orm() -> None:
    """Nothing listens on port 1: the connection fails at once, and the ORM path reports it."""
    with pytest.raises(DirectReadUnavailable) as refused, read_only("postgresql://opsc:s3cret@127.0.0.1:1/opsc"):
        pass
    assert "s3cret" not in str(refused.value)


def test_stored_times_read_as_aware_utc() -> None:
    """SQLite's text without an offset is UTC; a driver's aware datetime is converted to UTC."""
    assert utc("2026-01-02 03:04:05.678901") == datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    assert utc("2026-01-02 03:04:05") == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    plus_two = datetime(2026, 1, 2, 5, 4, 5, tzinfo=timezone(timedelta(hours=2)))
    assert utc(plus_two) == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC) and utc(plus_two).tzinfo is UTC  # type: ignore[union-attr]
    assert utc(None) is None

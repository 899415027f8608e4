"""A DB-API connection for one-shot reads, without SQLAlchemy (issue 15: ``show`` in well under 0.5 s of CPU).

Importing SQLAlchemy, SQLModel and the tables costs about 0.5 s of CPU, more than a one-shot read does in
all. So a command that only reads a few rows may open this instead of a Session, from the same
``OPSC_DATABASE_URL`` that the engine (db/engine.py) uses:

- ``sqlite:///PATH`` (driver ``pysqlite``, the default): ``sqlite3``, read-only (a ``mode=ro`` URI: a
  missing file is not created, where the engine would create it 0600), in one deferred transaction, so
  every read sees the same snapshot. The URI names the very file SQLAlchemy opens: a path starting ``//``
  is not read as a URI authority, and a path with a NUL (which Python refuses) is not cut short at it.
- ``postgresql+psycopg://user:password@host:port/database?params`` (or ``postgresql://``, which SQLAlchemy 2.1
  reads with psycopg 3 too) and ``postgresql+psycopg2://…``: psycopg2 (psycopg if psycopg2 is not
  installed: a fifth of the import's CPU) with those parts and the query's parameters as libpq keywords, a
  parameter winning over the part it names (``?dbname=``, ``?host=``, ``?user=``), as SQLAlchemy's dialects
  pass them; in a READ ONLY transaction. Not a repeated parameter or a multi-host ``host``/``port``
  (SQLAlchemy rewrites those).

Anything else (another driver, a URL with options this module does not know, ``:memory:``, a driver that is
not installed) and any driver error (unreachable, no schema yet, locked) raises ``DirectReadUnavailable``:
the caller then reads through the ORM, which reports every such problem in its own words. The fast path
never fails a command on its own account.

SQL is written once with ``?`` placeholders (qmark); ``ReadConnection.rows`` adapts it for psycopg (``%s``,
with a literal ``%`` doubled), so SQL given here has no ``?`` inside a literal. Times come back as aware UTC
datetimes on both databases (``utc``), as SQLModel's UTCDateTime columns give them to the ORM.

Imports nothing of ours but db/urls.py; it reads the URL it is given, never the settings.
"""

from __future__ import annotations

import os
import sqlite3
import stat
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from db.urls import DatabaseUrl, parse_database_url

SQLITE_BUSY_TIMEOUT_S = 30  # as the engine's (db/engine.py): a reader waits for a WAL recovery, never fails
# Unless the URL sets its own: a server that does not answer costs this, then the ORM path's own wait (the
# fallback reports it), instead of two full TCP time-outs.
POSTGRESQL_CONNECT_TIMEOUT_S = 5


class DirectReadUnavailable(Exception):
    """This database cannot be read directly here: read it through the ORM instead. Never shown to a user.

    Its message says why, without the URL (which may hold a password).
    """


class ReadConnection:
    """An open read-only connection: ``rows(sql, params)`` with qmark SQL on either database."""

    def __init__(self, raw: Any, *, backend: str, errors: tuple[type[BaseException], ...]) -> None:
        self._raw = raw
        self.backend = backend  # "sqlite" or "postgresql"
        self._errors = errors

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Every row ``sql`` (with ``?`` placeholders) returns for ``params``.

        Raises:
            DirectReadUnavailable: the driver failed (no such table, connection lost, …).
        """
        text = sql if self.backend == "sqlite" else sql.replace("%", "%%").replace("?", "%s")
        try:
            cursor = self._raw.cursor()
            try:
                cursor.execute(text, tuple(params))
                return [tuple(row) for row in cursor.fetchall()]
            finally:
                cursor.close()
        except self._errors as exc:
            raise DirectReadUnavailable(f"{self.backend} read failed: {type(exc).__name__}") from exc

    def close(self) -> None:
        """Close the connection; its read-only transaction is discarded."""
        self._raw.close()


def utc(value: Any) -> datetime | None:
    """A stored time as an aware UTC datetime (None stays None).

    SQLite keeps UTC text without an offset (``2026-01-02 03:04:05.678901``); psycopg returns aware
    datetimes in the session's time zone. SQLModel's UTCDateTime reads both the same way.
    """
    if value is None:
        return None
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    if not isinstance(moment, datetime):
        raise TypeError(f"not a stored time: {type(value).__name__}")
    return moment.replace(tzinfo=UTC) if moment.utcoffset() is None else moment.astimezone(UTC)


@contextmanager
def read_only(url: str) -> Iterator[ReadConnection]:
    """A read-only connection to the database at ``url``, closed (its transaction discarded) after.

    Raises:
        DirectReadUnavailable: see the module docstring; then read through the ORM.
    """
    try:
        parts = parse_database_url(url)
    except ValueError:
        raise DirectReadUnavailable("not a database URL this module reads") from None
    if parts.backend == "sqlite" and parts.driver in (None, "pysqlite"):
        connection = _sqlite(parts)
    elif parts.backend == "postgresql" and parts.driver in (None, "psycopg", "psycopg2"):
        connection = _postgresql(parts)
    else:
        raise DirectReadUnavailable(f"no direct reader for {parts.drivername}")
    try:
        yield connection
    finally:
        connection.close()


def _sqlite(parts: DatabaseUrl) -> ReadConnection:
    path = parts.database
    if not path or path == ":memory:" or path.startswith("file:") or parts.query or "\x00" in path:
        raise DirectReadUnavailable("an in-memory, URI-form, parameterised or NUL-bearing SQLite URL")
    try:
        regular = stat.S_ISREG(os.stat(path).st_mode)
    except OSError as exc:  # no such file: mode=ro would not create one, the engine does (0600)
        raise DirectReadUnavailable(f"sqlite file unavailable: {type(exc).__name__}") from exc
    if not regular:  # a FIFO would block a read-only open for ever (the ORM's read-write open fails at once)
        raise DirectReadUnavailable("the SQLite path is not a regular file")
    try:
        raw = sqlite3.connect(sqlite_uri(path), uri=True, timeout=SQLITE_BUSY_TIMEOUT_S, isolation_level=None)
    # No such file (mode=ro does not create one), no permission; ValueError: a path that is not UTF-8 (quote)
    except (sqlite3.Error, ValueError) as exc:
        raise DirectReadUnavailable(f"sqlite open failed: {type(exc).__name__}") from exc
    connection = ReadConnection(raw, backend="sqlite", errors=(sqlite3.Error,))
    try:
        # Deferred: takes no lock, and the snapshot starts with the first read, for every read after it.
        raw.execute("BEGIN")
    except sqlite3.Error as exc:
        raw.close()
        raise DirectReadUnavailable(f"sqlite begin failed: {type(exc).__name__}") from exc
    return connection


def sqlite_uri(path: str) -> str:
    """The read-only ``file:`` URI of the SQLite file ``path`` (as given to ``sqlite3.connect`` by SQLAlchemy).

    An absolute path goes after an empty authority (``file:///abs``, ``file:////x`` for ``//x``): after a bare
    ``file:``, a path starting ``//`` would name a host (``//localhost/tmp/x.db`` would open ``/tmp/x.db``).
    """
    quoted = quote(path)
    return f"file://{quoted}?mode=ro" if path.startswith("/") else f"file:{quoted}?mode=ro"


def connect_keywords(parts: DatabaseUrl) -> dict[str, Any]:
    """libpq's keywords (psycopg's and psycopg2's) for ``parts``: the URL's parts, then its query over them, as
    SQLAlchemy's dialects pass them.

    Raises:
        DirectReadUnavailable: a repeated parameter or a multi-host form, which SQLAlchemy rewrites.
    """
    multi_host = any(sep in parts.query.get(key, "") for key in ("host", "port") for sep in ",:")
    if parts.repeated or multi_host:
        raise DirectReadUnavailable("a repeated or multi-host PostgreSQL URL parameter")
    keywords: dict[str, Any] = {"connect_timeout": POSTGRESQL_CONNECT_TIMEOUT_S}
    for keyword, value in (
        ("user", parts.username),
        ("password", parts.password),
        ("host", parts.host),
        ("port", parts.port),
        ("dbname", parts.database),
    ):
        if value:  # SQLAlchemy leaves out an empty part (translate_connect_args)
            keywords[keyword] = value
    return {**keywords, **parts.query}


def _psycopg(parts: DatabaseUrl) -> ReadConnection:
    keywords = connect_keywords(parts)
    try:
        import psycopg  # here, not at the top: a SQLite installation needs no PostgreSQL driver
    except ImportError:
        raise DirectReadUnavailable("psycopg is not installed") from None
    try:
        # No prepared statements: a one-shot read runs each statement once.
        raw = psycopg.connect(**keywords, prepare_threshold=None)
        raw.read_only = True
    except (psycopg.Error, ValueError) as exc:  # ValueError: a NUL in a part (``%00``), which libpq cannot take
        raise DirectReadUnavailable(f"postgresql connect failed: {type(exc).__name__}") from exc
    return ReadConnection(raw, backend="postgresql", errors=(psycopg.Error,))


def _postgresql(parts: DatabaseUrl) -> ReadConnection:
    """psycopg2 if installed, whichever driver the URL names (the same libpq keywords reach the same database):
    importing it costs a fifth of psycopg's CPU (0.03 against 0.15 s), most of what a one-shot read costs."""
    keywords = connect_keywords(parts)
    try:
        import psycopg2  # here, not at the top: a SQLite installation needs no PostgreSQL driver
    except ImportError:
        return _psycopg(parts)
    try:
        raw = psycopg2.connect(**keywords)
    except (psycopg2.Error, ValueError) as exc:  # ValueError: a NUL in a part (``%00``), which libpq cannot take
        raise DirectReadUnavailable(f"postgresql connect failed: {type(exc).__name__}") from exc
    try:
        raw.set_session(readonly=True)
    except psycopg2.Error as exc:
        raw.close()
        raise DirectReadUnavailable(f"postgresql session failed: {type(exc).__name__}") from exc
    return ReadConnection(raw, backend="postgresql", errors=(psycopg2.Error,))

"""Engine and session factory built from Settings.

SQLite gets WAL, foreign keys and a busy timeout on every connection, and ``check_same_thread=False``
because worker threads share the engine; its file is created 0600 (SQLite gives its -wal and -shm the
file's mode), so a step running as another user cannot read it (DESIGN §13). PostgreSQL's pool pings a
connection before handing it out only when it sat idle for ``IDLE_PING_S``: a worker's back-to-back step
transactions skip the round trip, and a connection that waited long enough to have been cut (a restart, an
idle timeout) is tested and replaced first. A cut connection that was idle less than that fails its first
statement; the engine retries those through the outage (core/engine/reachability.py).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event, exc
from sqlalchemy.engine import Engine, make_url
from sqlmodel import Session, create_engine

from db.settings import get_settings

IDLE_PING_S = 1.0
PREPARE_THRESHOLD = 2  # psycopg's default is 5; a worker's statements repeat from its first steps on
_CHECKED_IN_AT = "opsc.checked_in_at"


def _remember_checkin(_dbapi_connection: Any, record: Any) -> None:
    record.info[_CHECKED_IN_AT] = time.monotonic()


def _ping_if_idle(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
    since = record.info.get(_CHECKED_IN_AT)
    if since is None or time.monotonic() - since < IDLE_PING_S:
        return
    try:
        with dbapi_connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception as error:
        # The pool drops this connection and checks out another (SQLAlchemy's pessimistic-disconnect recipe).
        raise exc.DisconnectionError(f"pooled connection is gone: {type(error).__name__}") from error
    dbapi_connection.rollback()  # end the ping's transaction: the session begins its own


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()
    # Let SQLAlchemy's "begin" event emit BEGIN itself (see _sqlite_begin).
    dbapi_connection.isolation_level = None


def _sqlite_begin(conn: Any) -> None:
    # pysqlite defers BEGIN until the first write, so a read-then-write transaction can deadlock
    # between two writers; BEGIN IMMEDIATE takes the write lock up front and lets busy_timeout queue us.
    conn.exec_driver_sql("BEGIN IMMEDIATE")


_engines: dict[str, Engine] = {}
_engines_lock = threading.Lock()


def get_engine(url: str | None = None) -> Engine:
    """The cached engine for ``url`` (default: ``OPSC_DATABASE_URL``)."""
    url = url or get_settings().database_url
    with _engines_lock:
        engine = _engines.get(url)
        if engine is None:
            engine = _engines[url] = _build_engine(url)
        return engine


def _private_sqlite_file(url: str) -> None:
    """Create the database file 0600 before SQLite does (it would use 0644); tighten older ones we own."""
    database = make_url(url).database
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    try:
        fd = os.open(database, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # an empty file is a valid database
    except FileExistsError:
        for path in (database, f"{database}-wal", f"{database}-shm"):  # made by an older version
            try:
                info = os.stat(path)
            except FileNotFoundError:
                continue
            if info.st_uid == os.geteuid() and info.st_mode & 0o077:
                os.chmod(path, info.st_mode & 0o600)
        return
    except FileNotFoundError:
        return  # no such directory: SQLite reports it when it connects
    os.close(fd)


def _build_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        _private_sqlite_file(url)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    # ``preserve_rowcount``: psycopg (3) reports no rowcount for an INSERT once SQLAlchemy closed its cursor, and
    # a lock's upsert (core/engine/locks.py) and a few other compare-and-sets read it.
    engine = create_engine(
        url,
        pool_size=10,
        max_overflow=20,
        connect_args=_driver_args(url),
        execution_options={"preserve_rowcount": True},
    )
    event.listen(engine, "checkin", _remember_checkin)
    event.listen(engine, "checkout", _ping_if_idle)
    return engine


def _driver_args(url: str) -> dict[str, Any]:
    """psycopg (3) prepares a statement on the server the second time a connection sends it: the step's
    statements are planned once per connection, not per step, which halves PostgreSQL's CPU per step
    (docs/benchmarks.md). psycopg2 cannot prepare."""
    return {"prepare_threshold": PREPARE_THRESHOLD} if make_url(url).get_driver_name() == "psycopg" else {}


def dispose_engines() -> None:
    """Close and forget every cached engine (tests switching databases; forked worker processes)."""
    with _engines_lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()


@contextmanager
def session_scope(url: str | None = None) -> Iterator[Session]:
    """One transaction: commit on success, roll back on any error, always close."""
    session = Session(get_engine(url), expire_on_commit=False)
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()

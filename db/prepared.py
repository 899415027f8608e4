"""Statements compiled once and sent straight to the session's DB-API cursor: the hot path's (issue 15).

A statement run through ``Session.execute`` costs about 150 µs of Python on top of the driver's own work
(cache-key generation, the execution context, result metadata), as much again as the driver: measured with
one UPDATE … RETURNING on PostgreSQL (docs/benchmarks.md). A ``Prepared`` statement is compiled for the
dialect the first time it runs and afterwards goes to the cursor of the connection the session's transaction
already holds: the same transaction, the same SQL text SQLAlchemy would send, tuples back.

What is kept from SQLAlchemy's own path, so nothing else can tell the difference:

- the ``before_cursor_execute`` and ``after_cursor_execute`` events (the statement counters of the tests and
  benchmarks listen to them);
- error handling: a driver error becomes the SQLAlchemy exception the callers catch (``OperationalError`` for
  a deadlock or a lost server, ``lock_conflict`` and ``reachability`` read it), and a lost connection is
  invalidated, exactly as ``Connection`` does it, by its own handler;
- bind and result types: only statements whose parameters and columns need no SQLAlchemy conversion on this
  dialect are taken (plain strings, numbers, booleans, timestamps); ``Prepared`` refuses one that does.

SQLite, and any dialect but psycopg and psycopg2, run the statement on the session's connection through
SQLAlchemy: the same rows, so the callers and the tests do not depend on the database.

Like any Core statement, a prepared one does not flush what the session holds first (the ORM's autoflush is for
ORM statements): the hot path sends them before it adds anything, or flushes itself.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar, cast

from sqlalchemy import Connection, CursorResult
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import StatementError
from sqlalchemy.orm import Session
from sqlalchemy.sql.base import Executable
from sqlalchemy.sql.compiler import Compiled
from sqlmodel import SQLModel

_DIRECT = frozenset({"psycopg", "psycopg2"})


Model = TypeVar("Model", bound=SQLModel)


def record(model: type[Model], values: Sequence[Any]) -> Model:
    """An instance of the table class ``model`` holding ``values`` (its columns, in table order), outside any
    session: for reading only. It carries no ORM state, so a session refuses to add it; a caller that changes a
    row loads it through the session instead."""
    columns = model.__table__.columns  # type: ignore[attr-defined]
    return cast(
        Model, model.model_construct(**{column.key: value for column, value in zip(columns, values, strict=True)})
    )


class Prepared:
    """One statement (Core, built once at import), run on the session's transaction: ``rows``, ``first``,
    ``scalar`` or ``rowcount``. Parameters are the statement's bind names, as with ``Session.execute``."""

    def __init__(self, statement: Executable) -> None:
        self._statement = statement
        self._compiled: dict[Dialect, _Compiled] = {}
        self._lock = threading.Lock()

    def rows(self, session: Session, params: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        """Every row the statement returns, as tuples."""
        return self._run(session, params, fetch=True)[0]

    def first(self, session: Session, params: Mapping[str, Any]) -> tuple[Any, ...] | None:
        """The first row, or None."""
        rows = self.rows(session, params)
        return rows[0] if rows else None

    def scalar(self, session: Session, params: Mapping[str, Any]) -> Any:
        """The first column of the first row, or None."""
        row = self.first(session, params)
        return None if row is None else row[0]

    def rowcount(self, session: Session, params: Mapping[str, Any]) -> int:
        """How many rows the statement changed."""
        return self._run(session, params, fetch=False)[1]

    def _run(self, session: Session, params: Mapping[str, Any], *, fetch: bool) -> tuple[list[tuple[Any, ...]], int]:
        connection = session.connection()
        dialect = connection.dialect
        if dialect.driver not in _DIRECT:
            result = cast(CursorResult[Any], connection.execute(self._statement, dict(params)))
            return ([tuple(row) for row in result] if fetch and result.returns_rows else []), result.rowcount
        compiled = self._compiled.get(dialect) or self._compile(dialect)
        try:
            sent = compiled.params(params)
        except Exception as exc:  # a value its type refuses (a naive datetime): what the session raises for it
            raise StatementError(str(exc), compiled.sql, dict(params), exc) from exc
        return compiled.run(connection, sent, fetch=fetch)

    def _compile(self, dialect: Dialect) -> _Compiled:
        with self._lock:
            if dialect not in self._compiled:
                self._compiled[dialect] = _Compiled.of(self._statement.compile(dialect=dialect))  # type: ignore[attr-defined]
            return self._compiled[dialect]


class _Compiled:
    """The SQL text for one dialect, the statement's fixed parameter values (``.values(status="x")``) and the
    type conversions SQLAlchemy would apply on this dialect (``UTCDateTime``: aware datetimes, in UTC)."""

    def __init__(
        self,
        sql: str,
        defaults: dict[str, Any],
        binds: dict[str, Callable[[Any], Any]],
        results: list[Callable[[Any], Any] | None],
    ) -> None:
        self.sql = sql
        self.defaults = defaults
        self.binds = binds
        self.results = results if any(results) else []

    @classmethod
    def of(cls, compiled: Compiled) -> _Compiled:
        dialect = compiled.dialect
        binds = {name: bind for bind, name in compiled.bind_names.items()}  # type: ignore[attr-defined]
        processors = {}
        for name, bind in binds.items():
            if bind.expanding:
                raise ValueError(f"bind {name!r} expands (IN (...)): its SQL is not fixed; run it through the session")
            if (process := bind.type._cached_bind_processor(dialect)) is not None:
                processors[name] = process
        results = [
            column[3]._cached_result_processor(dialect, None) for column in getattr(compiled, "_result_columns", ())
        ]
        defaults = {name: bind.value for name, bind in binds.items() if not bind.required and not bind.callable}
        sql = compiled.string
        if compiled.literal_execute_params:  # type: ignore[attr-defined]
            # Values SQLAlchemy renders into the text when it sends it (``aggregate_strings``' separator): fixed,
            # so rendered once here, by SQLAlchemy's own step for it.
            every = {name: defaults.get(name) for name in binds}
            sql = compiled._process_parameters_for_postcompile(every, _populate_self=False).statement  # type: ignore[attr-defined]
        return cls(sql, defaults, processors, results)

    def params(self, given: Mapping[str, Any]) -> dict[str, Any]:
        """The driver's parameters: the fixed values, then ``given``, converted as the bind types say."""
        params = {**self.defaults, **given}
        for name, process in self.binds.items():
            if name in params:
                params[name] = process(params[name])
        return params

    def run(self, connection: Connection, params: dict[str, Any], *, fetch: bool) -> tuple[list[tuple[Any, ...]], int]:
        cursor = connection.connection.cursor()
        try:
            sql = self.sql
            for listener in connection.dispatch.before_cursor_execute:
                listener(connection, cursor, sql, params, None, False)
            try:
                cursor.execute(sql, params)
                rows = [tuple(row) for row in cursor.fetchall()] if fetch and _returns_rows(cursor) else []
                if rows and self.results:
                    rows = [_converted(row, self.results) for row in rows]
            except connection.dialect.loaded_dbapi.Error as exc:
                # SQLAlchemy's own handler: the exception it would raise, and a lost connection invalidated.
                connection._handle_dbapi_exception(exc, sql, params, cursor, None)
                raise  # not reached: the handler raises
            for listener in connection.dispatch.after_cursor_execute:
                listener(connection, cursor, sql, params, None, False)
            return rows, cursor.rowcount
        finally:
            cursor.close()


def _converted(row: tuple[Any, ...], processors: list[Callable[[Any], Any] | None]) -> tuple[Any, ...]:
    return tuple(value if process is None else process(value) for value, process in zip(row, processors, strict=False))


def _returns_rows(cursor: Any) -> bool:
    """Whether the statement returned rows. psycopg's ``description`` builds an object per column each time it is
    read (a chained claim's read has ~90), so its result's status is read instead."""
    result = getattr(cursor, "pgresult", None)
    if result is not None:
        return bool(result.status == _TUPLES_OK)
    return cursor.description is not None


_TUPLES_OK = 2  # libpq's PGRES_TUPLES_OK (libpq-fe.h's ExecStatusType, fixed by its ABI), psycopg's pq.ExecStatus

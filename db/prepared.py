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
- bind and result types: the dialect's own bind and result processors convert values as SQLAlchemy would
  (``UTCDateTime``'s aware UTC datetimes, SQLite's datetime text); a statement whose SQL depends on its values
  (an expanding ``IN``) is refused.

psycopg, psycopg2 and SQLite's pysqlite take the direct way; any other driver runs the statement on the
session's connection through SQLAlchemy: the same rows, so the callers and the tests do not depend on it.

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

_DIRECT = frozenset({"psycopg", "psycopg2", "pysqlite"})


Model = TypeVar("Model", bound=SQLModel)


def record(model: type[Model], values: Sequence[Any]) -> Model:
    """An instance of the table class ``model`` holding ``values`` (its columns, in table order), outside any
    session: for reading only. It carries no ORM state, so a session refuses to add it; a caller that changes a
    row loads it through the session instead."""
    keys = _RECORD_KEYS[model] if model in _RECORD_KEYS else _record_keys(model)
    if keys is None:  # a model pydantic fills in more than its columns: its own constructor
        columns = model.__table__.columns  # type: ignore[attr-defined]
        return cast(Model, model.model_construct(**{c.key: v for c, v in zip(columns, values, strict=True)}))
    # What ``model_construct`` leaves when every field is given, without its per-field look for aliases and
    # defaults (half a record's cost; a chained step builds four).
    instance = model.__new__(model)
    fields = dict(zip(keys, values, strict=True))  # a value short is a ValueError
    _set(instance, "__dict__", fields)
    _set(instance, "__pydantic_fields_set__", set(keys))
    _set(instance, "__pydantic_extra__", None)
    _set(instance, "__pydantic_private__", None)
    return cast(Model, instance)


_set = object.__setattr__
_RECORD_KEYS: dict[type[SQLModel], tuple[str, ...] | None] = {}


def _record_keys(model: type[SQLModel]) -> tuple[str, ...] | None:
    """The column keys of ``model``, when its pydantic fields are exactly its columns, without aliases or a
    post-init (every table of db/tables.py); None otherwise."""
    keys = tuple(column.key for column in model.__table__.columns)  # type: ignore[attr-defined]
    fields = model.__pydantic_fields__
    plain = (
        set(keys) == set(fields)
        and not model.__pydantic_post_init__
        and all(field.alias is None and field.validation_alias is None for field in fields.values())
    )
    _RECORD_KEYS[model] = keys if plain else None
    return _RECORD_KEYS[model]


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
        connection = _connection(session)
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


def _connection(session: Session) -> Connection:
    """The connection of the session's transaction, as ``session.connection()`` gives it, kept in the session's
    ``info`` for the rest of that transaction: asking the session again costs more than a statement's own
    Python on the hot path. A new transaction (after a commit or a rollback) or one no longer active asks again."""
    transaction = session.get_nested_transaction() or session.get_transaction()
    held = session.info.get(_HELD)
    if transaction is not None and held is not None and held[0] is transaction and transaction.is_active:
        return cast(Connection, held[1])
    connection = session.connection()
    session.info[_HELD] = (session.get_nested_transaction() or session.get_transaction(), connection)
    return connection


_HELD = "db.prepared.connection"


class _Compiled:
    """The SQL text for one dialect, the statement's fixed parameter values (``.values(status="x")``) and the
    type conversions SQLAlchemy would apply on this dialect (``UTCDateTime``: aware datetimes, in UTC)."""

    def __init__(
        self,
        sql: str,
        defaults: dict[str, Any],
        binds: dict[str, Callable[[Any], Any]],
        results: list[Callable[[Any], Any] | None],
        order: tuple[str, ...] | None,
    ) -> None:
        self.sql = sql
        self.order = order  # a positional paramstyle's names in order (SQLite's ``?``), None for named ones
        self.defaults = defaults
        self.binds = binds
        self.results = [(index, process) for index, process in enumerate(results) if process is not None]

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
        sql, order = compiled.string, compiled.positiontup  # type: ignore[attr-defined]
        if compiled.literal_execute_params:  # type: ignore[attr-defined]
            # Values SQLAlchemy renders into the text when it sends it (``aggregate_strings``' separator): fixed,
            # so rendered once here, by SQLAlchemy's own step for it.
            every = {name: defaults.get(name) for name in binds}
            expanded = compiled._process_parameters_for_postcompile(every, _populate_self=False)  # type: ignore[attr-defined]
            sql, order = expanded.statement, expanded.positiontup
        return cls(sql, defaults, processors, results, tuple(order) if compiled.positional else None)  # type: ignore[attr-defined]

    def params(self, given: Mapping[str, Any]) -> dict[str, Any] | tuple[Any, ...]:
        """The driver's parameters: the fixed values, then ``given``, converted as the bind types say (in the
        text's order for a positional paramstyle; a name given nowhere is refused, as by the session)."""
        params = {**self.defaults, **given}
        for name, process in self.binds.items():
            if name in params:
                params[name] = process(params[name])
        if self.order is not None:
            return tuple(params[name] for name in self.order)
        return params

    def run(
        self, connection: Connection, params: dict[str, Any] | tuple[Any, ...], *, fetch: bool
    ) -> tuple[list[tuple[Any, ...]], int]:
        held = connection.connection
        reused = connection.dialect.driver == "psycopg"
        cursor = _reused_cursor(held) if reused else held.cursor()
        try:
            sql = self.sql
            for listener in connection.dispatch.before_cursor_execute:
                listener(connection, cursor, sql, params, None, False)
            try:
                cursor.execute(sql, params)
                # Tuples already (the drivers' default rows, which SQLAlchemy keeps): no copy per row.
                rows = cast(list[tuple[Any, ...]], cursor.fetchall()) if fetch and _returns_rows(cursor) else []
                if rows and self.results:
                    rows = [_converted(row, self.results) for row in rows]
            except connection.dialect.loaded_dbapi.Error as exc:
                held.info.pop(_CURSOR, None)  # the handler closes the cursor
                # SQLAlchemy's own handler: the exception it would raise, and a lost connection invalidated.
                connection._handle_dbapi_exception(exc, sql, params, cursor, None)
                raise  # not reached: the handler raises
            for listener in connection.dispatch.after_cursor_execute:
                listener(connection, cursor, sql, params, None, False)
            return rows, cursor.rowcount
        finally:
            if not reused:
                # pysqlite's statement stays open (and its transaction's locks with it) until the cursor is
                # closed or exhausted; a cursor costs it little.
                cursor.close()


def _reused_cursor(held: Any) -> Any:
    """One psycopg cursor per DB-API connection, kept in the pool's ``info`` for that connection (emptied when
    it reconnects): a new psycopg cursor costs more Python than the statement it sends. psycopg reads a result
    whole before ``execute`` returns, so reusing it leaves nothing pending."""
    found = held.info.get(_CURSOR)
    if found is not None and found[0] is held.dbapi_connection and not found[1].closed:
        return found[1]
    cursor = held.cursor()
    held.info[_CURSOR] = (held.dbapi_connection, cursor)
    return cursor


_CURSOR = "db.prepared.cursor"


def _converted(row: tuple[Any, ...], processors: list[tuple[int, Callable[[Any], Any]]]) -> tuple[Any, ...]:
    """``row`` with the columns that need it converted (a claim's read: 8 datetimes among ~90 columns)."""
    values = list(row)
    for index, process in processors:
        values[index] = process(values[index])
    return tuple(values)


def _returns_rows(cursor: Any) -> bool:
    """Whether the statement returned rows. psycopg's ``description`` builds an object per column each time it is
    read (a chained claim's read has ~90), so its result's status is read instead."""
    result = getattr(cursor, "pgresult", None)
    if result is not None:
        return bool(result.status == _TUPLES_OK)
    return cursor.description is not None


_TUPLES_OK = 2  # libpq's PGRES_TUPLES_OK (libpq-fe.h's ExecStatusType, fixed by its ABI), psycopg's pq.ExecStatus

"""db/prepared.py: a statement compiled once and sent to the session's DB-API cursor behaves as the same statement
run through the session: its rows and types, its transaction, the statement events, the exceptions (and a lost
connection's invalidation). The same tests run on both databases (psycopg's and pysqlite's cursors)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, bindparam, create_engine, event, select, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, OperationalError, PendingRollbackError, StatementError
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import UnmappedInstanceError
from sqlalchemy.pool import NullPool
from sqlmodel.sql.sqltypes import UTCDateTime

from db.engine import get_engine, session_scope
from db.prepared import Prepared, record
from db.tables import Asset

_META = MetaData()
PROBE = Table(
    "prepared_probe",
    _META,
    Column("id", Integer, primary_key=True),
    Column("note", String, nullable=False),
    Column("at", UTCDateTime(), nullable=True),
)
_MOVE = (
    PROBE.update().where(PROBE.c.id == bindparam("probe_id")).values(note=bindparam("note"), at=bindparam("at"))
).returning(PROBE.c.id, PROBE.c.note, PROBE.c.at)
MOVE = Prepared(_MOVE)
INSERT = Prepared(PROBE.insert().values(id=bindparam("probe_id"), note="fixed"))


def _probe(url: str) -> Iterator[str]:
    engine = get_engine()
    _META.create_all(engine)
    with session_scope() as session:
        session.execute(PROBE.insert(), [{"id": 1, "note": "one"}, {"id": 2, "note": "two"}])
    yield url
    _META.drop_all(engine)


@pytest.fixture
def probe(db: str) -> Iterator[str]:
    yield from _probe(db)


@pytest.fixture
def pg_probe(postgres_db: str) -> Iterator[str]:
    yield from _probe(postgres_db)


def test_rows_and_types_are_the_sessions(probe: str) -> None:
    """The same statement through the session and prepared: equal rows, aware UTC datetimes in both."""
    at = datetime(2026, 12, 7, 18, 0, tzinfo=timezone(timedelta(hours=2)))
    with session_scope() as session:
        through_session = [tuple(r) for r in session.execute(_MOVE, {"probe_id": 1, "note": "a", "at": at})]
        prepared = MOVE.rows(session, {"probe_id": 2, "note": "a", "at": at})
    assert [r[1:] for r in prepared] == [r[1:] for r in through_session] == [("a", at)]
    assert prepared[0][2].tzinfo == UTC  # converted as UTCDateTime converts, not the server's zone
    with session_scope() as session:
        assert MOVE.first(session, {"probe_id": 3, "note": "x", "at": None}) is None
        assert MOVE.scalar(session, {"probe_id": 1, "note": "b", "at": None}) == 1
        assert INSERT.rowcount(session, {"probe_id": 7}) == 1
        stored = session.execute(select(PROBE.c.note).where(PROBE.c.id == 7)).scalar()
    assert stored == "fixed"  # a value fixed in the statement (``.values(note="fixed")``) is sent


def test_a_naive_datetime_is_refused_as_the_session_refuses_it(probe: str) -> None:
    with session_scope() as session, pytest.raises(StatementError, match="timezone"):
        MOVE.rows(session, {"probe_id": 1, "note": "a", "at": datetime(2026, 12, 7, 18, 0)})


def test_it_runs_in_the_sessions_transaction(probe: str) -> None:
    with pytest.raises(RuntimeError), session_scope() as session:
        MOVE.rows(session, {"probe_id": 1, "note": "undone", "at": None})
        raise RuntimeError("roll back")
    with session_scope() as session:
        assert session.execute(select(PROBE.c.note).where(PROBE.c.id == 1)).scalar() == "one"


def test_each_transaction_of_a_session_gets_its_own_connection(probe: str) -> None:
    """The connection a session's transaction holds is kept for that transaction only: after a commit, a
    rollback or a savepoint's rollback, a statement goes where the session's next statement would."""
    with Session(get_engine()) as session:
        MOVE.rows(session, {"probe_id": 1, "note": "kept", "at": None})
        session.commit()
        MOVE.rows(session, {"probe_id": 2, "note": "undone", "at": None})
        session.rollback()
        with session.begin_nested() as savepoint:
            MOVE.rows(session, {"probe_id": 1, "note": "undone too", "at": None})
            savepoint.rollback()
        INSERT.rowcount(session, {"probe_id": 9})
        session.commit()
    with session_scope() as session:
        notes = dict(session.execute(select(PROBE.c.id, PROBE.c.note)).all())
    assert notes == {1: "kept", 2: "two", 9: "fixed"}


def test_the_statement_events_see_it(probe: str) -> None:
    """The statement counters of the tests and benchmarks listen to the engine's cursor events."""
    seen: list[tuple[str, dict[str, Any]]] = []

    def before(conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool) -> None:
        seen.append((statement, params))

    after: list[str] = []

    def done(conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool) -> None:
        after.append(statement)

    event.listen(Engine, "before_cursor_execute", before)
    event.listen(Engine, "after_cursor_execute", done)
    try:
        with session_scope() as session:
            MOVE.rows(session, {"probe_id": 1, "note": "counted", "at": None})
    finally:
        event.remove(Engine, "before_cursor_execute", before)
        event.remove(Engine, "after_cursor_execute", done)
    moves = [params for statement, params in seen if statement.startswith("UPDATE prepared_probe")]
    assert len(moves) == 1
    sent = moves[0].values() if isinstance(moves[0], dict) else moves[0]  # SQLite's parameters are positional
    assert "counted" in sent
    assert any(statement.startswith("UPDATE prepared_probe") for statement in after)


def test_a_driver_error_is_sqlalchemys_exception(probe: str) -> None:
    with pytest.raises(IntegrityError), session_scope() as session:
        INSERT.rowcount(session, {"probe_id": 1})  # the primary key is taken
    with session_scope() as session:  # the connection went back to the pool usable
        assert MOVE.scalar(session, {"probe_id": 2, "note": "after", "at": None}) == 2


@pytest.mark.integration
def test_a_lost_connection_is_invalidated_and_the_pool_recovers(pg_probe: str) -> None:
    """The server ends the session's backend: an OperationalError marked as a disconnect (what reachability
    reads as an outage), that connection dropped, and the next transaction gets a working one."""
    killer = create_engine(pg_probe, poolclass=NullPool)
    with pytest.raises(OperationalError) as lost, session_scope() as session:
        pid = session.execute(text("SELECT pg_backend_pid()")).scalar()
        with killer.connect() as other:
            other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        try:
            MOVE.rows(session, {"probe_id": 1, "note": "lost", "at": None})
        finally:  # the next statement is refused as the session's own would be: roll back first
            with pytest.raises(PendingRollbackError):
                MOVE.rows(session, {"probe_id": 1, "note": "still lost", "at": None})
    killer.dispose()
    assert lost.value.connection_invalidated
    with session_scope() as session:
        assert MOVE.scalar(session, {"probe_id": 1, "note": "back", "at": None}) == 1


@pytest.mark.integration
def test_a_statement_whose_text_is_not_fixed_is_refused(postgres_db: str) -> None:
    expanding = Prepared(select(PROBE.c.id).where(PROBE.c.id.in_(bindparam("ids", expanding=True))))
    with session_scope() as session, pytest.raises(ValueError, match="expands"):
        expanding.rows(session, {"ids": [1]})


def test_a_record_is_read_only(db: str) -> None:
    """A record reads like the row; a session will not take it (it would insert a copy)."""
    columns = Asset.__table__.columns  # type: ignore[attr-defined]
    values = {column.key: None for column in columns} | {"id": "a1", "name": "web-01", "port": 22}
    asset = record(Asset, [values[column.key] for column in columns])
    assert (asset.id, asset.name, asset.port, asset.host) == ("a1", "web-01", 22, None)
    with session_scope() as session, pytest.raises(UnmappedInstanceError):
        session.add(asset)

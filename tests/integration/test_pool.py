"""The PostgreSQL pool pings a connection only when it sat idle (db/engine.py): back-to-back transactions send
no ping, and a pooled connection the server cut while it was idle is replaced before a session gets it."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import create_engine, exc, text
from sqlalchemy.pool import NullPool

from db import engine as db_engine
from db.engine import get_engine, session_scope


def _backend_pid() -> int:
    with session_scope() as session:
        return int(session.execute(text("SELECT pg_backend_pid()")).scalar_one())


def test_a_connection_cut_while_idle_is_replaced_before_use(postgres_db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(db_engine, "IDLE_PING_S", 0.0)  # every checkout counts as idle: no wait needed
    before = _backend_pid()
    outside = create_engine(postgres_db, poolclass=NullPool)  # not the pool under test
    with outside.connect() as other:  # the server ends the pooled session, as a restart would
        assert other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": before}).scalar_one() is True
    outside.dispose()
    after = _backend_pid()  # no error reaches the caller: the ping found it gone and the pool reconnected
    assert after != before


def test_only_an_idle_connection_is_pinged(postgres_db: str) -> None:
    """A closed connection shows whether the ping ran: checked in just now it is handed out unpinged (a worker's
    back-to-back transactions pay no round trip); after IDLE_PING_S the ping finds it dead."""
    raw = get_engine(postgres_db).raw_connection()
    connection = raw.dbapi_connection
    raw.invalidate()  # closes the driver connection: any statement on it now fails
    fresh, stale = _Record(time.monotonic()), _Record(time.monotonic() - db_engine.IDLE_PING_S - 1)
    db_engine._ping_if_idle(connection, fresh, None)
    with pytest.raises(exc.DisconnectionError, match="pooled connection is gone"):
        db_engine._ping_if_idle(connection, stale, None)


class _Record:
    """The pool's per-connection record, as far as the ping reads it (its ``info``)."""

    def __init__(self, checked_in_at: float) -> None:
        self.info = {db_engine._CHECKED_IN_AT: checked_in_at}

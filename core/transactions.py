"""Transactions for core's use cases: db's session scope, with database errors translated once, here.

An unreachable database or one without our schema becomes ``ServiceUnavailable`` (with what to do),
so the console and the CLI show a clear message instead of a driver traceback.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.exc import OperationalError, ProgrammingError
from sqlmodel import Session

from core.errors import ServiceUnavailable
from core.notify import outbox as notify_outbox
from core.ports import AFTER_COMMIT_KEY, dispatch_committed
from db import engine

_MISSING_SCHEMA = ("no such table", "does not exist", "undefinedtable")
# PostgreSQL's deadlock_detected and serialization_failure: the transaction was rolled back whole, so
# running it again is safe and usually succeeds at once.
_CONFLICT_CODES = frozenset({"40P01", "40001"})


def lock_conflict(exc: BaseException) -> bool:
    """True for a deadlock or serialization failure: the database rolled the transaction back; retry it."""
    if not isinstance(exc, OperationalError):
        return False
    # psycopg names the code ``sqlstate``, psycopg2 ``pgcode``.
    return (getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)) in _CONFLICT_CODES


def dispose_engines() -> None:
    """Drop every pooled connection of this process (a forked worker must not share its parent's)."""
    engine.dispose_engines()


@contextmanager
def session_scope() -> Iterator[Session]:
    """One transaction on the configured database (commit on success, roll back on error).

    Raises:
        ServiceUnavailable: the database cannot be reached, or has no schema (run ``opsconductor init``).
    """
    try:
        with engine.session_scope() as session:
            yield session
            pending = session.info.pop(AFTER_COMMIT_KEY, {})
            notified = session.info.pop(notify_outbox.WRITTEN_KEY, False)
    except (OperationalError, ProgrammingError) as exc:
        text = str(exc.orig).lower()
        if any(marker in text for marker in _MISSING_SCHEMA):
            raise ServiceUnavailable("the database has no OpsConductor schema yet: run `opsconductor init`") from exc
        if isinstance(exc, OperationalError) and ("connect" in text or "unable to open" in text or "timeout" in text):
            raise ServiceUnavailable(f"the database is unreachable: {str(exc.orig).splitlines()[0]}") from exc
        raise
    if pending:  # core/engine/outbox.py: the broker hears of work once committed
        dispatch_committed(pending.values())
    if notified:  # core/notify/outbox.py: this process's delivery thread sends them now, not at its next tick
        notify_outbox.written.set()

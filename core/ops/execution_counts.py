"""The execution counts the database keeps (``execution_counts``, db/tables.py): read, fold, recount.

Triggers on ``executions`` append a +1/-1 row per insert, delete and change of status, in the writer's own
transaction; the sum per (tenant, status, run mode) is the number of executions in it. Writers only insert,
so they never queue on a counter row (a counter updated in place would serialise every status change of a
tenant, and deadlock two transactions that move several executions in different orders). ``fold`` collapses
the rows into one per group (the sweeper calls it every pass: a few rows per execution that changed since),
so a read sums a table of about (tenants × statuses × run modes) rows, not the executions' history.
"""

from __future__ import annotations

from sqlalchemy import func, select, text
from sqlmodel import Session

from core.transactions import session_scope
from db.tables import ExecutionCount, Tenant

COUNTS = ExecutionCount.__table__  # type: ignore[attr-defined]
TENANTS = Tenant.__table__  # type: ignore[attr-defined]
_GROUP = (COUNTS.c.tenant_id, COUNTS.c.status, COUNTS.c.run_mode)
_FOLD_LOCK = 0x6F707363_636F756E  # "opsccoun": the advisory lock key of a fold


def by_tenant_status_mode(session: Session) -> list[tuple[str, str | None, str | None, int]]:
    """(tenant name, status, run mode, executions) for every group with executions; a tenant without any
    appears once with status and run mode None."""
    sums = (
        select(*_GROUP, func.sum(COUNTS.c.n).label("n")).group_by(*_GROUP).having(func.sum(COUNTS.c.n) != 0).subquery()
    )
    rows = session.execute(
        select(TENANTS.c.name, sums.c.status, sums.c.run_mode, func.coalesce(sums.c.n, 0))
        .select_from(TENANTS)
        .outerjoin(sums, sums.c.tenant_id == TENANTS.c.id)
    ).all()
    return [(tenant, status, run_mode, int(n)) for tenant, status, run_mode, n in rows]


def fold(session: Session) -> None:
    """Replace the rows by one per group (their sum; none for a group that sums to zero).

    Safe beside writers: on PostgreSQL one statement deletes the rows its snapshot sees and inserts their sums
    (rows committed meanwhile are neither deleted nor summed), under an advisory lock that other folds skip;
    SQLite has a single writer, so the sum and the delete see the same rows.
    """
    if session.get_bind().dialect.name == "postgresql":
        # One fold at a time (every worker's sweeper calls this each pass): the others skip, they would only
        # wait on the first one's deletes to find nothing left.
        if not session.execute(text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": _FOLD_LOCK}).scalar():
            return
        session.execute(
            text(
                "WITH moved AS (DELETE FROM execution_counts RETURNING tenant_id, status, run_mode, n)"
                " INSERT INTO execution_counts (tenant_id, status, run_mode, n)"
                " SELECT tenant_id, status, run_mode, sum(n) FROM moved GROUP BY tenant_id, status, run_mode"
                " HAVING sum(n) <> 0"
            )
        )
        return
    last = session.execute(select(func.max(COUNTS.c.id))).scalar()
    if last is None:
        return
    session.execute(
        COUNTS.insert().from_select(
            ["tenant_id", "status", "run_mode", "n"],
            select(*_GROUP, func.sum(COUNTS.c.n))
            .where(COUNTS.c.id <= last)
            .group_by(*_GROUP)
            .having(func.sum(COUNTS.c.n) != 0),
        )
    )
    session.execute(COUNTS.delete().where(COUNTS.c.id <= last))


def fold_now() -> None:
    """``fold`` in a transaction of its own (the sweeper's pass)."""
    with session_scope() as session:
        fold(session)


def recount(session: Session) -> None:
    """Count the executions again from scratch (after a bulk load that bypassed triggers, or a repair).

    Takes a share lock on ``executions`` on PostgreSQL, so no change slips between the count and the swap.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("LOCK TABLE executions IN SHARE MODE"))
    session.execute(COUNTS.delete())
    session.execute(
        text(
            "INSERT INTO execution_counts (tenant_id, status, run_mode, n)"
            " SELECT tenant_id, status, run_mode, count(*) FROM executions GROUP BY tenant_id, status, run_mode"
        )
    )

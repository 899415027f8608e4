"""The Dashboard's figures: outcomes, run times against the policies, queue waits, backlog, per hour.

The window is the tenant's executions *created* since ``now - since``, read from one range of the covering
index (tenant_id, created_at); the queue waits are those that *began* in the window (events); the DLQ depth
and the approvals waiting are the current state, whatever their age.

Percentiles: PostgreSQL computes them (``percentile_cont``) over every row of the window. SQLite has no
percentile aggregate: it fetches the newest ``SAMPLE_ROWS`` values of the window and interpolates in Python
the same way (``DashboardView.sampled`` says so); its counts stay exact. The embedded SQLite default serves
one team, where the window rarely holds more rows than the sample.

Must not import ``jobs``, ``ui`` or ``streamlit``.
"""

from __future__ import annotations

import math
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Float, Integer, and_, case, cast, func, literal, literal_column, text
from sqlalchemy import select as select_columns
from sqlalchemy.orm import aliased
from sqlmodel import Session, col, select

from core.errors import InvalidInput
from core.identity import rbac
from core.identity.permissions import Permission
from core.schemas import DashboardView, DurationStats, HourCount, Principal, RunModeStats
from core.transactions import session_scope
from db.clock import utcnow
from db.enums import ExecutionStatus as S
from db.enums import RunMode
from db.tables import DlqEntry, Execution, ExecutionEvent, TimeoutPolicy

DEFAULT_WINDOW = timedelta(hours=24)
MAX_WINDOW = timedelta(days=31)
SAMPLE_ROWS = 5000
# Runs that came to an outcome of their own: the denominator of the success rate and of the run times.
ENDED_RUNS = (S.COMPLETED, S.FAILED, S.PARTIAL, S.TIMEOUT)
FAILED_RUNS = (S.FAILED, S.PARTIAL, S.TIMEOUT)


def dashboard(principal: Principal, *, since: timedelta = DEFAULT_WINDOW) -> DashboardView:
    """The tenant's Dashboard over the executions created in the last ``since`` (default 24 h, at most 31 days).

    Raises:
        InvalidInput: a window that is not positive or longer than 31 days. PermissionDenied: no role in the tenant.
    """
    if not timedelta(0) < since <= MAX_WINDOW:
        raise InvalidInput(f"must be more than 0 and at most {MAX_WINDOW.days} days", path="since")
    until = utcnow()
    start = until - since
    with session_scope() as session:
        rbac.require(session, principal, Permission.READ)
        window = (col(Execution.tenant_id) == principal.tenant_id, col(Execution.created_at) >= start)
        exact = session.get_bind().dialect.name == "postgresql"
        if exact:
            # Measured at 1M executions (docs/benchmarks.md): JIT compilation and parallel workers cost these
            # short aggregates more than they save, and the percentiles sort a window's run times in memory
            # rather than in temporary files (work_mem is 4 MB by default).
            session.execute(
                text("SET LOCAL jit = off; SET LOCAL max_parallel_workers_per_gather = 0; SET LOCAL work_mem = '64MB'")
            )
        counts = _status_counts(session, window)
        by_status: dict[str, int] = defaultdict(int)
        for (_mode, status), n in counts.items():
            by_status[status] += n
        durations = _durations(session, window, exact)
        wait_p50, wait_p95 = _queue_wait(session, principal.tenant_id, start, exact)
        waiting, oldest = _approvals_waiting(session, principal.tenant_id)
        return DashboardView(
            tenant=principal.tenant,
            since=start,
            until=until,
            total=sum(by_status.values()),
            by_status=dict(by_status),
            success_rate=_rate(by_status),
            durations=durations,
            sla_breaches=sum(d.breaches for d in durations),
            queue_wait_p50_s=wait_p50,
            queue_wait_p95_s=wait_p95,
            dlq_open=_dlq_open(session, principal.tenant_id),
            approvals_waiting=waiting,
            oldest_approval_at=oldest,
            per_hour=_per_hour(session, window, start, until, exact),
            run_modes=[_run_mode(mode, counts) for mode in RunMode],
            sampled=not exact,
        )


def _status_counts(session: Session, window: tuple[ColumnElement[bool], ...]) -> dict[tuple[str, str], int]:
    rows = session.execute(
        select_columns(col(Execution.run_mode), col(Execution.status), func.count())
        .where(*window)
        .group_by(col(Execution.run_mode), col(Execution.status))
    ).all()
    return {(mode, status): n for mode, status, n in rows}


def _rate(by_status: dict[str, int]) -> float | None:
    ended = sum(by_status.get(s.value, 0) for s in ENDED_RUNS)
    return by_status.get(S.COMPLETED.value, 0) / ended if ended else None


def _run_mode(mode: RunMode, counts: dict[tuple[str, str], int]) -> RunModeStats:
    mine = {status: n for (m, status), n in counts.items() if m == mode.value}
    return RunModeStats(
        run_mode=mode.value,
        total=sum(mine.values()),
        ended=sum(mine.get(s.value, 0) for s in ENDED_RUNS),
        completed=mine.get(S.COMPLETED.value, 0),
        success_rate=_rate(mine),
    )


def _seconds(session: Session, later: Any, earlier: Any) -> ColumnElement[float]:
    """``later - earlier`` in seconds, in the database's own arithmetic."""
    if session.get_bind().dialect.name == "postgresql":
        # date_part gives a double; EXTRACT gives a numeric, several times slower to aggregate.
        return cast(func.date_part("epoch", later - earlier), Float)
    return (func.julianday(later) - func.julianday(earlier)) * 86400.0


def _durations(session: Session, window: tuple[ColumnElement[bool], ...], exact: bool) -> list[DurationStats]:
    """Run times per (SLA class, action class) of the window's ended runs, beside the policy's execution limit."""
    limits = {(p.sla_class, p.action_class): p.execution_s for p in session.exec(select(TimeoutPolicy)).all()}
    sla, action, status = col(Execution.sla_class), col(Execution.action_class), col(Execution.status)
    seconds = _seconds(session, col(Execution.finished_at), col(Execution.started_at))
    ran = (*window, status.in_([s.value for s in ENDED_RUNS]), col(Execution.started_at).is_not(None))
    # The 9 limits inline: cheaper per row than joining the policy table.
    limit = case(*[((sla == s) & (action == a), literal(v)) for (s, a), v in limits.items()], else_=None)
    breach = case((status == S.TIMEOUT.value, 1), (seconds > limit, 1), else_=0)
    figures: list[Any] = [func.count(), func.sum(breach)]
    if exact:
        figures += [func.percentile_cont(0.5).within_group(seconds), func.percentile_cont(0.95).within_group(seconds)]
    rows: list[Any] = list(session.execute(select_columns(sla, action, *figures).where(*ran).group_by(sla, action)))
    if not exact:
        sample: dict[tuple[str, str], list[float]] = defaultdict(list)
        newest = select_columns(sla, action, seconds).where(*ran).order_by(col(Execution.created_at).desc())
        for group_sla, group_action, value in session.execute(newest.limit(SAMPLE_ROWS)).all():
            sample[(group_sla, group_action)].append(float(value))
        rows = [(*r, percentile(sample[(r[0], r[1])], 0.5), percentile(sample[(r[0], r[1])], 0.95)) for r in rows]
    order = {"fast": 0, "medium": 1, "long": 2, "read": 0, "modify": 1, "deploy": 2}
    return [
        DurationStats(
            sla_class=group_sla,
            action_class=group_action,
            runs=runs,
            p50_s=_float(p50),
            p95_s=_float(p95),
            limit_s=limits.get((group_sla, group_action)),
            breaches=int(breaches or 0),
        )
        for group_sla, group_action, runs, breaches, p50, p95 in sorted(
            rows, key=lambda r: (order.get(r[0], 9), order.get(r[1], 9))
        )
    ]


def _queue_wait(session: Session, tenant_id: str, start: datetime, exact: bool) -> tuple[float | None, ...]:
    """p50 and p95 of queued → started, over the queue waits that began in the window and have ended.

    Each ``→ running`` event of the window is paired with the latest ``→ queued`` event of the same execution
    before it (a requeue starts a new wait). Immediate executions (run in the caller) never queue and are left
    out; so are waits still going on. On PostgreSQL both sides are range reads of the partial index
    ix_execution_events_queue_flow, paired by a hash join (no probe per execution); SQLite has no hash join,
    and would pair them by a nested loop over the window, so it looks each pair up by execution id instead.
    """
    started, queued = aliased(ExecutionEvent), aliased(ExecutionEvent)
    # Literals, not parameters: the planner must see them to use the partial index.
    running_value: ColumnElement[str] = literal_column(f"'{S.RUNNING.value}'")
    queued_value: ColumnElement[str] = literal_column(f"'{S.QUEUED.value}'")
    pair = (
        col(queued.execution_id) == col(started.execution_id),
        col(queued.to_status) == queued_value,
        col(queued.created_at) >= start,
        col(queued.created_at) <= col(started.created_at),
    )
    began = (
        col(started.tenant_id) == tenant_id,
        col(started.to_status) == running_value,
        col(started.created_at) >= start,
    )
    if exact:
        waits = (
            select_columns(_seconds(session, col(started.created_at), func.max(col(queued.created_at))).label("wait_s"))
            .join(queued, and_(*pair))
            .where(*began, col(queued.tenant_id) == tenant_id)
            .group_by(col(started.execution_id), col(started.created_at))
            .subquery()
        )
        row = session.execute(
            select_columns(
                func.percentile_cont(0.5).within_group(waits.c.wait_s),
                func.percentile_cont(0.95).within_group(waits.c.wait_s),
            )
        ).one()
        return _float(row[0]), _float(row[1])
    queued_at = select_columns(func.max(col(queued.created_at))).where(*pair).scalar_subquery()
    wait_s = _seconds(session, col(started.created_at), queued_at)
    newest = select_columns(wait_s).where(*began).order_by(col(started.created_at).desc()).limit(SAMPLE_ROWS)
    values = [float(v) for (v,) in session.execute(newest).all() if v is not None]
    return percentile(values, 0.5), percentile(values, 0.95)


def _dlq_open(session: Session, tenant_id: str) -> int:
    return int(
        session.execute(
            select_columns(func.count())
            .select_from(DlqEntry)
            .where(col(DlqEntry.tenant_id) == tenant_id, col(DlqEntry.resolved_at).is_(None))
        ).scalar_one()
    )


def _approvals_waiting(session: Session, tenant_id: str) -> tuple[int, datetime | None]:
    count, oldest = session.execute(
        select_columns(func.count(), func.min(col(Execution.created_at))).where(
            col(Execution.tenant_id) == tenant_id, col(Execution.status) == S.PENDING_APPROVAL.value
        )
    ).one()
    return int(count), _aware(oldest)


def _per_hour(
    session: Session, window: tuple[ColumnElement[bool], ...], start: datetime, until: datetime, exact: bool
) -> list[HourCount]:
    """Executions created per UTC hour of the window (every hour present, zeros included), oldest first."""
    # Whole hours since the epoch: plain arithmetic, several times cheaper per row than date_trunc in a zone.
    if exact:
        hour: Any = func.floor(func.date_part("epoch", col(Execution.created_at)) / 3600)
    else:
        hour = cast(func.strftime("%s", col(Execution.created_at)), Integer) // 3600
    status = col(Execution.status)
    rows = session.execute(
        select_columns(
            hour,
            func.count(),
            func.sum(case((status == S.COMPLETED.value, 1), else_=0)),
            func.sum(case((status.in_([s.value for s in FAILED_RUNS]), 1), else_=0)),
        )
        .where(*window)
        .group_by(hour)
    ).all()
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    found = {epoch + timedelta(hours=int(h)): (int(n), int(ok or 0), int(bad or 0)) for h, n, ok, bad in rows}
    first = start.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    hours = math.ceil((until - first).total_seconds() / 3600)
    return [
        HourCount(hour=h, total=t, completed=c, failed=f)
        for h in (first + timedelta(hours=i) for i in range(hours))
        for t, c, f in [found.get(h, (0, 0, 0))]
    ]


def _aware(value: datetime | str | None) -> datetime | None:
    if value is None:
        return None
    stamp = datetime.fromisoformat(value) if isinstance(value, str) else value
    return stamp.replace(tzinfo=UTC) if stamp.tzinfo is None else stamp.astimezone(UTC)


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def percentile(values: list[float], fraction: float) -> float | None:
    """The ``fraction`` percentile of ``values`` with linear interpolation (as PostgreSQL's percentile_cont)."""
    if not values:
        return None
    ordered = sorted(values)
    position = fraction * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)

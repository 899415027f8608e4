"""The execution counts the database keeps (core/ops/execution_counts.py) and the metrics scrape that reads them,
on SQLite and PostgreSQL: the scrape must report what a count of the executions themselves reports."""

from __future__ import annotations

import threading
from datetime import UTC, timedelta

from prometheus_client import CollectorRegistry
from sqlalchemy import delete, func, select, text, update
from sqlmodel import col

from core import metrics, principal, submit
from core.fsm import transition
from core.ops import execution_counts
from core.transactions import session_scope
from db import migrate
from db.clock import utcnow
from db.enums import ExecutionStatus as S
from db.tables import DlqEntry, Execution, ExecutionCount, Tenant

PLAN = "name: {name}\nsteps:\n  - {{name: a, action: noop, target: localhost}}\n"
GAUGES = ("opsc_executions", "opsc_approvals_pending", "opsc_approval_oldest_age_seconds", "opsc_dlq_depth")


def _scan_as_before() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """The gauges as the scrape computed them before the counts: one grouped scan of every execution."""
    now = utcnow()
    with session_scope() as session:
        rows = session.execute(
            select(
                col(Tenant.name),
                col(Execution.status),
                col(Execution.run_mode),
                func.count(col(Execution.id)),
                func.min(col(Execution.created_at)),
            )
            .select_from(Tenant)
            .outerjoin(Execution, col(Execution.tenant_id) == col(Tenant.id))
            .group_by(col(Tenant.name), col(Execution.status), col(Execution.run_mode))
        ).all()
        dlq = session.execute(
            select(col(Tenant.name), func.count(col(DlqEntry.id)))
            .select_from(Tenant)
            .outerjoin(DlqEntry, (col(DlqEntry.tenant_id) == col(Tenant.id)) & col(DlqEntry.resolved_at).is_(None))
            .group_by(col(Tenant.name))
        ).all()
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    waiting: dict[str, tuple[int, float]] = {}
    for tenant, status, run_mode, count, first in rows:
        waiting.setdefault(tenant, (0, 0.0))
        if status is None:
            continue
        samples["opsc_executions", (("run_mode", run_mode), ("status", status), ("tenant", tenant))] = count
        if status == S.PENDING_APPROVAL.value:
            first = first.replace(tzinfo=UTC) if first.tzinfo is None else first
            total, age = waiting[tenant]
            waiting[tenant] = (total + count, max(age, (now - first).total_seconds()))
    for tenant, (total, age) in waiting.items():
        samples["opsc_approvals_pending", (("tenant", tenant),)] = total
        samples["opsc_approval_oldest_age_seconds", (("tenant", tenant),)] = age
    for tenant, count in dlq:
        samples["opsc_dlq_depth", (("tenant", tenant),)] = count
    return samples


def _scrape() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    registry = CollectorRegistry()
    registry.register(metrics.DatabaseCollector())
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in registry.collect()
        if family.name in GAUGES
        for sample in family.samples
    }


def _same(
    scraped: dict[tuple[str, tuple[tuple[str, str], ...]], float],
    scanned: dict[tuple[str, tuple[tuple[str, str], ...]], float],
) -> None:
    assert scraped.keys() == scanned.keys()
    for key, value in scanned.items():
        tolerance = 5.0 if key[0] == "opsc_approval_oldest_age_seconds" else 0.0  # read a moment apart
        assert abs(scraped[key] - value) <= tolerance, (key, scraped[key], value)


def _execution_in_every_status() -> list[str]:
    """Executions in each of the 11 statuses, in two tenants and both run modes, moved by every kind of writer:
    inserts (submit), the FSM's compare-and-set, a plain UPDATE and a DELETE from outside the application."""
    alice, mallory = principal("alice", "demo"), principal("mallory", "globex")
    ids = [submit(alice, PLAN.format(name=f"p{n}"), background=True).execution.execution_id for n in range(14)]
    ids += [submit(mallory, PLAN.format(name=f"g{n}"), background=True).execution.execution_id for n in range(3)]
    with session_scope() as session:
        tenant = dict(session.execute(select(col(Execution.id), col(Execution.tenant_id))).all())
        transition(session, execution_id=ids[0], tenant_id=tenant[ids[0]], to=S.RUNNING, actor="t")
        transition(session, execution_id=ids[1], tenant_id=tenant[ids[1]], to=S.CANCELLED, actor="t")
        transition(session, execution_id=ids[2], tenant_id=tenant[ids[2]], to=S.RUNNING, actor="t")
        transition(session, execution_id=ids[2], tenant_id=tenant[ids[2]], to=S.COMPLETED, actor="t")
        forced = [S.PENDING_APPROVAL, S.APPROVED, S.REJECTED, S.EXPIRED, S.FAILED, S.PARTIAL, S.TIMEOUT]
        for execution_id, status in zip(ids[3:], forced, strict=False):
            session.execute(update(Execution).where(col(Execution.id) == execution_id).values(status=status.value))
        session.execute(
            update(Execution)
            .where(col(Execution.id).in_(ids[10:12]))
            .values(run_mode="dry_run", created_at=utcnow() - timedelta(hours=1))
        )
        session.execute(update(Execution).where(col(Execution.id) == ids[10]).values(status=S.PENDING_APPROVAL.value))
        session.execute(delete(Execution).where(col(Execution.id) == ids[13]))
        session.add(DlqEntry(execution_id=ids[7], tenant_id=tenant[ids[7]], reason="step_failed", attempts=1))
    return ids


def test_the_scrape_reports_what_a_scan_of_the_executions_reports(db: str) -> None:
    """Every status, both run modes, two tenants, every kind of writer: the same samples as the old full scan,
    before and after the sweeper folds the counts."""
    _execution_in_every_status()
    with session_scope() as session:
        statuses = set(session.execute(select(Execution.status)).scalars())  # type: ignore[call-overload]
    assert statuses == {s.value for s in S}
    _same(_scrape(), _scan_as_before())
    execution_counts.fold_now()
    with session_scope() as session:
        groups = session.execute(select(func.count()).select_from(ExecutionCount)).scalar_one()
    assert groups == len([k for k in _scan_as_before() if k[0] == "opsc_executions"])  # one row per group
    _same(_scrape(), _scan_as_before())


def test_folding_beside_writers_loses_no_change(db: str) -> None:
    """Folds run while another thread moves executions between statuses: the counts stay exact."""
    ids = [
        submit(principal("alice", "demo"), PLAN.format(name=f"w{n}"), background=True).execution.execution_id
        for n in range(20)
    ]
    stop = threading.Event()
    errors: list[BaseException] = []

    def fold_loop() -> None:
        while not stop.is_set():
            try:
                execution_counts.fold_now()
            except Exception as exc:
                errors.append(exc)
                return

    folder = threading.Thread(target=fold_loop)
    folder.start()
    try:
        with session_scope() as session:
            tenant_id = session.execute(select(Execution.tenant_id)).scalars().first()  # type: ignore[call-overload]
        for execution_id in ids:
            with session_scope() as session:
                transition(session, execution_id=execution_id, tenant_id=tenant_id, to=S.RUNNING, actor="t")
            with session_scope() as session:
                transition(session, execution_id=execution_id, tenant_id=tenant_id, to=S.COMPLETED, actor="t")
    finally:
        stop.set()
        folder.join()
    assert not errors, errors
    _same(_scrape(), _scan_as_before())


def test_recount_rebuilds_counts_a_bulk_load_bypassed(db: str) -> None:
    """Rows loaded without the triggers (a restore, the console benchmark's COPY) are counted by ``recount``."""
    submit(principal("alice", "demo"), PLAN.format(name="r"), background=True)
    with session_scope() as session:
        session.execute(delete(ExecutionCount))
    assert _scrape() != _scan_as_before()
    with session_scope() as session:
        execution_counts.recount(session)
    _same(_scrape(), _scan_as_before())


def test_the_counting_triggers_exist_at_head(db: str) -> None:
    """A later migration that rebuilds ``executions`` (SQLite batch mode) would drop them: this says so."""
    assert migrate.current_revision(db) == migrate.head_revision()
    with session_scope() as session:
        if db.startswith("postgresql"):
            query = "SELECT tgname FROM pg_trigger WHERE tgrelid = 'executions'::regclass AND NOT tgisinternal"
        else:
            query = "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'executions'"
        names = set(session.execute(text(query)).scalars())
    expected = (
        {"executions_count_insert_delete", "executions_count_update"}
        if db.startswith("postgresql")
        else {"executions_count_insert", "executions_count_delete", "executions_count_update"}
    )
    assert names >= expected

"""Change windows, the engine's side (DESIGN §14): a ``modify``+ execution does not start outside its windows.

Called once per execution, when its first step is claimed and before any asset lock is taken
(core/engine/claim.py ``_start``). Outside the tenant's windows (core/change_windows.py) the queue row is
parked until the next opening, the way a level-3 gate parks it (``outbox.hold_until``), with a message
delayed to that moment and a ``window_waiting`` event that says until when; the execution stays ``queued``
and holds no lock, so the assets stay free for others meanwhile. The wait is bounded by the tenant's
``max_wait_s``, counted from when the execution was queued: a window that has not opened by then ends it
``timeout`` in the DLQ with reason ``change_window``. An override confirmed by two admins
(core/usecases/windows.py) lets it start at once.

What it costs where nothing is held: nothing for ``read`` plans and dry runs (no lookup), one cached lookup
for a tenant without rules (core/change_window_store.py), and no query per step: only the first step asks.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlmodel import Session, col

from core.audit import record_event
from core.change_window_store import cached_rules
from core.change_windows import Verdict, evaluate, held_class
from core.engine import outbox
from core.engine.finish import dead_letter
from db.clock import utcnow
from db.enums import ExecutionStatus, Role, RunMode
from db.tables import Asset, ChangeWindowOverride, Execution, Membership, QueueItem

WINDOW_WAITING = "window_waiting"
REASON = "change_window"


def held(session: Session, execution: Execution, item: QueueItem, target_ids: Collection[str], actor: str) -> bool:
    """True if the execution may not start now: its row is parked until the next opening, or (its wait over)
    the execution ended ``timeout`` in the DLQ. False: let the start proceed.

    The caller holds the row's lease; a held execution gives it back.
    """
    if not held_class(execution.action_class) or execution.run_mode == RunMode.DRY_RUN.value:
        return False  # a dry run touches nothing: it may rehearse a change during a freeze
    rules = cached_rules(session, execution.tenant_id)
    if rules is None:
        return False
    now = utcnow()
    tags = target_tags(session, execution.tenant_id, target_ids) if rules.tag_scoped else [frozenset[str]()]
    verdict = evaluate(rules, tags, execution.action_class, now)
    if verdict.allowed or overridden(session, execution.id):
        return False
    outbox.drop_lease(session, item.id)
    bound_at = item.created_at + timedelta(seconds=rules.max_wait_s)
    if now >= bound_at:
        message = f"no change window opened within {rules.max_wait_s}s ({verdict.reason})"
        dead_letter(session, execution, ExecutionStatus.TIMEOUT, actor=actor, reason=REASON, message=message)
        return True
    _park(session, item, verdict, bound_at, actor=actor)
    return True


def target_tags(session: Session, tenant_id: str, asset_ids: Collection[str]) -> list[frozenset[str]]:
    """The tags of each target asset (tenant-scoped), one set per asset."""
    rows = session.execute(
        select(col(Asset.tags_json)).where(col(Asset.tenant_id) == tenant_id, col(Asset.id).in_(sorted(asset_ids)))
    ).scalars()
    return [frozenset(str(t) for t in json.loads(text or "[]")) for text in rows] or [frozenset()]


def overridden(session: Session, execution_id: str) -> bool:
    """Whether two admins overrode the change windows for this execution, both of them admins still (an
    approval counts only while its approver holds the role; so does an override)."""
    given = session.execute(
        select(
            col(ChangeWindowOverride.tenant_id),
            col(ChangeWindowOverride.requested_by),
            col(ChangeWindowOverride.confirmed_by),
        ).where(
            col(ChangeWindowOverride.execution_id) == execution_id,
            col(ChangeWindowOverride.confirmed_at).is_not(None),
        )
    ).first()
    if given is None or given.confirmed_by is None or given.confirmed_by == given.requested_by:
        return False
    admins = session.execute(
        select(col(Membership.user_id)).where(
            col(Membership.tenant_id) == given.tenant_id,
            col(Membership.user_id).in_([given.requested_by, given.confirmed_by]),
            col(Membership.role) == Role.ADMIN.value,
        )
    ).all()
    return len(admins) == 2


def wake(session: Session, execution_id: str) -> None:
    """An override was confirmed: a row parked for its window is made runnable now (a leased one is left to its
    worker, whose next claim sees the override)."""
    lease = session.execute(
        select(col(QueueItem.id), col(QueueItem.lease_token)).where(col(QueueItem.execution_id) == execution_id)
    ).first()
    if lease is not None and lease.lease_token is None:
        outbox.release_now(session, execution_id)


def _park(session: Session, item: QueueItem, verdict: Verdict, bound_at: datetime, *, actor: str) -> None:
    """Hold the row until the opening (or the wait's bound), with a message due then, and say so in the trail."""
    opens_at = verdict.opens_at
    until = bound_at if opens_at is None or opens_at > bound_at else opens_at
    outbox.hold_until(session, item.id, until)
    outbox.send_after_commit(session, [item.execution_id], delay_s=max((until - utcnow()).total_seconds(), 0.0))
    if opens_at is not None and opens_at <= bound_at:
        message = f"waiting for change window until {_iso(opens_at)} ({verdict.reason})"
    else:
        later = f"; the next opens at {_iso(opens_at)}" if opens_at is not None else ""
        message = f"waiting for change window until {_iso(bound_at)}, the wait's bound ({verdict.reason}{later})"
    record_event(
        session,
        execution_id=item.execution_id,
        tenant_id=item.tenant_id,
        kind=WINDOW_WAITING,
        actor=actor,
        message=message,
        data={
            "until": until.isoformat(),
            "opens_at": opens_at.isoformat() if opens_at is not None else None,
            "bound_at": bound_at.isoformat(),
            "reason": verdict.reason,
        },
    )


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

"""Per-asset locks (DESIGN §3.9): one execution at a time per (tenant, asset).

- **Acquire** all of an execution's target assets before its first step, in sorted order, all or
  nothing, in one savepoint: an upsert that takes over only an expired row (never check-then-insert).
  Each acquisition bumps the asset's fencing counter: tokens only grow.
- **Hold** to the end; the running step's watcher renews the expiry; a worker checks it still holds
  every lock with the same tokens before it persists a step result (a stale holder is refused).
- **Wait** without a thread or polling: a blocked execution parks its queue row with the asset it waits
  for; **release** (at the end of an execution, or when the sweeper reaps an expired lock) wakes the
  oldest waiter of each released asset, dispatched after commit (FIFO hand-off).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session

from core.audit import record_event
from core.engine import outbox
from core.schemas import LockView
from db.clock import utcnow
from db.tables import Asset, Execution, ExecutionLock, QueueItem

_LOCKS = ExecutionLock.__table__  # type: ignore[attr-defined]
_ASSETS = Asset.__table__  # type: ignore[attr-defined]
_QUEUE = QueueItem.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Busy:
    """An asset another execution holds, or that others queue for ahead of us."""

    asset_id: str
    asset_name: str
    holder: str | None
    ahead: str | None = None  # the first execution in line before us, when the lock itself is free

    def describe(self) -> str:
        if self.holder is not None:
            return f"waiting for {self.asset_name}, held by execution {self.holder}"
        return f"waiting for {self.asset_name}, behind execution {self.ahead} in its queue"


def acquire(
    session: Session,
    *,
    tenant_id: str,
    execution_id: str,
    asset_ids: list[str],
    expires_at: datetime,
    waiting_since: datetime | None = None,
) -> dict[str, int] | Busy:
    """Take every lock or none. Returns {asset_id: fencing token}, or the first asset that is busy.

    An asset whose lock is free still counts as busy while executions that queued for it earlier than
    ``waiting_since`` (any, for a newcomer) are in line: nobody jumps the FIFO.
    """
    now = utcnow()
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    # Bump every counter first, outside the savepoint: on PostgreSQL that row-locks the assets until this
    # transaction ends, so acquiring, parking in line and releasing one asset happen one at a time, in a
    # single order, and a waiter can never park unseen by the release that should wake it. A refused
    # acquisition burns its tokens; they still only grow.
    tokens = {
        asset_id: session.execute(
            update(_ASSETS)
            .where(_ASSETS.c.id == asset_id)
            .values(lock_fence=_ASSETS.c.lock_fence + 1)
            .returning(_ASSETS.c.lock_fence)
        ).scalar_one()
        for asset_id in sorted(set(asset_ids))
    }
    savepoint = session.begin_nested()
    for asset_id, token in tokens.items():
        ahead = outbox.first_in_line(session, asset_id, before=waiting_since, other_than=execution_id)
        values = {"execution_id": execution_id, "fencing_token": token, "acquired_at": now, "expires_at": expires_at}
        upsert = insert(_LOCKS).values(tenant_id=tenant_id, asset_id=asset_id, **values)
        upsert = upsert.on_conflict_do_update(
            index_elements=[_LOCKS.c.tenant_id, _LOCKS.c.asset_id],
            set_=values,
            where=(_LOCKS.c.expires_at < now) | (_LOCKS.c.execution_id == execution_id),
        )
        if ahead is not None or session.execute(upsert).rowcount != 1:  # type: ignore[attr-defined]
            holder = session.execute(
                select(_LOCKS.c.execution_id).where(_LOCKS.c.tenant_id == tenant_id, _LOCKS.c.asset_id == asset_id)
            ).scalar()
            name = session.execute(select(_ASSETS.c.name).where(_ASSETS.c.id == asset_id)).scalar_one()
            savepoint.rollback()
            return Busy(asset_id=asset_id, asset_name=name, holder=holder, ahead=ahead)
    savepoint.commit()
    return tokens


def held(session: Session, execution_id: str) -> dict[str, int]:
    """The locks the execution holds now: {asset_id: fencing token}."""
    rows = session.execute(
        select(_LOCKS.c.asset_id, _LOCKS.c.fencing_token).where(_LOCKS.c.execution_id == execution_id)
    ).all()
    return {asset_id: token for asset_id, token in rows}


def extend(session: Session, execution_id: str, expires_at: datetime) -> None:
    """Push the expiry of the execution's locks to at least ``expires_at`` (heartbeat)."""
    session.execute(
        update(_LOCKS)
        .where(_LOCKS.c.execution_id == execution_id, _LOCKS.c.expires_at < expires_at)
        .values(expires_at=expires_at)
    )


def release(session: Session, execution_id: str) -> list[str]:
    """Drop the execution's locks and wake the oldest waiter of each asset (after commit)."""
    mine = session.execute(select(_LOCKS.c.asset_id).where(_LOCKS.c.execution_id == execution_id)).scalars().all()
    _lock_assets(session, list(mine))
    asset_ids = list(
        session.execute(delete(_LOCKS).where(_LOCKS.c.execution_id == execution_id).returning(_LOCKS.c.asset_id))
        .scalars()
        .all()
    )
    _hand_off(session, asset_ids)
    return asset_ids


def reap_expired(session: Session) -> int:
    """Delete locks past their expiry (their holder died or hung) and hand the assets on. Returns how many."""
    expired = session.execute(select(_LOCKS.c.asset_id).where(_LOCKS.c.expires_at < utcnow())).scalars().all()
    _lock_assets(session, list(expired))
    asset_ids = list(
        session.execute(delete(_LOCKS).where(_LOCKS.c.expires_at < utcnow()).returning(_LOCKS.c.asset_id))
        .scalars()
        .all()
    )
    _hand_off(session, asset_ids)
    return len(asset_ids)


def _lock_assets(session: Session, asset_ids: list[str]) -> None:
    """Row-lock the assets (sorted, like acquirers) so a release is ordered with parking on PostgreSQL."""
    if asset_ids and session.get_bind().dialect.name == "postgresql":
        session.execute(
            select(_ASSETS.c.id).where(_ASSETS.c.id.in_(sorted(asset_ids))).order_by(_ASSETS.c.id).with_for_update()
        )


def park(session: Session, item: QueueItem, busy: Busy, *, until: datetime, actor: str) -> None:
    """Make the execution wait for ``busy`` (no thread, no polling) and say who holds it."""
    since = outbox.park_for_asset(session, item.id, asset_id=busy.asset_id, until=until)
    record_event(
        session,
        execution_id=item.execution_id,
        tenant_id=item.tenant_id,
        kind="lock_waiting",
        actor=actor,
        message=busy.describe(),
        data={"asset_id": busy.asset_id, "holder": busy.holder, "ahead": busy.ahead, "since": since.isoformat()},
    )


def wake(session: Session, execution_id: str) -> None:
    """Wake a waiter whose turn it is although the lock is free (its hand-off was missed): dispatch it."""
    outbox.release_now(session, execution_id)


def _hand_off(session: Session, asset_ids: list[str]) -> None:
    for asset_id in sorted(set(asset_ids)):
        oldest = outbox.first_in_line(session, asset_id)
        if oldest is not None:
            outbox.release_now(session, oldest)  # still in line until it has the lock


def list_locks(session: Session, tenant_id: str) -> list[LockView]:
    """The tenant's held locks with their holder and how many executions wait for each asset."""
    waiters = dict(
        session.execute(
            select(_QUEUE.c.waiting_for_asset_id, func.count())
            .where(_QUEUE.c.tenant_id == tenant_id, _QUEUE.c.waiting_for_asset_id.is_not(None))
            .group_by(_QUEUE.c.waiting_for_asset_id)
        ).all()
    )
    rows = session.execute(
        select(_LOCKS, _ASSETS.c.name, Execution.__table__.c.name.label("execution_name"))  # type: ignore[attr-defined]
        .join(_ASSETS, _ASSETS.c.id == _LOCKS.c.asset_id)
        .join(Execution.__table__, Execution.__table__.c.id == _LOCKS.c.execution_id)  # type: ignore[attr-defined]
        .where(_LOCKS.c.tenant_id == tenant_id)
        .order_by(_ASSETS.c.name)
    ).all()
    return [
        LockView(
            asset=r.name,
            execution_id=r.execution_id,
            execution_name=r.execution_name,
            fencing_token=r.fencing_token,
            acquired_at=r.acquired_at,
            expires_at=r.expires_at,
            waiters=int(waiters.get(r.asset_id, 0)),
        )
        for r in rows
    ]


def lock_expiry(deadline_at: datetime | None, lease_s: int) -> datetime:
    """Locks outlive a crashed holder by one lease past the execution's deadline, at most."""
    return (deadline_at or utcnow()) + timedelta(seconds=lease_s)

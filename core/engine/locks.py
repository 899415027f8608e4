"""Per-asset locks (DESIGN §3.9): one execution at a time per (tenant, asset).

- **Acquire** all of an execution's target assets before its first step, in sorted order, all or
  nothing (in a savepoint when there are several): an upsert that takes over only an expired row (never
  check-then-insert). Each acquisition bumps the asset's fencing counter: tokens only grow.
- **Hold** to the end; the running step's watcher renews the expiry; a worker checks it still holds
  every lock with the same tokens before it persists a step result (a stale holder is refused).
- **Wait** without a thread or polling: a blocked execution parks its queue row with the asset it waits
  for; **release** (at the end of an execution, or when the sweeper reaps an expired lock) wakes the
  oldest waiter of each released asset, dispatched after commit (FIFO hand-off).

**One lock order** (DESIGN §15), so that PostgreSQL never has to break a deadlock:

1. ``assets`` rows, sorted by id (``lock_assets``, or the fencing bump of ``acquire``);
2. then ``execution_queue`` rows: the execution's own, then the waiters a hand-off or a wake dispatches;
3. then ``execution_locks`` rows (written only under their asset's row, or by their own execution's
   heartbeat, so they never close a cycle);
4. then the ``executions`` row (its status), its steps and events; the audit heads last, at commit
   (core/audit_links.py).

Every transaction that touches the queue row of an execution that has not started (``approved`` or
``queued``: the only rows an asset holder ever writes to, as a waiter's) takes that execution's asset rows
first: the claim of a first step, the end of an execution (``release``), a cancel before start. A started
execution's own queue row is taken first by its lease holder (persist, the watcher) and the sweeper
(``FOR UPDATE SKIP LOCKED``) before they may release its assets; that stays safe because no transaction
holding an asset row waits for a started execution's queue row: hand-offs and wakes dispatch only waiters,
and a claim that finds, once it holds the assets, that the execution has started leaves its row alone.
SQLite serialises writers, so there the order is moot and ``lock_assets`` renders nothing.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import bindparam, delete, func, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session

from core.audit import record_event
from core.engine import outbox
from core.schemas import LockView
from db.clock import utcnow
from db.prepared import Prepared
from db.tables import Asset, Execution, ExecutionLock, ExecutionStep, QueueItem

_LOCKS = ExecutionLock.__table__  # type: ignore[attr-defined]
_ASSETS = Asset.__table__  # type: ignore[attr-defined]
_QUEUE = QueueItem.__table__  # type: ignore[attr-defined]
_STEPS = ExecutionStep.__table__  # type: ignore[attr-defined]


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
    postgresql = session.get_bind().dialect.name == "postgresql"
    if postgresql and len(set(asset_ids)) == 1:
        return _acquire_one(session, tenant_id, execution_id, asset_ids[0], now, expires_at, waiting_since)
    insert = pg_insert if postgresql else sqlite_insert
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
    # All or nothing: with several assets a later refusal undoes the earlier upserts (a savepoint); with one
    # (most plans), a refusal has written nothing to undo, and the savepoint's two statements are saved.
    savepoint = session.begin_nested() if len(tokens) > 1 else None
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
            busy = _busy(session, tenant_id, asset_id, ahead)
            if savepoint is not None:
                savepoint.rollback()
            return busy
    if savepoint is not None:
        savepoint.commit()
    return tokens


def _acquire_one(
    session: Session,
    tenant_id: str,
    execution_id: str,
    asset_id: str,
    now: datetime,
    expires_at: datetime,
    waiting_since: datetime | None,
) -> dict[str, int] | Busy:
    """``acquire`` of one asset on PostgreSQL (most plans): the fencing bump, the look at its line and the
    upsert in one statement.

    One snapshot serves the three only because the claim holds the asset's row already (it locked the plan's
    assets first: ``lock_targets_if_unstarted``), so the bump never waits and nothing that orders by that row
    (a release, a park) can commit between the look and the upsert.
    """
    row = _ACQUIRE_ONE.first(
        session,
        {
            "a_tenant_id": tenant_id,
            "a_asset_id": asset_id,
            "a_execution_id": execution_id,
            "a_now": now,
            "a_expires_at": expires_at,
            "a_before": waiting_since,
        },
    )
    assert row is not None  # the statement returns its one row whatever happened
    token, ahead, taken = int(row[0]), row[1], bool(row[2])
    if taken:
        return {asset_id: token}
    return _busy(session, tenant_id, asset_id, ahead)


def _busy(session: Session, tenant_id: str, asset_id: str, ahead: str | None) -> Busy:
    """Why ``asset_id`` cannot be taken: who holds its lock row (expired or not) and who is first in its line."""
    holder = session.execute(
        select(_LOCKS.c.execution_id).where(_LOCKS.c.tenant_id == tenant_id, _LOCKS.c.asset_id == asset_id)
    ).scalar()
    name = session.execute(select(_ASSETS.c.name).where(_ASSETS.c.id == asset_id)).scalar_one()
    return Busy(asset_id=asset_id, asset_name=name, holder=holder, ahead=ahead)


_acquire_one_text = text(
    "WITH fence AS (UPDATE assets SET lock_fence = lock_fence + 1 WHERE id = :a_asset_id RETURNING lock_fence), "
    "ahead AS (SELECT execution_id FROM execution_queue WHERE waiting_for_asset_id = :a_asset_id "
    "AND execution_id <> :a_execution_id AND (CAST(:a_before AS timestamptz) IS NULL OR waiting_since < :a_before) "
    "ORDER BY waiting_since, id LIMIT 1), "
    "taken AS (INSERT INTO execution_locks (tenant_id, asset_id, execution_id, fencing_token, acquired_at, expires_at) "
    "SELECT :a_tenant_id, :a_asset_id, :a_execution_id, fence.lock_fence, :a_now, :a_expires_at FROM fence "
    "WHERE NOT EXISTS (SELECT 1 FROM ahead) "
    "ON CONFLICT (tenant_id, asset_id) DO UPDATE SET execution_id = EXCLUDED.execution_id, "
    "fencing_token = EXCLUDED.fencing_token, acquired_at = EXCLUDED.acquired_at, expires_at = EXCLUDED.expires_at "
    "WHERE execution_locks.expires_at < :a_now OR execution_locks.execution_id = :a_execution_id "
    "RETURNING 1) "
    "SELECT fence.lock_fence, (SELECT execution_id FROM ahead), EXISTS (SELECT 1 FROM taken) FROM fence"
).bindparams(
    bindparam("a_now", type_=_LOCKS.c.expires_at.type),
    bindparam("a_expires_at", type_=_LOCKS.c.expires_at.type),
    bindparam("a_before", type_=_QUEUE.c.waiting_since.type),
)
_ACQUIRE_ONE = Prepared(_acquire_one_text)


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


def release(session: Session, execution_id: str, *, held_by_running: Collection[str] | None = None) -> list[str]:
    """An execution ends: drop its queue row and its locks, and wake the oldest waiter of each asset it held
    (after commit) or of the one it waited for, if nobody holds that. Returns the assets whose lock it held.

    In the one order: the asset rows first (held and waited for, sorted), then the queue rows (its own, the
    waiters'), then the lock rows. A waiter that ends (cancelled, timed out in line) may have been handed the
    lock or woken a moment before: waking the next in line then keeps the hand-off from being lost with it.

    ``held_by_running``: the caller is the lease holder of a started execution and has just read its locks
    (the persist's fencing check): those are its assets, and a started execution waits in no line, so the
    two reads that would find them are skipped.
    """
    if held_by_running is not None and session.get_bind().dialect.name == "postgresql":
        return _release_running(session, execution_id, sorted(set(held_by_running)))
    if held_by_running is not None:
        mine, waited = list(held_by_running), None
    else:
        mine = list(session.execute(select(_LOCKS.c.asset_id).where(_LOCKS.c.execution_id == execution_id)).scalars())
        waited = session.execute(
            select(_QUEUE.c.waiting_for_asset_id).where(_QUEUE.c.execution_id == execution_id)
        ).scalar()
    lock_assets(session, mine + ([waited] if waited else []))
    outbox.remove(session, execution_id)
    _hand_off(session, mine)
    if waited is not None and waited not in mine and _holder(session, waited) is None:
        _hand_off(session, [waited])
    session.execute(delete(_LOCKS).where(_LOCKS.c.execution_id == execution_id))
    return mine


def _release_running(session: Session, execution_id: str, mine: list[str]) -> list[str]:
    """``release`` for a started execution on PostgreSQL: its asset rows locked, then one statement deletes its
    queue row and its lock rows and finds the first in line of each asset (the snapshot before the deletes:
    a started execution is in no line itself), whose hand-off is sent after commit."""
    lock_assets(session, mine)
    waiters = [row[0] for row in _RELEASE_RUNNING.rows(session, {"r_execution_id": execution_id, "r_assets": mine})]
    for waiter in waiters:
        outbox.release_now(session, waiter)  # still in line until it has the lock
    return mine


_release_running_text = text(
    "WITH gone_queue AS (DELETE FROM execution_queue WHERE execution_id = :r_execution_id), "
    "gone_locks AS (DELETE FROM execution_locks WHERE execution_id = :r_execution_id) "
    "SELECT first.execution_id FROM (SELECT DISTINCT ON (waiting_for_asset_id) waiting_for_asset_id, execution_id "
    "FROM execution_queue WHERE waiting_for_asset_id = ANY(:r_assets) "
    "ORDER BY waiting_for_asset_id, waiting_since, id) AS first ORDER BY first.waiting_for_asset_id"
)
_RELEASE_RUNNING = Prepared(_release_running_text)


def lock_unstarted(session: Session, execution_id: str) -> None:
    """Before ending an execution that has not started (a cancel): lock its asset rows, then its queue row.

    The rows a claim of its first step would lock, in the same order; a claim under way is waited for, so
    the caller reads the execution again afterwards and finds it started, parked, or as it was.
    """
    targets = session.execute(select(_STEPS.c.target_asset_id).where(_STEPS.c.execution_id == execution_id))
    waited = session.execute(
        select(_QUEUE.c.waiting_for_asset_id).where(_QUEUE.c.execution_id == execution_id)
    ).scalar()
    lock_assets(session, {*targets.scalars(), *([waited] if waited else [])})
    session.execute(select(_QUEUE.c.id).where(_QUEUE.c.execution_id == execution_id).with_for_update())


def reap_expired(session: Session) -> int:
    """Delete locks past their expiry (their holder died or hung) and hand the assets on. Returns how many."""
    expired = session.execute(select(_LOCKS.c.asset_id).where(_LOCKS.c.expires_at < utcnow())).scalars().all()
    lock_assets(session, list(expired))
    # Under the asset rows, again: a lock renewed or released meanwhile is not ours to reap.
    asset_ids = list(
        session.execute(delete(_LOCKS).where(_LOCKS.c.expires_at < utcnow()).returning(_LOCKS.c.asset_id))
        .scalars()
        .all()
    )
    _hand_off(session, asset_ids)
    return len(asset_ids)


def lock_assets(session: Session, asset_ids: list[str] | set[str] | frozenset[str]) -> None:
    """Row-lock the assets, sorted by id: step 1 of the one lock order (PostgreSQL; SQLite serialises anyway).

    ``FOR NO KEY UPDATE``, the lock the fencing bump takes: it orders acquiring, parking, waking and releasing
    on an asset, and leaves alone the key-share locks of inserts that merely reference the asset.
    """
    if asset_ids and session.get_bind().dialect.name == "postgresql":
        _LOCK_ASSETS.rows(session, {"ids": sorted(set(asset_ids))})


# One text whatever the number of assets (an array, not IN (...)): compiled once, prepared once per connection.
_LOCK_ASSETS = Prepared(text("SELECT id FROM assets WHERE id = ANY(:ids) ORDER BY id FOR NO KEY UPDATE"))


def lock_targets_if_unstarted(session: Session, execution_id: str) -> bool:
    """A claim's first statement (PostgreSQL): row-lock, sorted, the assets the stored plan targets, if the
    execution has not started. True when it locked them (or on SQLite, which serialises writers anyway).

    So a first step's claim reads its rows once, after the lock, instead of reading, locking and reading again.
    The targets come from the stored plan, the one the claim then verifies against its hash: when it does not
    verify, the claim takes no lock at all, and the extra row locks end with the transaction.
    """
    if session.get_bind().dialect.name != "postgresql":
        return True
    return _LOCK_UNSTARTED_TARGETS.first(session, {"l_execution_id": execution_id}) is not None


# Every step list's targets: rollback steps' too (core/plan_phases.py), whose locks the execution takes at start.
_lock_unstarted_targets = text(
    "SELECT a.id FROM assets a WHERE a.id IN ("
    "SELECT jsonb_array_elements((p.j -> 'steps') || COALESCE(p.j -> 'on_failure', CAST('[]' AS jsonb))"
    " || COALESCE(p.j -> 'on_cancel', CAST('[]' AS jsonb))) ->> 'target' "
    "FROM (SELECT CAST(e.plan_json AS jsonb) AS j FROM executions e "
    "WHERE e.id = :l_execution_id AND e.status IN ('approved', 'queued')) p) "
    "ORDER BY a.id FOR NO KEY UPDATE"
)
_LOCK_UNSTARTED_TARGETS = Prepared(_lock_unstarted_targets)


def _holder(session: Session, asset_id: str) -> str | None:
    """The execution holding the asset's lock, if its lock has not expired."""
    found: str | None = session.execute(
        select(_LOCKS.c.execution_id).where(_LOCKS.c.asset_id == asset_id, _LOCKS.c.expires_at >= utcnow())
    ).scalar()
    return found


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
    """Wake a waiter whose turn it is although the lock is free (its hand-off was missed): dispatch it.

    The caller holds the row of the asset it waits for (the one lock order).
    """
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

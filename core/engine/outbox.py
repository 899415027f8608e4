"""The outbox (DESIGN §3.3): every write of a queue row, and the one path by which the broker hears of it.

A queue row (``execution_queue``) is the durable form of "this execution has a step to run". Every
function here that makes a row runnable also announces it: it names the message in the row (a fresh
``message_id`` and ``dispatched_at``, in the same UPDATE) and leaves it on the session, and
``core.transactions.session_scope`` hands it to the dispatcher only once the transaction has committed,
so a message never announces work that could still roll back.

Re-sending (``due_redispatch``, run by the sweeper) happens only when the message is really lost. A row is
looked at once its message is ``redispatch_after_s`` old (the grace that covers the moment between commit
and send); the sweeper then asks the broker, through the dispatcher, whether it still holds that message
id: queued, delayed, or taken by a consumer that is still alive (jobs/held.py). Held: the row is left alone
and looked at again ``redispatch_after_s`` later, however long the backlog ahead of it. Not held: the
namespace was flushed, the process crashed between commit and send, Dramatiq dead-lettered the message, or
the consumer that took it died: a new message is sent within that sweep. Why the broker and not a bound
that grows with the backlog: a backlog is exactly when a bound is hardest to guess (queue depth and drain
rate move, workers come and go), and a wrong guess either re-sends the backlog (the storm this replaces:
3.9 messages per plan at 2,000 queued) or leaves a lost message unsent for minutes; the broker knows. Rows
never sent (``dispatched_at`` NULL: no dispatcher in the process that queued them), rows from before message
ids, and a dispatcher that cannot tell (``held`` returns None) fall back to the age rule, as before.
Re-sending stays idempotent: a duplicate finds the lease taken and is a no-op, it only costs a claim.

Lease writes (take, renew, hand back) live here too: a lease is a column of the same row.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import String, and_, bindparam, cast, func, or_, select
from sqlmodel import Session

from core import metrics
from core.errors import ServiceUnavailable
from core.fsm import transition, transition_many
from core.ports import AFTER_COMMIT_KEY, Outgoing, get_dispatcher, held_messages
from core.priority import pick_margin_s, sort_at
from db.clock import utcnow
from db.enums import ExecutionStatus
from db.prepared import Prepared
from db.tables import Execution, ExecutionLock, QueueItem, new_id

# The per-step writes go through the table (SQLAlchemy Core), not the ORM: they run for every step,
# nobody holds these rows as objects in the session, and the ORM's bulk layer doubles their cost.
QUEUE = QueueItem.__table__  # type: ignore[attr-defined]
LOCKS = ExecutionLock.__table__  # type: ignore[attr-defined]
_INSERT = QUEUE.insert()
BATCH = 200
log = logging.getLogger(__name__)


def send_after_commit(session: Session, execution_ids: list[str], *, delay_s: float = 0.0) -> None:
    """Have the job runner told about ``execution_ids`` once this session's transaction commits.

    For a caller that did not just write the rows itself (the functions below name the message in their own
    UPDATE): names each row's new message in one UPDATE per row.
    """
    for execution_id in execution_ids:
        session.execute(
            QUEUE.update()
            .where(QUEUE.c.execution_id == execution_id)
            .values(**_announce(session, execution_id, delay_s))
        )


def _announce(session: Session, execution_id: str, delay_s: float = 0.0) -> dict[str, Any]:
    """Name a new message for ``execution_id`` and leave it on the session; returns the row's columns for it."""
    message = _new_message()
    _leave(session, execution_id, message, delay_s)
    return message


def _new_message() -> dict[str, Any]:
    """The queue row's columns for a message about to be sent (not yet left on any session)."""
    if get_dispatcher() is None:
        # Nobody here to send it: NULL says "never sent", and the sweeper's first pass sends it.
        return {"message_id": None, "dispatched_at": None}
    return {"message_id": new_id(), "dispatched_at": utcnow()}


def _leave(session: Session, execution_id: str, message: dict[str, Any], delay_s: float) -> None:
    # The last message of a transaction for an execution replaces an earlier one: the row names only one.
    pending: dict[str, Outgoing] = session.info.setdefault(AFTER_COMMIT_KEY, {})
    pending[execution_id] = Outgoing(execution_id, delay_s, message["message_id"])


def enqueue(session: Session, execution: Execution, *, actor: str | None, send: bool = True) -> None:
    """Move an ``approved`` execution to ``queued`` and write its queue row.

    Args:
        send: announce it to the job runner after commit; False when the caller runs it inline.
    """
    transition(
        session,
        execution_id=execution.id,
        tenant_id=execution.tenant_id,
        to=ExecutionStatus.QUEUED,
        expected=ExecutionStatus.APPROVED,
        actor=actor,
        message="queued for a worker",
    )
    _insert(session, execution, step_index=0, send=send)


def enqueue_many(
    session: Session,
    tenant_id: str,
    queued: Mapping[str, tuple[str, int]],
    *,
    actor: str | None,
    send: Collection[str],
) -> None:
    """``enqueue`` for several ``approved`` executions of one tenant (id → SLA class and priority): their move to
    ``queued``
    (one compare-and-set UPDATE, core/fsm.py ``transition_many``) and one INSERT of their queue rows (a
    submit's level-0 plans).

    Args:
        send: the ids to announce to the job runner after commit (not those the caller runs inline).
    """
    if not queued:
        return
    transition_many(
        session,
        tenant_id=tenant_id,
        execution_ids=list(queued),
        to=ExecutionStatus.QUEUED,
        expected=ExecutionStatus.APPROVED,
        actor=actor,
        message="queued for a worker",
    )
    now = utcnow()
    rows = []
    for execution_id, (sla_class, priority) in queued.items():
        # As ``_insert``: one not sent (run inline) is "sent now" with no message id to ask about.
        message = (
            _announce(session, execution_id) if execution_id in send else {"message_id": None, "dispatched_at": now}
        )
        rows.append(
            {
                "id": new_id(),
                "execution_id": execution_id,
                "tenant_id": tenant_id,
                "sla_class": sla_class,
                "step_index": 0,
                "available_at": now,
                "sort_at": sort_at(now, priority),
                "created_at": now,
                **message,
            }
        )
    session.execute(_INSERT, rows)


def requeue(session: Session, execution: Execution, *, step_index: int) -> None:
    """Write a fresh queue row for an execution sent back from the DLQ, resuming at ``step_index``."""
    _insert(session, execution, step_index=step_index, send=True)


def _insert(session: Session, execution: Execution, *, step_index: int, send: bool) -> None:
    # Not sent (run inline): dispatched_at says "sent now", so the sweeper leaves it to the inline run for
    # redispatch_after_s, and has no message id to ask about after that (the age rule).
    message = _announce(session, execution.id) if send else {"message_id": None, "dispatched_at": utcnow()}
    session.add(
        QueueItem(
            execution_id=execution.id,
            tenant_id=execution.tenant_id,
            sla_class=execution.sla_class,
            step_index=step_index,
            sort_at=sort_at(utcnow(), execution.priority),
            **message,
        )
    )
    session.flush()


def remove(session: Session, execution_id: str) -> None:
    """Delete the execution's queue row, if any (it ended, or was cancelled before a worker took it)."""
    session.execute(QUEUE.delete().where(QUEUE.c.execution_id == execution_id))


# -- leases ------------------------------------------------------------------------------------------


def take_lease(session: Session, item_id: str, *, token: str, worker_id: str, lease_s: float) -> bool:
    """Compare-and-set a free lease to ``token``: False when someone else holds it (a duplicate message)."""
    expires = utcnow() + timedelta(seconds=lease_s)
    return _TAKE_LEASE.rowcount(session, {"i_id": item_id, "token": token, "expires": expires, "by": worker_id}) == 1


def renew_lease(session: Session, execution_id: str, *, token: str, lease_s: float) -> bool:
    """Push the lease's expiry if it is still ``token``'s: False when it was lost (reclaimed)."""
    expires = utcnow() + timedelta(seconds=lease_s)
    return _RENEW_LEASE.rowcount(session, {"e_id": execution_id, "token": token, "expires": expires}) == 1


# Built once: every claim and heartbeat sends one (building it costs more CPU than sending it).
_TAKE_LEASE = Prepared(
    QUEUE.update()
    .where(QUEUE.c.id == bindparam("i_id"), QUEUE.c.lease_token.is_(None))
    .values(lease_token=bindparam("token"), lease_expires_at=bindparam("expires"), claimed_by=bindparam("by"))
)
_RENEW_LEASE = Prepared(
    QUEUE.update()
    .where(QUEUE.c.execution_id == bindparam("e_id"), QUEUE.c.lease_token == bindparam("token"))
    .values(lease_expires_at=bindparam("expires"))
)


def settle_lease(
    session: Session, execution_id: str, *, token: str, lease_s: float, advance_to: int | None = None
) -> dict[str, int] | None:
    """The persist's first statement: renew the lease if it is still ``token``'s, and read the execution's locks
    (``{asset_id: fencing token}``, for the fencing check) in the same round trip. With ``advance_to`` (a step
    succeeded and the worker chains into the next), also point the row at that step, due now, lease kept.

    Returns:
        The locks held, or None when the lease was lost (nothing was written).
    """
    now = utcnow()
    params: dict[str, Any] = {"e_id": execution_id, "token": token, "expires": now + timedelta(seconds=lease_s)}
    if advance_to is not None:
        params |= {"step": advance_to, "now": now}
    row = session.execute(_SETTLE[advance_to is not None], params).first()
    return None if row is None else parse_held_locks(row[0])


def settle_values(*, advance: bool) -> dict[str, Any]:
    """What ``settle_lease`` writes (bound as ``expires``, and ``step`` and ``now`` when it advances)."""
    values: dict[str, Any] = {"lease_expires_at": bindparam("expires")}
    if advance:
        values |= {"step_index": bindparam("step"), "available_at": bindparam("now"), "dispatched_at": bindparam("now")}
    return values


def held_locks_column() -> Any:
    """The execution ``e_id``'s locks as one string of "asset:token" pairs (string_agg / group_concat), for a
    ``RETURNING``: the fencing check's read, in the statement that settles the lease."""
    return (
        select(func.aggregate_strings(LOCKS.c.asset_id + ":" + cast(LOCKS.c.fencing_token, String), ","))
        .where(LOCKS.c.execution_id == bindparam("e_id"))
        .scalar_subquery()
    )


def parse_held_locks(value: str | None) -> dict[str, int]:
    """``held_locks_column``'s string as ``{asset_id: fencing token}``."""
    pairs = (pair.rpartition(":") for pair in (value or "").split(",") if pair)
    return {asset_id: int(fence) for asset_id, _, fence in pairs}


def _settle_statement(*, advance: bool) -> Any:
    return (
        QUEUE.update()
        .where(QUEUE.c.execution_id == bindparam("e_id"), QUEUE.c.lease_token == bindparam("token"))
        .values(settle_values(advance=advance))
        .returning(held_locks_column())
    )


# Built once (a step sends one of them): building them per call cost more CPU than the round trip.
_SETTLE = {False: _settle_statement(advance=False), True: _settle_statement(advance=True)}


def hand_back(session: Session, execution_id: str, *, token: str) -> None:
    """Give the lease back untouched (a shutdown, or a chain that stops) and have a worker take it."""
    message = _new_message()
    released = session.execute(
        QUEUE.update()
        .where(QUEUE.c.execution_id == execution_id, QUEUE.c.lease_token == token)
        .values(lease_token=None, lease_expires_at=None, claimed_by=None, **message)
    )
    if released.rowcount == 1:  # type: ignore[attr-defined]
        _leave(session, execution_id, message, 0.0)


def drop_lease(session: Session, item_id: str) -> None:
    """Clear the row's lease without announcing it (the caller parks the row or ends the execution)."""
    session.execute(
        QUEUE.update().where(QUEUE.c.id == item_id).values(lease_token=None, lease_expires_at=None, claimed_by=None)
    )


def release_worker_leases(session: Session, worker_id: str) -> int:
    """Expire the leases a stopping worker still holds, so the sweeper reclaims them at once."""
    result = session.execute(QUEUE.update().where(QUEUE.c.claimed_by == worker_id).values(lease_expires_at=utcnow()))
    return int(result.rowcount)  # type: ignore[attr-defined]


# -- moving and parking ------------------------------------------------------------------------------


def move_to_step(session: Session, execution_id: str, *, step_index: int, delay_s: float = 0.0) -> None:
    """Point the row at ``step_index``, due in ``delay_s``, give the lease back and announce it (after commit).
    A worker that chains into the next step moves the row with ``settle_lease`` instead, keeping the lease."""
    now = utcnow()
    values: dict[str, Any] = {
        "step_index": step_index,
        "available_at": now + timedelta(seconds=delay_s),
        "lease_token": None,
        "lease_expires_at": None,
        "claimed_by": None,
    }
    values |= _announce(session, execution_id, delay_s)
    session.execute(QUEUE.update().where(QUEUE.c.execution_id == execution_id).values(**values))


def retry_now(session: Session, execution_id: str) -> None:
    """A reclaimed step runs again at once: free its lease and announce it (after commit)."""
    session.execute(
        QUEUE.update()
        .where(QUEUE.c.execution_id == execution_id)
        .values(
            lease_token=None,
            lease_expires_at=None,
            claimed_by=None,
            available_at=utcnow(),
            **_announce(session, execution_id),
        )
    )


def hold_until(session: Session, item_id: str, until: datetime) -> None:
    """Keep the row from being taken before ``until`` (a level-3 step waiting for its gate)."""
    session.execute(QUEUE.update().where(QUEUE.c.id == item_id).values(available_at=until))


def release_now(session: Session, execution_id: str) -> None:
    """Make the row runnable at once and announce it (a gate opened, a lock's turn came)."""
    session.execute(
        QUEUE.update()
        .where(QUEUE.c.execution_id == execution_id)
        .values(available_at=utcnow(), **_announce(session, execution_id))
    )


def park_for_asset(session: Session, item_id: str, *, asset_id: str, until: datetime) -> datetime:
    """Put the row in ``asset_id``'s FIFO until ``until``; returns its place (the time it first queued)."""
    # COALESCE in the database, not the row we read: a duplicate message may have parked us meanwhile,
    # and a place in line, once given, is kept.
    since: datetime = session.execute(
        QUEUE.update()
        .where(QUEUE.c.id == item_id)
        .values(
            waiting_for_asset_id=asset_id,
            available_at=until,
            waiting_since=func.coalesce(QUEUE.c.waiting_since, utcnow()),
        )
        .returning(QUEUE.c.waiting_since)
    ).scalar_one()
    return since


def leave_line(session: Session, item_id: str) -> None:
    """The row got its locks: it waits for no asset any more."""
    session.execute(QUEUE.update().where(QUEUE.c.id == item_id).values(waiting_for_asset_id=None, waiting_since=None))


def first_in_line(
    session: Session, asset_id: str, *, before: datetime | None = None, other_than: str = ""
) -> str | None:
    """The execution waiting longest for ``asset_id`` (optionally: that queued before ``before``)."""
    query = select(QUEUE.c.execution_id).where(
        QUEUE.c.waiting_for_asset_id == asset_id, QUEUE.c.execution_id != other_than
    )
    if before is not None:
        query = query.where(QUEUE.c.waiting_since < before)
    found: str | None = session.execute(query.order_by(QUEUE.c.waiting_since, QUEUE.c.id).limit(1)).scalar()
    return found


# -- priority: which work a message is spent on (core/priority.py) -------------------------------------


@dataclass(frozen=True)
class Pick:
    """The row a message is spent on instead of its own, and the tokens the two rows exchange."""

    own: str  # the execution whose row the message named
    picked: str  # the execution claimed instead
    picked_message_id: str | None  # its message, still in the broker: the own row's from now on
    picked_dispatched_at: datetime | None


def pick(session: Session, execution_id: str, message_id: str | None) -> tuple[str, Pick | None]:
    """The execution a message is for, and a row to spend it on instead (core/priority.py), if any.

    The message is its row's by id (after a swap the payload names another execution); a message no row holds
    (a duplicate, a message for an inline run) is for the execution it names. It is spent elsewhere only when
    its row is free and due, and another free, due row sorts before it by more than ``pick_margin_s``. Rows in
    an asset's line are never picked (their turn is the line's).
    """
    if message_id is None or pick_margin_s() <= 0:  # OPSC_PRIORITY_STEP_S=0: priority off, the broker's FIFO
        return execution_id, None
    found = _PICK.first(session, {"p_message_id": message_id, "p_now": utcnow()})
    if found is None:
        return execution_id, None
    own, own_sort_at, free, best, best_sort_at, best_message_id, best_dispatched_at = found
    if not free or own_sort_at is None or best is None:
        return own, None
    if (own_sort_at - best_sort_at).total_seconds() <= pick_margin_s():
        return own, None
    return own, Pick(own, best, best_message_id, best_dispatched_at)


def swap_messages(session: Session, chosen: Pick, message_id: str) -> None:
    """The own row takes the picked row's message (it runs when that one arrives); the picked row, this one."""
    session.execute(
        _SWAP_OWN,
        {"s_id": chosen.own, "s_message_id": chosen.picked_message_id, "s_dispatched_at": chosen.picked_dispatched_at},
    )
    session.execute(_SWAP_OWN, {"s_id": chosen.picked, "s_message_id": message_id, "s_dispatched_at": utcnow()})


def _free(row: Any) -> Any:
    """The row is free and due, and not in an asset's line."""
    return and_(
        row.c.lease_token.is_(None), row.c.available_at <= bindparam("p_now"), row.c.waiting_for_asset_id.is_(None)
    )


def _pick() -> Prepared:
    """The message's own row and, when it is free and due, the free and due row sorting first before it: one
    read (it runs for every message a worker takes)."""
    own, best, other = QUEUE.alias("own"), QUEUE.alias("best"), QUEUE.alias("other")
    first_before = (
        select(other.c.execution_id)
        .where(other.c.sort_at < own.c.sort_at, other.c.execution_id != own.c.execution_id, _free(other))
        .order_by(other.c.sort_at)
        .limit(1)
        .correlate(own)
        .scalar_subquery()
    )
    joined = own.outerjoin(best, and_(_free(own), best.c.execution_id == first_before))
    return Prepared(
        select(
            own.c.execution_id,
            own.c.sort_at,
            _free(own).label("free"),
            best.c.execution_id,
            best.c.sort_at,
            best.c.message_id,
            best.c.dispatched_at,
        )
        .select_from(joined)
        .where(own.c.message_id == bindparam("p_message_id"))
    )


_PICK = _pick()
_SWAP_OWN = (
    QUEUE.update()
    .where(QUEUE.c.execution_id == bindparam("s_id"))
    .values(message_id=bindparam("s_message_id"), dispatched_at=bindparam("s_dispatched_at"))
)


# -- the sweeper's side ------------------------------------------------------------------------------


def due_redispatch(session: Session, *, older_than_s: float, ask_broker: bool = True) -> list[str]:
    """Queued work whose message is lost: name and announce a new message for each; returns their ids.

    Looks at free, due rows whose message is ``older_than_s`` old (oldest first, a batch per pass) and asks
    the broker about them (see the module docstring); ``ask_broker=False`` is the old rule: every such row
    is re-sent (bench/redispatch.py compares the two). A broker that cannot be asked leaves the rows for the
    next pass: re-sending into a broker that is away would only fail, or duplicate what it still holds.
    """
    now = utcnow()
    rows = session.execute(
        select(QUEUE.c.id, QUEUE.c.execution_id, QUEUE.c.message_id, QUEUE.c.dispatched_at)
        .where(
            QUEUE.c.lease_token.is_(None),
            QUEUE.c.available_at <= now,
            or_(QUEUE.c.dispatched_at.is_(None), QUEUE.c.dispatched_at < now - timedelta(seconds=older_than_s)),
        )
        .order_by(QUEUE.c.dispatched_at.asc().nulls_first(), QUEUE.c.id)
        .limit(BATCH)
        .with_for_update(skip_locked=True)
    ).all()
    asked = {row.message_id: row for row in rows if row.dispatched_at is not None and row.message_id is not None}
    held: set[str] | None = None
    if ask_broker and asked:
        try:
            held = held_messages(list(asked))
        except ServiceUnavailable as exc:
            log.warning("redispatch: %s; the rows wait for the next pass", exc)
            return []
    live = [] if held is None else [asked[m].id for m in held if m in asked]
    due = [row for row in rows if held is None or row.message_id not in held]
    if live:
        # Still in the broker (a backlog ahead of it): look again after another older_than_s.
        session.execute(QUEUE.update().where(QUEUE.c.id.in_(live)).values(dispatched_at=now))
    if due:
        session.execute(
            QUEUE.update()
            .where(QUEUE.c.id == bindparam("row_id"))
            .values(message_id=bindparam("new_message_id"), dispatched_at=bindparam("sent_at")),
            [
                {"row_id": row.id, "new_message_id": m["message_id"], "sent_at": m["dispatched_at"]}
                for row in due
                for m in [_announce(session, row.execution_id)]
            ],
        )
        metrics.REDISPATCHES.inc(len(due))
    return [row.execution_id for row in due]

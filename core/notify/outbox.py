"""The notification outbox: rows written in the transaction of the change that causes them.

``note`` runs inside a use case's or the engine's transaction (a submit that leaves plans waiting for approval,
an execution that enters the DLQ or ends) and only INSERTs: no network, so a step never waits on a receiver,
and a change that rolls back notifies nobody. ``core.transactions.session_scope`` sets ``written`` once the
transaction has committed, which wakes this process's delivery thread (core/notify/delivery.py); a worker
elsewhere finds the rows on its next pass.

Who gets what: a tenant channel (an admin's) gets the events it lists; a user's own channel (their opt-in)
gets ``finished`` of the executions they requested: every one, or (``only_when_asked``) only those they
submitted asking to be told (``executions.notify_on_finish``: ``submit --notify-on-finish``, the console's
"Notify me when it finishes").
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from sqlalchemy import exists, insert, select
from sqlmodel import Session

from db.clock import utcnow
from db.enums import NotificationStatus, NotifyEvent
from db.tables import Execution, Notification, NotificationChannel, new_id

# session.info key: this transaction wrote notifications (session_scope wakes the delivery thread after commit).
WRITTEN_KEY = "opsc.notifications_written"
written = threading.Event()

_CHANNELS = NotificationChannel.__table__  # type: ignore[attr-defined]
_EXECUTIONS = Execution.__table__  # type: ignore[attr-defined]
_INSERT = insert(Notification.__table__)  # type: ignore[attr-defined]


def tenant_has_channels(tenant_id: Any) -> Any:
    """A SQL expression: whether ``tenant_id`` (a column or a value) has any channel (to ride on another statement)."""
    return exists().where(_CHANNELS.c.tenant_id == tenant_id)


def has_own_channel(session: Session, *, tenant_id: str, user_id: str) -> bool:
    """Whether the user has an opt-in of their own in the tenant: somewhere to hear of their executions' ends."""
    query = select(_CHANNELS.c.id).where(_CHANNELS.c.tenant_id == tenant_id, _CHANNELS.c.owner_user_id == user_id)
    return session.execute(query.limit(1)).first() is not None


def note(
    session: Session,
    *,
    tenant_id: str,
    execution_ids: Sequence[str],
    event: NotifyEvent,
    status: str,
    actor: str | None,
) -> int:
    """Write one notification per execution and channel of ``tenant_id`` that wants ``event``; returns how many.

    One indexed SELECT when the tenant has no channel (the usual case on a busy worker), nothing else.
    """
    if not execution_ids:
        return 0
    channels = session.execute(
        select(_CHANNELS.c.id, _CHANNELS.c.events, _CHANNELS.c.owner_user_id, _CHANNELS.c.only_when_asked).where(
            _CHANNELS.c.tenant_id == tenant_id
        )
    ).all()
    if not channels:
        return 0
    requesters: dict[str, tuple[str, bool]] = {}
    if event is NotifyEvent.FINISHED and any(c.owner_user_id for c in channels):
        requesters = {
            row.id: (row.requested_by, bool(row.notify_on_finish))
            for row in session.execute(
                select(_EXECUTIONS.c.id, _EXECUTIONS.c.requested_by, _EXECUTIONS.c.notify_on_finish).where(
                    _EXECUTIONS.c.id.in_(list(execution_ids)), _EXECUTIONS.c.tenant_id == tenant_id
                )
            ).all()
        }
    now = utcnow()
    rows = [
        {
            "id": new_id(),
            "tenant_id": tenant_id,
            "channel_id": channel.id,
            "execution_id": execution_id,
            "event": event.value,
            "execution_status": status,
            "actor": (actor or "")[:128] or None,
            "status": NotificationStatus.PENDING.value,
            "attempts": 0,
            "next_attempt_at": now,
            "created_at": now,
        }
        for execution_id in execution_ids
        for channel in channels
        if _wants(channel, event, requesters.get(execution_id))
    ]
    if rows:
        session.execute(_INSERT, rows)
        session.info[WRITTEN_KEY] = True
    return len(rows)


def _wants(channel: Any, event: NotifyEvent, requested: tuple[str, bool] | None) -> bool:
    """Whether ``channel`` (a row: events, owner_user_id, only_when_asked) hears of ``event``; ``requested``:
    who requested the execution and whether they asked to be told of its end."""
    if channel.owner_user_id is not None:  # a user's opt-in: their own executions' ends, nothing else
        if event is not NotifyEvent.FINISHED or requested is None or requested[0] != channel.owner_user_id:
            return False
        return requested[1] or not channel.only_when_asked
    return event.value in channel.events.split(",")

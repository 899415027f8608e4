"""The audit trail: one ``execution_events`` row per change of state, written in the caller's transaction.

The trail is tamper-evident: each event carries ``hash`` = SHA-256 of its stored content and of the
previous event's hash in the same execution (``prev_hash``), so an edited, deleted or inserted event
breaks the chain (core/ops/audit_chain.py checks it). The chain has no key: it catches edits made behind the
application's back, not a forger who recomputes every later hash.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import insert, select
from sqlmodel import Session

from core.safety.masking import mask_data, mask_text
from db.clock import utcnow
from db.tables import Execution, ExecutionEvent

MAX_COMMENT = 2000  # characters of a human's comment or reason kept in the trail (approvals, cancels, DLQ)


def clean_comment(text: str | None) -> str | None:
    """A comment as the trail keeps it: stripped, capped at ``MAX_COMMENT``, None when empty."""
    return (text or "").strip()[:MAX_COMMENT] or None


_EVENTS = ExecutionEvent.__table__  # type: ignore[attr-defined]
_EXECUTIONS = Execution.__table__  # type: ignore[attr-defined]


def event_hash(
    prev_hash: str | None,
    *,
    execution_id: str,
    tenant_id: str,
    kind: str,
    from_status: str | None,
    to_status: str | None,
    step_index: int | None,
    actor: str | None,
    message: str,
    data_json: str,
    created_at: datetime,
) -> str:
    """SHA-256 (hex) of an event as stored, chained to ``prev_hash`` ("" for the first event).

    The encoding is a JSON array (null stays distinct from ""), ASCII-only so it does not depend on how
    a database hands text back; ``created_at`` in UTC to the microsecond, the precision both databases keep.
    """
    canonical = json.dumps(
        [
            prev_hash or "",
            execution_id,
            tenant_id,
            kind,
            from_status,
            to_status,
            step_index,
            actor,
            message,
            data_json,
            created_at.astimezone(UTC).isoformat(timespec="microseconds"),
        ],
        ensure_ascii=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode("ascii")).hexdigest()


def chain_head(session: Session, execution_id: str) -> str | None:
    """The hash of the execution's last event, after taking the execution's append lock.

    PostgreSQL: ``FOR NO KEY UPDATE`` on the execution row serialises appenders of one execution (the same
    lock an ``UPDATE`` of its status takes, so ``fsm.transition`` already holds it and adds no new lock
    order), yet does not block inserts that only reference the row by foreign key (``FOR KEY SHARE``).
    The head is read in a second statement on purpose: under READ COMMITTED only a statement started
    after the lock was granted sees the event the previous holder committed. SQLite needs no lock: every
    transaction starts with BEGIN IMMEDIATE (db/engine.py), so writers are already serial.
    """
    heads = _heads(session)
    if execution_id in heads:
        # Already locked and read in this transaction (a chained step writes 2-3 events in one): the lock
        # is held until commit, so nobody else appended meanwhile and the cached head is still the head.
        return heads[execution_id]
    if session.get_bind().dialect.name == "postgresql":
        session.execute(
            select(_EXECUTIONS.c.id).where(_EXECUTIONS.c.id == execution_id).with_for_update(key_share=True)
        )
    # ix_execution_events_execution (execution_id, id): one index probe from the end.
    head: str | None = session.execute(
        select(_EVENTS.c.hash).where(_EVENTS.c.execution_id == execution_id).order_by(_EVENTS.c.id.desc()).limit(1)
    ).scalar()
    return head


def _heads(session: Session) -> dict[str, str | None]:
    """The chain heads this session's *current* transaction has locked and written (reset per transaction)."""
    transaction = session.get_transaction()
    cached = session.info.get("opsc.chain_heads")
    if cached is None or cached[0] is not transaction:
        cached = (transaction, {})
        session.info["opsc.chain_heads"] = cached
    heads: dict[str, str | None] = cached[1]
    return heads


def record_event(
    session: Session,
    *,
    execution_id: str,
    tenant_id: str,
    kind: str,
    actor: str | None,
    message: str = "",
    from_status: str | None = None,
    to_status: str | None = None,
    step_index: int | None = None,
    data: dict[str, Any] | None = None,
) -> int:
    """Append an event to the execution's trail, in the caller's transaction (which decides to commit).

    The message and data pass the masker first: the trail never holds a secret value. The event is
    hashed as stored and chained to the execution's previous event.

    Returns:
        The new event's id.
    """
    masked = mask_text(message)
    data_json = json.dumps(mask_data(data or {}), sort_keys=True, default=str)
    created_at = utcnow()
    prev_hash = chain_head(session, execution_id)
    digest = event_hash(
        prev_hash,
        execution_id=execution_id,
        tenant_id=tenant_id,
        kind=kind,
        from_status=from_status,
        to_status=to_status,
        step_index=step_index,
        actor=actor,
        message=masked,
        data_json=data_json,
        created_at=created_at,
    )
    # A Core insert: the audit trail is written on every step, and no caller needs the ORM object back.
    result = session.execute(
        insert(_EVENTS)
        .values(
            execution_id=execution_id,
            tenant_id=tenant_id,
            kind=kind,
            actor=actor,
            message=masked,
            from_status=from_status,
            to_status=to_status,
            step_index=step_index,
            data_json=data_json,
            created_at=created_at,
            prev_hash=prev_hash,
            hash=digest,
        )
        .returning(_EVENTS.c.id)
    )
    _heads(session)[execution_id] = digest
    return int(result.scalar_one())

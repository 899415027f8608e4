"""The audit trail: one ``execution_events`` row per change of state, written in the caller's transaction.

The trail is tamper-evident: when the transaction commits, each event becomes a link of its tenant's keyed
audit chain (core/audit_links.py), so an edited, deleted or inserted event breaks the chain
(core/ops/audit_chain.py checks it), and nobody without the secret key material can recompute it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import insert
from sqlmodel import Session

from core import audit_links
from core.safety.masking import mask_data, mask_text
from db.clock import utcnow
from db.tables import ExecutionEvent

MAX_COMMENT = 2000  # characters of a human's comment or reason kept in the trail (approvals, cancels, DLQ)


def clean_comment(text: str | None) -> str | None:
    """A comment as the trail keeps it: stripped, capped at ``MAX_COMMENT``, None when empty."""
    return (text or "").strip()[:MAX_COMMENT] or None


_EVENTS = ExecutionEvent.__table__  # type: ignore[attr-defined]
# Built once: a statement object reused skips SQLAlchemy's construction and most of its cache-key work.
_INSERT = insert(_EVENTS).returning(_EVENTS.c.id)
_INSERT_IN_ORDER = insert(_EVENTS).returning(_EVENTS.c.id, sort_by_parameter_order=True)


def event_content(
    *,
    execution_id: str,
    kind: str,
    actor: str | None,
    message: str = "",
    from_status: str | None = None,
    to_status: str | None = None,
    step_index: int | None = None,
    data: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """An event's stored columns (all but the tenant and the link), message and data masked first."""
    return {
        "execution_id": execution_id,
        "kind": kind,
        "from_status": from_status,
        "to_status": to_status,
        "step_index": step_index,
        "actor": actor,
        "message": mask_text(message),
        "data_json": json.dumps(mask_data(data or {}), sort_keys=True, default=str),
        "created_at": utcnow(),
    }


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

    The message and data pass the masker first: the trail never holds a secret value. The event is linked
    into the tenant's audit chain when the transaction commits (core/audit_links.py).

    Returns:
        The new event's id.
    """
    content = event_content(
        execution_id=execution_id,
        kind=kind,
        actor=actor,
        message=message,
        from_status=from_status,
        to_status=to_status,
        step_index=step_index,
        data=data,
    )
    # A Core insert: the audit trail is written on every step, and no caller needs the ORM object back.
    result = session.execute(insert(_EVENTS).values(tenant_id=tenant_id, **content).returning(_EVENTS.c.id))
    event_id = int(result.scalar_one())
    audit_links.register(session, audit_links.EXECUTION, event_id, tenant_id, content)
    return event_id


def record_events(session: Session, tenant_id: str, contents: Sequence[dict[str, Any]]) -> list[int]:
    """Append several events of one tenant (``event_content`` each) in one INSERT, linked at commit in this order.

    Returns:
        Their ids, in the order given.
    """
    if not contents:
        return []
    # One multi-row INSERT (SQLAlchemy's "insertmanyvalues"). The chain links the events in the order given,
    # so each id must be matched to its row: PostgreSQL returns them in parameter order when asked to (an
    # ordered INSERT … SELECT); SQLite would be asked one row at a time, so there the ids are sorted instead:
    # it gives the rows of one INSERT ascending rowids in the order of its VALUES (it holds the write lock).
    # A mismatch could not pass unseen: the chain's HMACs cover each row's content (core/ops/audit_chain.py).
    rows = [{"tenant_id": tenant_id, **content} for content in contents]
    if session.get_bind().dialect.name == "postgresql":
        ids = [int(event_id) for event_id in session.execute(_INSERT_IN_ORDER, rows).scalars()]
    else:
        ids = sorted(int(event_id) for event_id in session.execute(_INSERT, rows).scalars())
    for event_id, content in zip(ids, contents, strict=True):
        audit_links.register(session, audit_links.EXECUTION, event_id, tenant_id, content)
    return ids

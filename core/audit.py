"""The audit trail: one ``execution_events`` row per change of state, written in the caller's transaction."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import insert
from sqlmodel import Session

from core.safety.masking import mask_data, mask_text
from db.clock import utcnow
from db.tables import ExecutionEvent


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
) -> None:
    """Append an event to the execution's trail, in the caller's transaction (which decides to commit).

    The message and data pass the masker first: the trail never holds a secret value.
    """
    # A Core insert: the audit trail is written on every step, and no caller needs the ORM object back.
    session.execute(
        insert(ExecutionEvent.__table__).values(  # type: ignore[attr-defined]
            execution_id=execution_id,
            tenant_id=tenant_id,
            kind=kind,
            actor=actor,
            message=mask_text(message),
            from_status=from_status,
            to_status=to_status,
            step_index=step_index,
            data_json=json.dumps(mask_data(data or {}), sort_keys=True, default=str),
            created_at=utcnow(),
        )
    )

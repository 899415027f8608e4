"""The audit trail: one ``execution_events`` row per change of state, written in the caller's transaction.

The trail is tamper-evident: when the transaction commits, each event becomes a link of its tenant's keyed
audit chain (core/audit_links.py), so an edited, deleted or inserted event breaks the chain
(core/ops/audit_chain.py checks it), and nobody without the secret key material can recompute it.
"""

from __future__ import annotations

import json
from typing import Any

from sqlmodel import Session

from core import audit_links
from core.safety.masking import mask_data, mask_text
from db.clock import utcnow

MAX_COMMENT = 2000  # characters of a human's comment or reason kept in the trail (approvals, cancels, DLQ)


def clean_comment(text: str | None) -> str | None:
    """A comment as the trail keeps it: stripped, capped at ``MAX_COMMENT``, None when empty."""
    return (text or "").strip()[:MAX_COMMENT] or None


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

    The message and data pass the masker first: the trail never holds a secret value. The event is written,
    linked into the tenant's audit chain, when the transaction commits (core/audit_links.py).
    """
    content: dict[str, Any] = {
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
    audit_links.append(session, audit_links.EXECUTION, tenant_id, content)

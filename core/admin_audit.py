"""The tenant's administration trail: every change an admin (or a user to their own account) makes to the
tenant's setup, with who and when. Secrets appear by name and version only; details pass the masker.

Execution events (core/audit.py) record what happened to work; this records what happened to the rules.
Both are links of the tenant's one audit chain (core/audit_links.py).
"""

from __future__ import annotations

import json
from typing import Any

from sqlmodel import Session, col, select

from core import audit_links
from core.errors import InvalidInput
from core.identity import rbac
from core.identity.permissions import Permission
from core.safety.masking import mask_data
from core.schemas import AdminEventView, Principal
from core.transactions import session_scope
from db.clock import utcnow
from db.tables import AdminEvent

MAX_PAGE = 500


def record_admin_event(
    session: Session, principal: Principal, action: str, subject: str = "", data: dict[str, Any] | None = None
) -> None:
    """Append to the tenant's trail in the caller's transaction (it commits with the change it records); the
    entry is linked into the tenant's audit chain at that commit (core/audit_links.py)."""
    content: dict[str, Any] = {
        "actor": principal.username,
        "action": action,
        "subject": subject[:256],
        "data_json": json.dumps(mask_data(data or {}), sort_keys=True, default=str),
        "created_at": utcnow(),
    }
    audit_links.append(session, audit_links.ADMIN, principal.tenant_id, content)


def list_admin_events(principal: Principal, *, limit: int = 100, before_id: int | None = None) -> list[AdminEventView]:
    """The tenant's trail, newest first (admin); ``before_id`` pages back."""
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidInput(f"must be between 1 and {MAX_PAGE}", path="limit")
    with session_scope() as session:
        rbac.require(session, principal, Permission.ADMIN)
        query = select(AdminEvent).where(AdminEvent.tenant_id == principal.tenant_id)
        if before_id is not None:
            query = query.where(col(AdminEvent.id) < before_id)
        rows = session.exec(query.order_by(col(AdminEvent.id).desc()).limit(limit)).all()
        return [
            AdminEventView(
                id=row.id or 0,
                actor=row.actor,
                action=row.action,
                subject=row.subject,
                data=json.loads(row.data_json),
                created_at=row.created_at,
            )
            for row in rows
        ]

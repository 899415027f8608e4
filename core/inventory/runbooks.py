"""The runbook library: named, validated plans saved per tenant for the console's Submit page."""

from __future__ import annotations

import re

from sqlmodel import Session, col, select

from core.admin_audit import record_admin_event
from core.errors import InvalidInput, NotFound
from core.identity import rbac
from core.identity.rbac import Permission
from core.plans import parse_plan
from core.schemas import Principal, RunbookView
from core.transactions import session_scope
from db.clock import utcnow
from db.tables import Runbook

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.-]{0,127}$")


def _view(row: Runbook) -> RunbookView:
    return RunbookView(
        name=row.name,
        description=row.description,
        plan_text=row.plan_text,
        updated_by=row.updated_by,
        updated_at=row.updated_at,
    )


def list_runbooks(principal: Principal) -> list[RunbookView]:
    """The tenant's runbooks by name."""
    with session_scope() as session:
        rbac.require(session, principal, Permission.READ)
        rows = session.exec(
            select(Runbook).where(Runbook.tenant_id == principal.tenant_id).order_by(col(Runbook.name))
        ).all()
        return [_view(r) for r in rows]


def save_runbook(principal: Principal, name: str, plan_text: str, *, description: str = "") -> RunbookView:
    """Create or replace a runbook (operators and above). The plan must validate.

    Raises:
        InvalidInput: a bad name, or the plan's own validation errors (path-precise).
    """
    name = name.strip()
    if not _NAME.match(name):
        raise InvalidInput("1-128 letters, digits, spaces, '_', '.', '-'", path="name")
    parse_plan(plan_text)
    with session_scope() as session:
        rbac.require(session, principal, Permission.SUBMIT)
        row = store_runbook(session, principal.tenant_id, name, plan_text, description, principal.username)
        record_admin_event(session, principal, "runbook_saved", name)
        return _view(row)


def store_runbook(
    session: Session, tenant_id: str, name: str, plan_text: str, description: str, actor: str | None
) -> Runbook:
    """Upsert a runbook row in the caller's transaction (no checks: callers validate)."""
    row = session.exec(select(Runbook).where(Runbook.tenant_id == tenant_id, Runbook.name == name)).first()
    if row is None:
        row = Runbook(tenant_id=tenant_id, name=name, plan_text=plan_text)
    row.plan_text = plan_text
    row.description = description[:512]
    row.updated_by = actor
    row.updated_at = utcnow()
    session.add(row)
    session.flush()
    return row


def delete_runbook(principal: Principal, name: str) -> None:
    """Remove a runbook (operators and above)."""
    with session_scope() as session:
        rbac.require(session, principal, Permission.SUBMIT)
        row = session.exec(
            select(Runbook).where(Runbook.tenant_id == principal.tenant_id, Runbook.name == name)
        ).first()
        if row is None:
            raise NotFound("runbook", name)
        session.delete(row)
        record_admin_event(session, principal, "runbook_deleted", name)

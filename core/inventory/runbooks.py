"""The runbook library: named, validated plans saved per tenant for the console's Submit page.

An admin may *publish* a runbook (DESIGN §13): the publication vouches for exactly its current text
(``published_hash`` = SHA-256 of ``plan_text``), and a submitted step equal to one of its steps is derived
``read`` (core/plans.py ``step_class``). Saving new text ends the publication; only an admin may overwrite
or delete a published runbook.
"""

from __future__ import annotations

import hashlib
import re

from sqlmodel import Session, col, select

from core.admin_audit import record_admin_event
from core.errors import Conflict, CoreError, InvalidInput, NotFound
from core.identity import rbac
from core.identity.rbac import Permission
from core.plans import parse_plan
from core.risk import step_key
from core.schemas import Principal, RunbookView
from core.transactions import session_scope
from db.clock import utcnow
from db.enums import ActionClass
from db.tables import Runbook

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.-]{0,127}$")


def text_hash(plan_text: str) -> str:
    """What a publication binds to: SHA-256 (hex) of the runbook's text."""
    return hashlib.sha256(plan_text.encode("utf-8")).hexdigest()


def is_published(row: Runbook) -> bool:
    """True while the publication still matches the text (an edit leaves the hash behind)."""
    return row.published_hash is not None and row.published_hash == text_hash(row.plan_text)


def _view(row: Runbook) -> RunbookView:
    return RunbookView(
        name=row.name,
        description=row.description,
        plan_text=row.plan_text,
        updated_by=row.updated_by,
        updated_at=row.updated_at,
        published=is_published(row),
        published_by=row.published_by,
        published_at=row.published_at,
        text_hash=text_hash(row.plan_text),
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
    """Create or replace a runbook (operators and above; a published one: admins only). The plan must validate.

    New text ends a publication: an admin publishes again to vouch for it.

    Raises:
        InvalidInput: a bad name, or the plan's own validation errors (path-precise).
        PermissionDenied: the runbook is published and the principal is not an admin.
    """
    name = name.strip()
    if not _NAME.match(name):
        raise InvalidInput("1-128 letters, digits, spaces, '_', '.', '-'", path="name")
    parse_plan(plan_text)
    with session_scope() as session:
        rbac.require(session, principal, Permission.SUBMIT)
        existing = _row(session, principal.tenant_id, name)
        if existing is not None and is_published(existing):
            rbac.require(session, principal, Permission.ADMIN)
        row = store_runbook(session, principal.tenant_id, name, plan_text, description, principal.username)
        record_admin_event(session, principal, "runbook_saved", name)
        return _view(row)


def store_runbook(
    session: Session, tenant_id: str, name: str, plan_text: str, description: str, actor: str | None
) -> Runbook:
    """Upsert a runbook row in the caller's transaction (no checks: callers validate)."""
    row = _row(session, tenant_id, name)
    if row is None:
        row = Runbook(tenant_id=tenant_id, name=name, plan_text=plan_text)
    if row.plan_text != plan_text:
        # The hash alone would already stop vouching; clearing it says so in the row as well
        # (published_by/at stay: who vouched for the previous text, and when).
        row.published_hash = None
    row.plan_text = plan_text
    row.description = description[:512]
    row.updated_by = actor
    row.updated_at = utcnow()
    session.add(row)
    session.flush()
    return row


def delete_runbook(principal: Principal, name: str) -> None:
    """Remove a runbook (operators and above; a published one: admins only)."""
    with session_scope() as session:
        rbac.require(session, principal, Permission.SUBMIT)
        row = _row(session, principal.tenant_id, name)
        if row is None:
            raise NotFound("runbook", name)
        if is_published(row):
            rbac.require(session, principal, Permission.ADMIN)
        session.delete(row)
        record_admin_event(session, principal, "runbook_deleted", name)


def publish_runbook(principal: Principal, name: str, *, reviewed_hash: str | None = None) -> RunbookView:
    """Vouch for a runbook's current text (admin): its steps, submitted as written, are then derived ``read``
    unless they ask for more or reference a secret. Publishing the same text again changes nothing.

    Args:
        reviewed_hash: the ``RunbookView.text_hash`` of the text the admin reviewed; when given, a runbook
            saved again since (by an operator, say) is not published unseen.

    Raises:
        NotFound: no such runbook. InvalidInput: its plan no longer validates. PermissionDenied: not an admin.
        Conflict: ``reviewed_hash`` is not the runbook's current text.
    """
    with session_scope() as session:
        rbac.require(session, principal, Permission.ADMIN)
        row = _row(session, principal.tenant_id, name)
        if row is None:
            raise NotFound("runbook", name)
        if reviewed_hash is not None and reviewed_hash != text_hash(row.plan_text):
            raise Conflict(f"runbook {name!r} changed since you read it; review it again before publishing")
        parse_plan(row.plan_text)
        if not is_published(row):
            mark_published(session, row, principal.username)
            record_admin_event(session, principal, "runbook_published", name, {"hash": row.published_hash})
        return _view(row)


def unpublish_runbook(principal: Principal, name: str) -> RunbookView:
    """Withdraw a publication (admin): the runbook's steps get their own classes again."""
    with session_scope() as session:
        rbac.require(session, principal, Permission.ADMIN)
        row = _row(session, principal.tenant_id, name)
        if row is None:
            raise NotFound("runbook", name)
        if row.published_hash is not None:
            row.published_hash = None
            session.add(row)
            session.flush()
            record_admin_event(session, principal, "runbook_unpublished", name)
        return _view(row)


def mark_published(session: Session, row: Runbook, actor: str) -> None:
    """Publish ``row``'s current text in the caller's transaction (no checks: callers authorise)."""
    row.published_hash = text_hash(row.plan_text)
    row.published_by = actor[:64]
    row.published_at = utcnow()
    session.add(row)
    session.flush()


def published_steps(session: Session, tenant_id: str) -> dict[str, ActionClass]:
    """``step_key`` → the class the runbook gives it, for every step of the tenant's published runbooks.

    A step in several published runbooks keeps the lowest class one of them vouches for. A published runbook
    whose text no longer validates (an action uninstalled) vouches for nothing.
    """
    rows = session.exec(
        select(Runbook).where(Runbook.tenant_id == tenant_id, col(Runbook.published_hash).is_not(None))
    ).all()
    steps: dict[str, ActionClass] = {}
    for row in rows:
        if not is_published(row):
            continue
        try:
            plan = parse_plan(row.plan_text)
        except CoreError:
            continue
        for step in plan.steps:
            key = step_key(step.spec.action, step.params)
            cls = step.spec.action_class or ActionClass.READ
            if key not in steps or cls.rank < steps[key].rank:
                steps[key] = cls
    return steps


def _row(session: Session, tenant_id: str, name: str) -> Runbook | None:
    return session.exec(select(Runbook).where(Runbook.tenant_id == tenant_id, Runbook.name == name)).first()

"""The runbook library's use cases: list (with the level the server derives), versions, save, delete, publish.

Runbooks are owned and versioned (issue 13 item 5): the user who creates one owns it; only its owner or a
tenant admin changes or deletes it, and a published one only an admin. Each change is a new version (the
history stays readable) and an entry of the admin trail. The level a runbook shows is the one a submit of
its text would derive now, under the tenant's declarations (core/inventory/trust.py), never what its
description claims.
"""

from __future__ import annotations

import re

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from core.admin_audit import record_admin_event
from core.errors import Conflict, CoreError, InvalidInput, NotFound, PermissionDenied
from core.identity import rbac
from core.identity.permissions import Permission
from core.inventory import runbooks
from core.inventory.trust import tenant_trust
from core.plans import parse_plan, reclassify
from core.risk import Trust
from core.schemas import Principal, RunbookVersionView, RunbookView
from core.transactions import session_scope
from db.settings import get_settings
from db.tables import Runbook

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.-]{0,127}$")


def list_runbooks(principal: Principal) -> list[RunbookView]:
    """The tenant's runbooks by name, each with the action class and approval level its steps derive."""
    with session_scope() as session:
        rbac.require(session, principal, Permission.READ)
        rows = session.exec(
            select(Runbook).where(Runbook.tenant_id == principal.tenant_id).order_by(col(Runbook.name))
        ).all()
        trust = tenant_trust(session, principal.tenant_id)
        return [_view(r, trust) for r in rows]


def list_runbook_versions(principal: Principal, name: str) -> list[RunbookVersionView]:
    """Every saved text of the runbook ``name``, newest first, with who saved it and when (any role).

    The history outlives a deletion: a deleted runbook's versions stay listed under its name.

    Raises:
        NotFound: the tenant never had a runbook of that name.
    """
    with session_scope() as session:
        rbac.require(session, principal, Permission.READ)
        found = runbooks.versions(session, principal.tenant_id, name)
        if not found:
            raise NotFound("runbook", name)
        return found


def save_runbook(principal: Principal, name: str, plan_text: str, *, description: str = "") -> RunbookView:
    """Create a runbook (operators and above: they own it) or change one (its owner or a tenant admin; a
    published one: admins only). The plan must validate. Each change is a new version in the admin trail;
    saving the same text and description again changes nothing.

    New text ends a publication: an admin publishes the new version to vouch for it.

    Raises:
        InvalidInput: a bad name, or the plan's own validation errors (path-precise).
        PermissionDenied: not the owner nor an admin, or the runbook is published and the principal is not an admin.
        Conflict: someone else saved it at the same moment (read it again, then save).
    """
    name = name.strip()
    if not _NAME.match(name):
        raise InvalidInput("1-128 letters, digits, spaces, '_', '.', '-'", path="name")
    settings = get_settings()
    # A runbook with inputs is a template: it validates with samples where no default is given (core/plan_inputs.py).
    parse_plan(plan_text, max_steps=settings.max_plan_steps, max_bytes=settings.max_plan_bytes, template=True)
    with session_scope() as session:
        rbac.require(session, principal, Permission.SUBMIT)
        existing = runbooks.find(session, principal.tenant_id, name)
        if existing is not None:
            _require_change(session, principal, existing, "change")
        was_published = existing is not None and runbooks.is_published(existing)
        try:
            row, changed = runbooks.store_runbook(
                session, principal.tenant_id, name, plan_text, description, principal.username, owner=principal.username
            )
        except IntegrityError as exc:
            raise Conflict(f"runbook {name!r} was saved by someone else at the same moment; read it again") from exc
        if changed:
            data = {
                "version": row.version,
                "hash": runbooks.text_hash(row.plan_text),
                "owner": row.owner,
                "created": existing is None,
                # Said in the trail: this change ended the publication (an admin must publish it again).
                "unpublished": was_published and not runbooks.is_published(row),
            }
            record_admin_event(session, principal, "runbook_saved", name, data)
        return _view(row, tenant_trust(session, principal.tenant_id))


def delete_runbook(principal: Principal, name: str) -> None:
    """Remove a runbook (its owner or a tenant admin; a published one: admins only). Its versions stay listed.

    Raises:
        NotFound: no such runbook. PermissionDenied: as for ``save_runbook``.
    """
    with session_scope() as session:
        rbac.require(session, principal, Permission.SUBMIT)
        row = runbooks.find(session, principal.tenant_id, name)
        if row is None:
            raise NotFound("runbook", name)
        _require_change(session, principal, row, "delete")
        data = {"version": row.version, "hash": runbooks.text_hash(row.plan_text), "owner": row.owner}
        session.delete(row)
        record_admin_event(session, principal, "runbook_deleted", name, data)


def publish_runbook(principal: Principal, name: str, *, reviewed_hash: str | None = None) -> RunbookView:
    """Vouch for a runbook's current version (admin): its steps, submitted as written, are then derived ``read``
    unless they ask for more or reference a secret. Publishing the same text again changes nothing.

    Args:
        reviewed_hash: the ``RunbookView.text_hash`` of the text the admin reviewed; when given, a runbook
            saved again since (by its owner, say) is not published unseen.

    Raises:
        NotFound: no such runbook. InvalidInput: its plan no longer validates. PermissionDenied: not an admin.
        Conflict: ``reviewed_hash`` is not the runbook's current text.
    """
    with session_scope() as session:
        rbac.require(session, principal, Permission.ADMIN)
        row = runbooks.find(session, principal.tenant_id, name)
        if row is None:
            raise NotFound("runbook", name)
        if reviewed_hash is not None and reviewed_hash != runbooks.text_hash(row.plan_text):
            raise Conflict(f"runbook {name!r} changed since you read it; review it again before publishing")
        parse_plan(row.plan_text, template=True)
        if not runbooks.is_published(row):
            runbooks.mark_published(session, row, principal.username)
            data = {"hash": row.published_hash, "version": row.version}
            record_admin_event(session, principal, "runbook_published", name, data)
        return _view(row, tenant_trust(session, principal.tenant_id))


def unpublish_runbook(principal: Principal, name: str) -> RunbookView:
    """Withdraw a publication (admin): the runbook's steps get their own classes again."""
    with session_scope() as session:
        rbac.require(session, principal, Permission.ADMIN)
        row = runbooks.find(session, principal.tenant_id, name)
        if row is None:
            raise NotFound("runbook", name)
        if row.published_hash is not None:
            row.published_hash = None
            session.add(row)
            session.flush()
            record_admin_event(session, principal, "runbook_unpublished", name, {"version": row.version})
        return _view(row, tenant_trust(session, principal.tenant_id))


def _require_change(session: Session, principal: Principal, row: Runbook, verb: str) -> None:
    """Only the owner or a tenant admin changes a runbook; only an admin a published one (its steps run as read)."""
    if runbooks.is_published(row):
        why = f"runbook {row.name!r} is published: only a tenant admin may {verb} it"
    elif row.owner is not None and row.owner == principal.username:
        return
    else:
        owner = f"belongs to {row.owner}" if row.owner else "has no owner"
        why = f"runbook {row.name!r} {owner}: only its owner or a tenant admin may {verb} it"
    try:
        rbac.require(session, principal, Permission.ADMIN)
    except PermissionDenied as exc:
        raise PermissionDenied(why) from exc


def _derived(plan_text: str, trust: Trust) -> tuple[str | None, int | None]:
    """What a submit of this text would derive now: (action class, approval level), or (None, None)."""
    try:
        plan = reclassify(parse_plan(plan_text, template=True), trust)
    except CoreError:
        return None, None
    return plan.action_class.value, plan.approval_level


def _view(row: Runbook, trust: Trust) -> RunbookView:
    action_class, level = _derived(row.plan_text, trust)
    return RunbookView(
        name=row.name,
        description=row.description,
        plan_text=row.plan_text,
        updated_by=row.updated_by,
        updated_at=row.updated_at,
        published=runbooks.is_published(row),
        published_by=row.published_by,
        published_at=row.published_at,
        text_hash=runbooks.text_hash(row.plan_text),
        owner=row.owner,
        version=row.version,
        action_class=action_class,
        approval_level=level,
    )

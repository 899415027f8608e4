"""Change windows, the use cases (DESIGN §14): read and set a tenant's rules, and override them for one execution.

Any member may read the rules (an operator needs to know when a change may run); only an admin sets them, and
every change is on the tenant's admin trail. An override lets one held execution start outside its windows: an
admin asks for it with a reason, and it counts once a *second* admin confirms it, who is neither the
execution's requester nor the first admin (four eyes; the requester rule is the approvals' own,
``approval_rules.refuse_own_request``). Both steps are on the admin trail and the execution's events.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import yaml
from sqlmodel import Session, select

from core.admin_audit import record_admin_event
from core.approval_rules import refuse_own_request
from core.audit import clean_comment, record_event
from core.change_window_store import save_rules, stored_rules
from core.change_windows import DEFAULT_MAX_WAIT_S, Rules, evaluate, parse_rules, rule_document
from core.engine import windows_gate
from core.errors import Conflict, InvalidInput, PermissionDenied
from core.fsm import TERMINAL
from core.identity import rbac
from core.identity.permissions import Permission
from core.schemas import ChangeWindowsView, Principal, WindowOverrideView
from core.transactions import session_scope
from core.usecases.approvals import lock_for_decision
from db.clock import utcnow
from db.enums import ActionClass, WindowMode
from db.enums import ExecutionStatus as S
from db.tables import ChangeWindowOverride, ChangeWindowSettings, Execution, User

MAX_DOCUMENT_BYTES = 64 * 1024


def get_change_windows(principal: Principal) -> ChangeWindowsView:
    """The tenant's change windows and whether an untagged asset may be changed now (any member)."""
    with session_scope() as session:
        rbac.require(session, principal, Permission.READ)
        return _view(session, principal)


def set_change_windows(principal: Principal, document: str | Mapping[str, Any]) -> ChangeWindowsView:
    """Replace the tenant's change windows (admin). ``document`` is YAML or JSON text, or a mapping, with
    ``windows``, ``blackouts``, ``mode`` (wait|refuse) and ``max_wait_s``; empty lists lift every restriction.

    Raises:
        InvalidInput: with each problem's path (``windows[0].start: must be HH:MM``).
    """
    rules = parse_rules(_document(document))
    with session_scope() as session:
        rbac.require(session, principal, Permission.ADMIN)
        save_rules(session, principal.tenant_id, rules, actor_id=principal.user_id)
        view = _view(session, principal)
        data = view.model_dump(mode="json", include={"mode", "max_wait_s", "windows", "blackouts"})
        record_admin_event(session, principal, "change_windows", principal.tenant, data)
        return view


def override_change_window(principal: Principal, execution_id: str, reason: str) -> WindowOverrideView:
    """Ask for, or confirm, an override of the change windows for one execution (admin, four eyes).

    The first admin's call records the request with its reason; a second admin's call confirms it, and a
    held execution starts at once.

    Raises:
        InvalidInput: no reason. NotFound: no such execution in this tenant. Conflict: it has ended, or the
            override is already confirmed. PermissionDenied: not an admin, the execution's requester, or the
            admin who asked for the override confirming it.
    """
    text = clean_comment(reason)
    if text is None:
        raise InvalidInput("required: why the change may not wait for its window", path="reason")
    with session_scope() as session:
        execution = lock_for_decision(session, principal.tenant_id, execution_id)
        rbac.require(session, principal, Permission.ADMIN)
        refuse_own_request(execution, principal.user_id, "override the change window of")
        if S(execution.status) in TERMINAL:
            raise Conflict(f"execution {execution_id} is {execution.status}: there is nothing to override")
        row = session.exec(
            select(ChangeWindowOverride).where(
                ChangeWindowOverride.execution_id == execution.id,
                ChangeWindowOverride.tenant_id == principal.tenant_id,
            )
        ).first()
        if row is None:
            row = ChangeWindowOverride(
                tenant_id=principal.tenant_id, execution_id=execution.id, requested_by=principal.user_id, reason=text
            )
            session.add(row)
            session.flush()
            kind, message = "window_override_requested", f"override requested: {text} (a second admin must confirm)"
        elif row.confirmed_at is not None:
            raise Conflict(f"the change window of execution {execution_id} is already overridden")
        elif row.requested_by == principal.user_id:
            raise PermissionDenied("the override needs a second admin: you asked for it")
        else:
            row.confirmed_by, row.confirmed_at = principal.user_id, utcnow()
            session.add(row)
            session.flush()
            windows_gate.wake(session, execution.id)
            kind, message = "window_overridden", f"change window overridden: {row.reason} (confirmed: {text})"
        record_event(
            session,
            execution_id=execution.id,
            tenant_id=execution.tenant_id,
            kind=kind,
            actor=principal.username,
            message=message,
        )
        record_admin_event(
            session, principal, kind, execution.id, {"reason": text, "confirmed": row.confirmed_at is not None}
        )
        return _override_view(session, row)


def list_window_overrides(principal: Principal) -> list[WindowOverrideView]:
    """The overrides asked for or given for the tenant's executions that have not ended (any member)."""
    with session_scope() as session:
        rbac.require(session, principal, Permission.READ)
        rows = session.exec(
            select(ChangeWindowOverride)
            .join(Execution, Execution.id == ChangeWindowOverride.execution_id)  # type: ignore[arg-type]
            .where(
                ChangeWindowOverride.tenant_id == principal.tenant_id,
                Execution.tenant_id == principal.tenant_id,
                Execution.status.not_in([s.value for s in TERMINAL]),  # type: ignore[attr-defined]
            )
            .order_by(ChangeWindowOverride.created_at)  # type: ignore[arg-type]
        ).all()
        return [_override_view(session, r) for r in rows]


def _document(document: str | Mapping[str, Any]) -> Mapping[str, Any]:
    if isinstance(document, Mapping):
        return document
    if len(document.encode()) > MAX_DOCUMENT_BYTES:
        raise InvalidInput(f"at most {MAX_DOCUMENT_BYTES} bytes")
    try:
        loaded = yaml.safe_load(document) if document.strip() else {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise InvalidInput(f"not valid YAML or JSON{where}") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, Mapping):
        raise InvalidInput("must be a mapping with windows, blackouts, mode and max_wait_s")
    return loaded


def _view(session: Session, principal: Principal) -> ChangeWindowsView:
    row = session.get(ChangeWindowSettings, principal.tenant_id)
    rules = stored_rules(session, principal.tenant_id) or Rules(mode=WindowMode.WAIT, max_wait_s=DEFAULT_MAX_WAIT_S)
    verdict = evaluate(rules, [frozenset()], ActionClass.MODIFY, utcnow())
    return ChangeWindowsView(
        tenant=principal.tenant,
        mode=rules.mode.value,
        max_wait_s=rules.max_wait_s,
        windows=[rule_document(r) for r in rules.windows],
        blackouts=[rule_document(r) for r in rules.blackouts],
        open_now=verdict.allowed,
        next_opening=verdict.opens_at,
        updated_at=row.updated_at if row is not None else None,
        updated_by=_username(session, row.updated_by) if row is not None else None,
    )


def _override_view(session: Session, row: ChangeWindowOverride) -> WindowOverrideView:
    return WindowOverrideView(
        execution_id=row.execution_id,
        requested_by=_username(session, row.requested_by),
        reason=row.reason,
        created_at=row.created_at,
        confirmed_by=_username(session, row.confirmed_by) if row.confirmed_by else None,
        confirmed_at=row.confirmed_at,
        active=row.confirmed_at is not None,
    )


def _username(session: Session, user_id: str) -> str:
    user = session.get(User, user_id)
    return user.username if user is not None else user_id

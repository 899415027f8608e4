"""Roles, scopes and permissions (DESIGN §9, §13) as rules over a membership row: pure.

Roles are ordered viewer < operator < approver < admin; each includes the rights before it. An operator may
be limited to a highest action class (``memberships.max_action_class``). A permission needs its token scope
(core/identity/scopes.py: a token's scopes limit its user's role) and then the role. core/identity/rbac.py
reads the current membership through a Session; the one-shot reader of ``show`` (core/reads/direct.py)
through a DB-API connection (issue 15); both judge with ``check_scope`` and ``check_role``, which count every
refusal in ``opsc_permission_denials``.
"""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING

from core.errors import PermissionDenied
from core.identity import scopes
from core.schemas import Principal
from db.enums import ActionClass, Role

if TYPE_CHECKING:
    from core.rows import MembershipRow


class Permission(StrEnum):
    READ = "read"
    SUBMIT = "submit"
    APPROVE = "approve"
    CANCEL_OWN = "cancel_own"
    ADMIN = "admin"


MIN_ROLE: dict[Permission, Role] = {
    Permission.READ: Role.VIEWER,
    Permission.SUBMIT: Role.OPERATOR,
    Permission.CANCEL_OWN: Role.OPERATOR,
    Permission.APPROVE: Role.APPROVER,
    Permission.ADMIN: Role.ADMIN,
}


# The token scope each permission needs (core/identity/scopes.py).
SCOPE_FOR: dict[Permission, str] = {
    Permission.READ: scopes.READ,
    Permission.SUBMIT: scopes.SUBMIT,
    Permission.CANCEL_OWN: scopes.SUBMIT,
    Permission.APPROVE: scopes.APPROVE,
    Permission.ADMIN: scopes.ADMIN,
}


def has_permission(role: Role | None, permission: Permission) -> bool:
    """True if ``role`` grants ``permission``."""
    return role is not None and role.rank >= MIN_ROLE[permission].rank


def may_run_class(role: Role | None, max_action_class: ActionClass | None, action_class: ActionClass) -> bool:
    """True if this role (and its optional class limit) may submit/run steps of ``action_class``."""
    if not has_permission(role, Permission.SUBMIT):
        return False
    if role is Role.ADMIN or max_action_class is None:
        return True
    return action_class.rank <= max_action_class.rank


def check_scope(principal: Principal, permission: Permission) -> None:
    """Raises PermissionDenied unless the principal's scopes include the one ``permission`` needs."""
    needed = SCOPE_FOR[permission]
    if needed not in scopes.effective(principal.scopes):
        _count_denial(permission)
        held = ", ".join(principal.scopes) or "none"
        raise PermissionDenied(
            f"this identity may not {permission.value.replace('_', ' ')}: it lacks the {needed} scope (has {held})"
        )


def check_role(principal: Principal, membership: MembershipRow | None, permission: Permission) -> Role:
    """The role ``membership`` holds (the principal's current one; None: removed) if it grants ``permission``.

    Raises:
        PermissionDenied: with the role held and the role needed.
    """
    role = Role(membership.role) if membership else None
    if role is None or not has_permission(role, permission):
        held = role.value if role else "no role"
        _count_denial(permission)
        raise PermissionDenied(
            f"{principal.username} ({held} in {principal.tenant}) may not {permission.value.replace('_', ' ')}; "
            f"needs {MIN_ROLE[permission].value}"
        )
    return role


def _count_denial(permission: Permission) -> None:
    # Imported on the first refusal: prometheus_client would cost the one-shot ``show`` a tenth of its CPU
    # (issue 15); every process that serves metrics has imported them already (the engine, jobs/).
    from core import metrics

    metrics.PERMISSION_DENIALS.labels(permission.value, "request").inc()

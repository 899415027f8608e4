"""Roles, scopes and permissions (DESIGN §9, §13). Every check re-reads the membership, so revocation is immediate.

Roles are ordered viewer < operator < approver < admin; each includes the rights before it.
An operator may be limited to a highest action class (``memberships.max_action_class``).
``require`` first verifies the principal itself (core/identity/principals.py: issued by core, credential
still valid), then the scope the permission needs (core/identity/scopes.py: a token's scopes limit its
user's role), then the role. A system administrator (``users.system_admin``) owns what no tenant does:
``require_system_admin``.
"""

from __future__ import annotations

from enum import StrEnum

from sqlalchemy import bindparam
from sqlmodel import Session, select

from core import metrics
from core.errors import PermissionDenied
from core.identity import scopes
from core.identity.principals import verify
from core.schemas import Principal
from db.enums import ActionClass, Role
from db.tables import Membership, User


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


def current_membership(session: Session, tenant_id: str, user_id: str) -> Membership | None:
    """The user's membership in the tenant as the database holds it now (None if removed or user disabled)."""
    return session.exec(_MEMBERSHIP, params={"tenant_id": tenant_id, "user_id": user_id}).first()


# Built once: every use case checks a permission (a statement object reused skips SQLAlchemy's construction).
_MEMBERSHIP = (
    select(Membership)
    .join(User, User.id == Membership.user_id)  # type: ignore[arg-type]
    .where(
        Membership.tenant_id == bindparam("tenant_id"),
        Membership.user_id == bindparam("user_id"),
        User.disabled == False,  # noqa: E712
    )
)


def require(session: Session, principal: Principal, permission: Permission) -> Role:
    """Check ``permission`` against the principal's *current* role; return that role.

    Raises:
        PermissionDenied: with the role held and the role needed.
    """
    return Role(require_member(session, principal, permission).role)


def require_member(session: Session, principal: Principal, permission: Permission) -> Membership:
    """``require``, returning the membership it read: a caller that also checks action classes
    (``check_class``) needs no second read of it in the same transaction.

    Raises:
        PermissionDenied: with the role held and the role needed.
    """
    verify(session, principal)
    needed = SCOPE_FOR[permission]
    if needed not in scopes.effective(principal.scopes):
        metrics.PERMISSION_DENIALS.labels(permission.value, "request").inc()
        held = ", ".join(principal.scopes) or "none"
        raise PermissionDenied(
            f"this identity may not {permission.value.replace('_', ' ')}: it lacks the {needed} scope (has {held})"
        )
    membership = current_membership(session, principal.tenant_id, principal.user_id)
    role = Role(membership.role) if membership else None
    if membership is None or not has_permission(role, permission):
        held = role.value if role else "no role"
        metrics.PERMISSION_DENIALS.labels(permission.value, "request").inc()
        raise PermissionDenied(
            f"{principal.username} ({held} in {principal.tenant}) may not {permission.value.replace('_', ' ')}; "
            f"needs {MIN_ROLE[permission].value}"
        )
    return membership


def require_class(session: Session, principal: Principal, action_class: ActionClass) -> None:
    """Check the principal may run steps of ``action_class`` in this tenant, right now.

    Raises:
        PermissionDenied: naming the class and the principal's limit.
    """
    verify(session, principal)
    check_class(principal, current_membership(session, principal.tenant_id, principal.user_id), action_class)


def check_class(principal: Principal, membership: Membership | None, action_class: ActionClass) -> None:
    """``require_class`` on a membership read (and the principal verified) in the caller's transaction.

    Raises:
        PermissionDenied: naming the class and the principal's limit.
    """
    role = Role(membership.role) if membership else None
    limit = ActionClass(membership.max_action_class) if membership and membership.max_action_class else None
    if not may_run_class(role, limit, action_class):
        why = f"limited to {limit.value}" if limit else f"role {role.value if role else 'none'}"
        metrics.PERMISSION_DENIALS.labels(f"run_{action_class.value}", "request").inc()
        raise PermissionDenied(
            f"{principal.username} may not run {action_class.value} actions in {principal.tenant} ({why})"
        )


def is_system_admin(session: Session, principal: Principal) -> bool:
    """True if the (verified) principal's user is a system administrator right now."""
    user = verify(session, principal)
    return user.system_admin


def require_system_admin(session: Session, principal: Principal, what: str) -> None:
    """Check the principal is a system administrator with the ``admin`` scope (global settings, DESIGN §13).

    Raises:
        PermissionDenied: naming ``what`` was refused.
    """
    require(session, principal, Permission.ADMIN)
    if not is_system_admin(session, principal):
        metrics.PERMISSION_DENIALS.labels("system_admin", "request").inc()
        raise PermissionDenied(f"{principal.username} may not {what}: that needs a system administrator")

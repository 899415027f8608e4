"""Permission checks against the database (DESIGN §9, §13). Every check re-reads the membership, so revocation
is immediate; the rules themselves (roles, scopes, class limits) are core/identity/permissions.py's.

``require`` first verifies the principal itself (core/identity/principals.py: issued by core, credential
still valid), then the scope the permission needs (core/identity/scopes.py: a token's scopes limit its
user's role), then the role. A system administrator (``users.system_admin``) owns what no tenant does:
``require_system_admin``.
"""

from __future__ import annotations

from sqlalchemy import bindparam
from sqlmodel import Session, select

from core import metrics
from core.errors import PermissionDenied
from core.identity.permissions import Permission, check_role, check_scope, may_run_class
from core.identity.principals import verify
from core.schemas import Principal
from db.enums import ActionClass, Role
from db.tables import Membership, User


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
    check_scope(principal, permission)
    membership = current_membership(session, principal.tenant_id, principal.user_id)
    check_role(principal, membership, permission)
    assert membership is not None  # check_role refuses a missing membership
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

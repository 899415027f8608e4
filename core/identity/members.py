"""Users and their roles per tenant (the admin's directory), and who owns a user (DESIGN §13).

Usernames are global, but tenants own their people: a tenant admin may give a role to a new name, or to
a user with no role anywhere, or change roles inside their tenant; never reach a user who also belongs to
another tenant. That is a system administrator's (``require_owned``).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from sqlmodel import Session, select

from core.errors import InvalidInput, NotFound, PermissionDenied
from core.identity import rbac
from core.schemas import MemberView
from db.enums import ActionClass, Role
from db.tables import Membership, User

if TYPE_CHECKING:
    from core.schemas import Principal

_USERNAME = re.compile(r"^[a-z][a-z0-9_.-]{0,63}$")


def ensure_user(session: Session, username: str, *, display_name: str = "") -> User:
    """The user called ``username``, created if absent.

    Raises:
        InvalidInput: the name is not 1-64 lowercase letters, digits, '_', '.', '-' starting with a letter.
    """
    if not _USERNAME.match(username):
        raise InvalidInput(
            "usernames are lowercase letters, digits, '_', '.', '-', starting with a letter", path="username"
        )
    user = session.exec(select(User).where(User.username == username)).first()
    if user is None:
        user = User(username=username, display_name=display_name or username)
        session.add(user)
        session.flush()
    return user


def set_membership(
    session: Session, tenant_id: str, user: User, role: Role, *, max_action_class: ActionClass | None = None
) -> Membership:
    """Give ``user`` the ``role`` in the tenant (replacing any previous role)."""
    row = session.get(Membership, (tenant_id, user.id))
    if row is None:
        row = Membership(tenant_id=tenant_id, user_id=user.id, role=role.value)
    row.role = role.value
    row.max_action_class = max_action_class.value if max_action_class else None
    session.add(row)
    session.flush()
    return row


def remove_membership(session: Session, tenant_id: str, username: str) -> None:
    """Take away the user's role in the tenant. Raises NotFound."""
    row = session.exec(
        select(Membership)
        .join(User, User.id == Membership.user_id)  # type: ignore[arg-type]
        .where(Membership.tenant_id == tenant_id, User.username == username)
    ).first()
    if row is None:
        raise NotFound("member", username)
    session.delete(row)
    session.flush()


def list_members(session: Session, tenant_id: str) -> list[MemberView]:
    """Every member of the tenant with their role, by username."""
    rows = session.exec(
        select(User, Membership)
        .join(Membership, Membership.user_id == User.id)  # type: ignore[arg-type]
        .where(Membership.tenant_id == tenant_id)
        .order_by(User.username)
    ).all()
    return [
        MemberView(
            username=u.username,
            display_name=u.display_name,
            role=m.role,
            max_action_class=m.max_action_class,
            disabled=u.disabled,
        )
        for u, m in rows
    ]


def belongs_elsewhere(session: Session, user_id: str, tenant_id: str) -> bool:
    """True if the user has a role in any tenant other than ``tenant_id``."""
    other = session.exec(
        select(Membership.tenant_id).where(Membership.user_id == user_id, Membership.tenant_id != tenant_id)
    ).first()
    return other is not None


def require_owned(session: Session, principal: Principal, user: User, verb: str) -> None:
    """Refuse to let a tenant admin change a user who also belongs to another tenant (a system admin may).

    Raises:
        PermissionDenied: "<user> also belongs to another tenant: only a system administrator may <verb> them".
    """
    if belongs_elsewhere(session, user.id, principal.tenant_id) and not rbac.is_system_admin(session, principal):
        raise PermissionDenied(
            f"{user.username} also belongs to another tenant: only a system administrator may {verb} them"
        )


def claim_user(session: Session, principal: Principal, username: str) -> User:
    """The user ``username`` for a role in the principal's tenant: new, or one this tenant may take.

    Raises:
        PermissionDenied: the name belongs to another tenant (and the principal is not a system administrator).
        InvalidInput: a malformed name.
    """
    existing = session.exec(select(User).where(User.username == username)).first()
    if (
        existing is not None
        and belongs_elsewhere(session, existing.id, principal.tenant_id)
        and not rbac.is_system_admin(session, principal)
    ):
        raise PermissionDenied(f"the name {username} belongs to another tenant; choose another username")
    return ensure_user(session, username)

"""Identity: who is acting, resolved from the database (user + tenant + current role)."""

from __future__ import annotations

from sqlmodel import Session, select

from core.errors import InvalidInput, NotFound
from core.schemas import Principal
from core.transactions import session_scope
from db.enums import ActionClass, Role
from db.tables import Execution, Membership, Tenant, User


def resolve_principal(session: Session, username: str, tenant: str | None = None) -> Principal:
    """The principal for ``username`` in ``tenant`` (by name). Without a tenant, the user's only one.

    Raises:
        NotFound: unknown or disabled user, or no role in that tenant (indistinguishable on purpose).
        InvalidInput: no tenant given and the user belongs to several.
    """
    user = session.exec(select(User).where(User.username == username, User.disabled == False)).first()  # noqa: E712
    if user is None:
        raise NotFound("user", username)
    query = (
        select(Membership, Tenant)
        .join(Tenant, Tenant.id == Membership.tenant_id)  # type: ignore[arg-type]
        .where(Membership.user_id == user.id)
    )
    if tenant is not None:
        query = query.where(Tenant.name == tenant)
    rows = session.exec(query.order_by(Tenant.name)).all()
    if not rows:
        if tenant is not None:
            raise NotFound("tenant membership", f"{username}@{tenant}")
        raise NotFound("tenant membership", username)
    if len(rows) > 1:
        names = ", ".join(t.name for _m, t in rows)
        raise InvalidInput(f"{username} belongs to several tenants ({names}); name one with --tenant", path="tenant")
    membership, tenant_row = rows[0]
    return _principal(user, membership, tenant_row)


def principal_for_execution(session: Session, username: str, execution_id: str) -> Principal:
    """The principal of ``username`` in the tenant that owns ``execution_id``.

    Only the user's own tenants are searched, so an id from another tenant is simply not found.
    """
    user = session.exec(select(User).where(User.username == username, User.disabled == False)).first()  # noqa: E712
    if user is None:
        raise NotFound("user", username)
    row = session.exec(
        select(Membership, Tenant)
        .join(Tenant, Tenant.id == Membership.tenant_id)  # type: ignore[arg-type]
        .join(Execution, Execution.tenant_id == Membership.tenant_id)  # type: ignore[arg-type]
        .where(Membership.user_id == user.id, Execution.id == execution_id)
    ).first()
    if row is None:
        raise NotFound("execution", execution_id)
    return _principal(user, row[0], row[1])


def _principal(user: User, membership: Membership, tenant: Tenant) -> Principal:
    return Principal(
        tenant_id=tenant.id,
        tenant=tenant.name,
        user_id=user.id,
        username=user.username,
        role=Role(membership.role),
        max_action_class=ActionClass(membership.max_action_class) if membership.max_action_class else None,
    )


def principal(username: str, tenant: str | None = None) -> Principal:
    """Resolve a principal in its own transaction (see ``resolve_principal``)."""
    with session_scope() as session:
        return resolve_principal(session, username, tenant)


def principal_for(username: str, execution_id: str) -> Principal:
    """Resolve the principal acting on ``execution_id`` (see ``principal_for_execution``)."""
    with session_scope() as session:
        return principal_for_execution(session, username, execution_id)

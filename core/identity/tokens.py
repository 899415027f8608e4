"""API tokens (DESIGN §13): how the CLI and scripts prove who they are.

A token belongs to one user in one tenant and carries scopes (core/identity/scopes.py). Its value
(``opsc_`` + 32 random bytes, URL-safe) is returned once, by ``create_token``, and never stored: the
database keeps its SHA-256 (a lookup key; the value has 256 bits of entropy, so a slow hash adds nothing)
and its first characters, to tell tokens apart in lists. A token expires, can be revoked, records when it
was last used (at most one write a minute), and stops working when its user's password changes or the
user is disabled (core/identity/principals.py ``verify``, on every call).

Who may create one: a user for themself, with no more scopes than the principal creating it has, and
(when created with a token) expiring no later than that token, so a leaked read-only token cannot mint a
stronger or longer-lived one. An admin of the tenant for a user of that tenant who belongs to no other
tenant (a service account), without the ``approve`` scope: approvals are a person's decision, and an admin
holding an approver's token could approve their own request. Creation and revocation are in the tenant's
administration trail.
"""

from __future__ import annotations

import secrets
from datetime import timedelta

from sqlmodel import Session, col, select

from core.admin_audit import record_admin_event
from core.errors import InvalidInput, NotFound, PermissionDenied
from core.identity import members, rbac
from core.identity import scopes as scope_rules
from core.identity.permissions import Permission, has_permission
from core.identity.token_rules import VALUE_PREFIX, last_use_due, lookup_hash, token_hash, token_principal
from core.schemas import Principal, TokenView
from core.transactions import session_scope
from db.clock import utcnow
from db.enums import Role
from db.tables import ApiToken, Membership, Tenant, User

PREFIX_CHARS = 12  # "opsc_" and 7 random characters: enough to tell tokens apart, far too few to guess with
MAX_EXPIRES_S = 366 * 24 * 3600
_NAME_MAX = 64


def mint(
    session: Session,
    user: User,
    tenant: Tenant,
    *,
    name: str,
    token_scopes: tuple[str, ...],
    expires_in_s: int,
    created_by: str,
) -> tuple[ApiToken, str]:
    """Store a new token for ``user`` in ``tenant``; return the row and the value (the only time it exists)."""
    name = name.strip()
    if not name or len(name) > _NAME_MAX:
        raise InvalidInput(f"token names are 1-{_NAME_MAX} characters", path="name")
    if not 0 < expires_in_s <= MAX_EXPIRES_S:
        raise InvalidInput(f"must be between 1 second and {MAX_EXPIRES_S // 86400} days", path="expires_in_s")
    value = VALUE_PREFIX + secrets.token_urlsafe(32)
    now = utcnow()
    row = ApiToken(
        token_hash=token_hash(value),
        prefix=value[:PREFIX_CHARS],
        user_id=user.id,
        tenant_id=tenant.id,
        name=name,
        scopes=",".join(token_scopes),
        created_by=created_by,
        created_at=now,
        expires_at=now + timedelta(seconds=expires_in_s),
    )
    session.add(row)
    session.flush()
    return row, value


def _view(row: ApiToken, username: str, tenant: str) -> TokenView:
    return TokenView(
        id=row.id,
        name=row.name,
        username=username,
        tenant=tenant,
        scopes=[s for s in row.scopes.split(",") if s],
        prefix=row.prefix,
        created_by=row.created_by,
        created_at=row.created_at,
        expires_at=row.expires_at,
        revoked_at=row.revoked_at,
        last_used_at=row.last_used_at,
    )


def create_token(
    principal: Principal,
    *,
    name: str,
    scopes: str | tuple[str, ...] | list[str],
    expires_in_s: int,
    for_user: str | None = None,
) -> tuple[TokenView, str]:
    """Create an API token; returns its view and its value, which is shown this once and never again.

    Args:
        scopes: ``"read,submit"`` or a list; see the module docstring for what each allows.
        for_user: a service account of this tenant (admin only); default: the principal themself.

    Raises:
        PermissionDenied: more scopes than the creator has; for another user without being admin, for a
            user of another tenant too, or with the approve scope.
        InvalidInput: bad name, scopes or expiry. NotFound: ``for_user`` is not a member of this tenant.
    """
    wanted = scope_rules.parse(scopes)
    with session_scope() as session:
        if for_user is None or for_user == principal.username:
            rbac.require(session, principal, Permission.READ)
            missing = set(wanted) - scope_rules.effective(principal.scopes)
            if missing:
                raise PermissionDenied(f"you cannot give a token scopes you do not hold: {', '.join(sorted(missing))}")
            user = session.get(User, principal.user_id)
        else:
            rbac.require(session, principal, Permission.ADMIN)
            if scope_rules.APPROVE in scope_rules.effective(wanted):
                raise PermissionDenied(
                    "a token for another user may not have the approve or admin scope: approvals are a person's"
                )
            user = session.exec(
                select(User)
                .join(Membership, Membership.user_id == User.id)  # type: ignore[arg-type]
                .where(User.username == for_user, Membership.tenant_id == principal.tenant_id)
            ).first()
            if user is None:
                raise NotFound("user", for_user)
            members.require_owned(session, principal, user, "create a token for")
        tenant = session.get(Tenant, principal.tenant_id)
        if user is None or tenant is None:
            raise NotFound("user", principal.username)
        expires_in_s = _capped_expiry(session, principal, expires_in_s)
        row, value = mint(
            session,
            user,
            tenant,
            name=name,
            token_scopes=wanted,
            expires_in_s=expires_in_s,
            created_by=principal.username,
        )
        record_admin_event(
            session,
            principal,
            "token_created",
            f"{user.username}/{row.name}",
            {"id": row.id, "scopes": list(wanted), "expires_at": row.expires_at.isoformat(), "prefix": row.prefix},
        )
        return _view(row, user.username, tenant.name), value


def _capped_expiry(session: Session, principal: Principal, expires_in_s: int) -> int:
    """A token made with a token expires no later than it (a leaked token cannot renew itself)."""
    if principal.token_id is None:
        return expires_in_s
    parent = session.get(ApiToken, principal.token_id)
    if parent is None:
        return expires_in_s
    left_s = int((parent.expires_at - utcnow()).total_seconds())
    return max(1, min(expires_in_s, left_s))


def list_tokens(principal: Principal) -> list[TokenView]:
    """Your tokens in this tenant (an admin: every token of the tenant), newest first; never their values."""
    with session_scope() as session:
        role = rbac.require(session, principal, Permission.READ)
        query = (
            select(ApiToken, User.username)
            .join(User, User.id == ApiToken.user_id)  # type: ignore[arg-type]
            .where(ApiToken.tenant_id == principal.tenant_id)
        )
        if not _acts_as_admin(role, principal):
            query = query.where(ApiToken.user_id == principal.user_id)
        rows = session.exec(query.order_by(col(ApiToken.created_at).desc())).all()
        return [_view(row, username, principal.tenant) for row, username in rows]


def revoke_token(principal: Principal, token_id: str) -> TokenView:
    """Revoke a token at once (yours; an admin: any of the tenant's). Revoking twice is a no-op.

    Raises:
        NotFound: no such token in this tenant (or not yours, for a non-admin).
    """
    with session_scope() as session:
        role = rbac.require(session, principal, Permission.READ)
        row = session.exec(
            select(ApiToken).where(
                (ApiToken.id == token_id) | (ApiToken.prefix == token_id), ApiToken.tenant_id == principal.tenant_id
            )
        ).first()
        if row is None:
            raise NotFound("token", token_id)
        if row.user_id != principal.user_id:
            if not _acts_as_admin(role, principal):
                raise NotFound("token", token_id)
            rbac.require(session, principal, Permission.ADMIN)
        owner = session.get(User, row.user_id)
        if row.revoked_at is None:
            row.revoked_at = utcnow()
            session.add(row)
            record_admin_event(session, principal, "token_revoked", f"{owner.username if owner else '?'}/{row.name}",
                               {"id": row.id})  # fmt: skip
        return _view(row, owner.username if owner else "?", principal.tenant)


def _acts_as_admin(role: Role, principal: Principal) -> bool:
    return has_permission(role, Permission.ADMIN) and scope_rules.ADMIN in scope_rules.effective(principal.scopes)


def principal_from_token(value: str) -> Principal:
    """The principal an API token value stands for (its user, tenant and scopes); records its use.

    Raises:
        PermissionDenied: unknown, revoked or expired token; issued before the user's password changed;
            disabled user or no longer a member of the token's tenant (core/identity/token_rules.py).
    """
    digest = lookup_hash(value)
    with session_scope() as session:
        row = session.exec(select(ApiToken).where(ApiToken.token_hash == digest)).first()
        user = session.get(User, row.user_id) if row is not None else None
        membership = session.get(Membership, (row.tenant_id, row.user_id)) if row is not None else None
        tenant = session.get(Tenant, row.tenant_id) if row is not None else None
        now = utcnow()
        who = token_principal(row, user, membership, tenant, now)
        if row is not None and last_use_due(row, now):
            row.last_used_at = now
            session.add(row)
        return who

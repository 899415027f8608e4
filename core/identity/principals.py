"""Identity: who is acting, and the only places where a Principal that use cases accept is made.

**Why a hand-built Principal is refused.** ``Principal`` is a plain DTO anyone can construct, so every
issuer here seals it: ``proof`` is an HMAC-SHA256, under a key drawn at random when this process first
imports core, over every other field. ``verify`` (called by ``rbac.require``, i.e. by every use case)
recomputes it; a Principal built by hand, made with ``model_construct``, or copied with a changed field
(another user, role, tenant, scope, token) fails. An HMAC rather than a registry of issued objects: it
costs no memory, survives ``model_copy`` without a field change and Streamlit's session state, and needs
no clean-up. The key never leaves the process, so a Principal is not a credential to send elsewhere
(jobs carry ids; each process proves identity itself). This stops forgery through the API; it is not a
sandbox: code running in the same process can read the key, as it can read the database URL.

Issuers (each sets ``auth``): password sign-in (core/usecases/accounts.py ``authenticate``: ``password``),
API tokens (core/identity/tokens.py: ``token``), the console's single sign-on mapping (``sso_principal``:
``sso``), and claimed names (``principal``, ``principal_for``: ``claimed``), which only an installation
initialised as a demo or single-operator box accepts (core/identity/installation.py).

``verify`` also refuses, on every call: a disabled user; a password or token credential presented before the
user's ``credentials_changed_at`` (a password change signs out older sessions and tokens); a token since
revoked or expired.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from datetime import datetime

from sqlmodel import Session, select

from core.errors import InvalidInput, NotFound, PermissionDenied
from core.identity.installation import IDENTITY_HINT, claimed_identity_allowed
from core.identity.scopes import ALL_SCOPES
from core.schemas import Principal
from core.transactions import session_scope
from db.clock import utcnow
from db.enums import ActionClass, Role
from db.tables import ApiToken, Execution, Membership, Tenant, User

PASSWORD = "password"  # noqa: S105  (the name of an authentication method)
TOKEN = "token"  # noqa: S105
SSO = "sso"
CLAIMED = "claimed"
AUTH_METHODS = frozenset({PASSWORD, TOKEN, SSO, CLAIMED})

_KEY = secrets.token_bytes(32)


def _seal_of(principal: Principal) -> str:
    body = json.dumps(principal.model_dump(mode="json", exclude={"proof"}), sort_keys=True, separators=(",", ":"))
    return hmac.new(_KEY, body.encode(), hashlib.sha256).hexdigest()


def issue(
    user: User,
    membership: Membership,
    tenant: Tenant,
    *,
    auth: str,
    scopes: tuple[str, ...] = ALL_SCOPES,
    authenticated_at: datetime | None = None,
    token_id: str | None = None,
) -> Principal:
    """A sealed Principal (for core's issuers only: never exported)."""
    if auth not in AUTH_METHODS:
        raise ValueError(f"unknown authentication method {auth!r}")
    unsealed = Principal(
        tenant_id=tenant.id,
        tenant=tenant.name,
        user_id=user.id,
        username=user.username,
        role=Role(membership.role),
        max_action_class=ActionClass(membership.max_action_class) if membership.max_action_class else None,
        auth=auth,
        scopes=tuple(sorted(scopes)),
        authenticated_at=authenticated_at or utcnow(),
        token_id=token_id,
    )
    return unsealed.model_copy(update={"proof": _seal_of(unsealed)})


def is_genuine(principal: Principal) -> bool:
    """True if one of core's issuers made ``principal`` in this process and nothing in it changed since."""
    return bool(principal.proof) and hmac.compare_digest(principal.proof, _seal_of(principal))


def verify(session: Session, principal: Principal) -> User:
    """Check that ``principal`` is genuine and its credential still holds; return the user row.

    Raises:
        PermissionDenied: forged, disabled user, credential older than the last credential change,
            token revoked or expired.
    """
    if not isinstance(principal, Principal) or not is_genuine(principal):
        raise PermissionDenied(f"this identity was not issued by OpsConductor; {IDENTITY_HINT}")
    user = session.get(User, principal.user_id)
    if user is None or user.disabled:
        raise PermissionDenied(f"{principal.username} is disabled or no longer exists")
    changed = user.credentials_changed_at
    presented = principal.authenticated_at
    if principal.auth != CLAIMED and changed is not None and (presented is None or presented < changed):
        what = "this API token was issued" if principal.auth == TOKEN else "you signed in"
        raise PermissionDenied(f"{what} before {principal.username}'s password changed; sign in again")
    if principal.auth == TOKEN or principal.token_id is not None:
        token = session.get(ApiToken, principal.token_id) if principal.token_id else None
        if token is None or token.user_id != user.id or token.revoked_at is not None:
            raise PermissionDenied("this API token was revoked")
        if token.expires_at <= utcnow():
            raise PermissionDenied("this API token has expired")
    return user


def find_membership(session: Session, username: str, tenant: str | None = None) -> tuple[User, Membership, Tenant]:
    """The enabled user called ``username`` and their membership in ``tenant`` (or their only one).

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
    return user, membership, tenant_row


def resolve_principal(session: Session, username: str, tenant: str | None = None, *, auth: str) -> Principal:
    """The principal for ``username`` in ``tenant``, issued for ``auth`` (the caller verified the credential)."""
    user, membership, tenant_row = find_membership(session, username, tenant)
    return issue(user, membership, tenant_row, auth=auth)


def _require_claimed_identity(session: Session) -> None:
    if not claimed_identity_allowed(session):
        raise PermissionDenied(f"claimed names are accepted only on a demo box; {IDENTITY_HINT}")


def principal(username: str, tenant: str | None = None) -> Principal:
    """The principal of a *claimed* name (``--as``): only on a demo / single-operator installation.

    Raises:
        PermissionDenied: this installation does not accept claimed names (use an API token).
        NotFound / InvalidInput: as ``find_membership``.
    """
    with session_scope() as session:
        _require_claimed_identity(session)
        return resolve_principal(session, username, tenant, auth=CLAIMED)


def principal_for(username: str, execution_id: str) -> Principal:
    """The claimed principal of ``username`` in the tenant that owns ``execution_id`` (demo boxes only).

    Only the user's own tenants are searched, so an id from another tenant is simply not found.
    Raises as ``principal``, and NotFound for an execution outside the user's tenants.
    """
    with session_scope() as session:
        _require_claimed_identity(session)
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
        return issue(user, row[0], row[1], auth=CLAIMED)


def sso_principal(username: str, tenant: str | None = None) -> Principal:
    """The principal of the local user an identity provider signed in (the console's ``st.login`` glue).

    The console calls it only with the name from the provider's verified claims; core cannot check those
    itself, so this is the console's word (README Security model). Raises as ``find_membership``.
    """
    with session_scope() as session:
        return resolve_principal(session, username, tenant, auth=SSO)


def session_valid(principal: Principal) -> bool:
    """True while ``principal``'s sign-in holds: issued by core, user enabled, no password change since,
    token (if any) neither revoked nor expired. A changed role is not a reason: every call re-reads it.

    Cheap (one or two primary-key reads); the console calls it on every rerun.
    """
    with session_scope() as session:
        try:
            verify(session, principal)
        except PermissionDenied:
            return False
        return True

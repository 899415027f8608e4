"""Identity: who is acting, and the only places where a Principal that use cases accept is made.

A Principal is sealed by its issuer and checked on every call; how, and the rules that decide whether it
still holds, are in core/identity/proofs.py (pure, shared with the one-shot reader of ``show``). This module
reads the rows for them through a Session.

Issuers (each sets ``auth``): password sign-in (core/usecases/accounts.py ``authenticate``: ``password``),
API tokens (core/identity/tokens.py: ``token``), the console's single sign-on mapping (``sso_principal``:
``sso``), and claimed names (``principal``, ``principal_for``: ``claimed``), which only an installation
initialised as a demo or single-operator box accepts (core/identity/installation.py).

``verify`` also refuses, on every call: a disabled user; a password or token credential presented before the
user's ``credentials_changed_at`` (a password change signs out older sessions and tokens); a token since
revoked or expired.
"""

from __future__ import annotations

from sqlmodel import Session, select

from core.errors import PermissionDenied
from core.identity.installation import claimed_identity_allowed
from core.identity.proofs import (
    CLAIMED,
    SSO,
    check_credentials,
    enabled_user,
    issue,
    owning_membership,
    require_claims_accepted,
    require_genuine,
    sole_membership,
)
from core.schemas import Principal
from core.transactions import session_scope
from db.clock import utcnow
from db.tables import ApiToken, Membership, Tenant, User


def verify(session: Session, principal: Principal) -> User:
    """Check that ``principal`` is genuine and its credential still holds; return the user row.

    Raises:
        PermissionDenied: forged, disabled user, credential older than the last credential change,
            token revoked or expired.
    """
    require_genuine(principal)
    user = session.get(User, principal.user_id)
    token = session.get(ApiToken, principal.token_id) if principal.token_id else None
    return check_credentials(principal, user, token, utcnow())


def find_membership(session: Session, username: str, tenant: str | None = None) -> tuple[User, Membership, Tenant]:
    """The enabled user called ``username`` and their membership in ``tenant`` (or their only one).

    Raises:
        NotFound: unknown or disabled user, or no role in that tenant (indistinguishable on purpose).
        InvalidInput: no tenant given and the user belongs to several.
    """
    user = enabled_user(username, session.exec(select(User).where(User.username == username)).first())
    query = (
        select(Membership, Tenant)
        .join(Tenant, Tenant.id == Membership.tenant_id)  # type: ignore[arg-type]
        .where(Membership.user_id == user.id)
    )
    if tenant is not None:
        query = query.where(Tenant.name == tenant)
    membership, tenant_row = sole_membership(username, tenant, session.exec(query.order_by(Tenant.name)).all())
    return user, membership, tenant_row


def resolve_principal(session: Session, username: str, tenant: str | None = None, *, auth: str) -> Principal:
    """The principal for ``username`` in ``tenant``, issued for ``auth`` (the caller verified the credential)."""
    user, membership, tenant_row = find_membership(session, username, tenant)
    return issue(user, membership, tenant_row, auth=auth)


def principal(username: str, tenant: str | None = None) -> Principal:
    """The principal of a *claimed* name (``--as``): only on a demo / single-operator installation.

    Raises:
        PermissionDenied: this installation does not accept claimed names (use an API token).
        NotFound / InvalidInput: as ``find_membership``.
    """
    with session_scope() as session:
        require_claims_accepted(claimed_identity_allowed(session))
        return resolve_principal(session, username, tenant, auth=CLAIMED)


def principal_for(username: str, execution_id: str) -> Principal:
    """The claimed principal of ``username`` in the tenant that owns ``execution_id`` (demo boxes only).

    ``execution_id`` may be a unique prefix of at least 6 characters (core/reads/execution_ids.py). Only the
    user's own tenants are searched, so an id from another tenant is simply not found.
    Raises as ``principal``, NotFound for an execution outside the user's tenants, and InvalidInput for a
    prefix too short or matching several of the user's executions.
    """
    # Here, not at the top: execution_ids reaches rbac, which imports this module.
    from core.reads.execution_ids import candidates, normalized, only_one

    with session_scope() as session:
        require_claims_accepted(claimed_identity_allowed(session))
        prefix = normalized(execution_id)
        user = enabled_user(username, session.exec(select(User).where(User.username == username)).first())
        tenant_ids = session.exec(select(Membership.tenant_id).where(Membership.user_id == user.id)).all()
        found = candidates(session, tenant_ids, prefix) if tenant_ids else []
        owner = only_one(execution_id, found).tenant_id if found else None
        row = None
        if owner is not None:
            row = session.exec(
                select(Membership, Tenant)
                .join(Tenant, Tenant.id == Membership.tenant_id)  # type: ignore[arg-type]
                .where(Membership.user_id == user.id, Membership.tenant_id == owner)
            ).first()
        membership, tenant_row = owning_membership(execution_id, row)
        return issue(user, membership, tenant_row, auth=CLAIMED)


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

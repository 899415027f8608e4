"""How a Principal is sealed, and the rules that decide whether one (or a claimed name) holds: pure, over rows.

**Why a hand-built Principal is refused.** ``Principal`` is a plain DTO anyone can construct, so every
issuer seals it: ``proof`` is an HMAC-SHA256, under a key drawn at random when this process first imports
this module, over every other field. ``require_genuine`` recomputes it; a Principal built by hand, made with
``model_construct``, or copied with a changed field (another user, role, tenant, scope, token) fails. An
HMAC rather than a registry of issued objects: it costs no memory, survives ``model_copy`` without a field
change and Streamlit's session state, and needs no clean-up. The key never leaves the process, so a
Principal is not a credential to send elsewhere (jobs carry ids; each process proves identity itself). This
stops forgery through the API; it is not a sandbox: code running in the same process can read the key, as it
can read the database URL.

The checks take the rows a source read (core/rows.py): the ORM's (core/identity/principals.py, tokens.py,
rbac.py) or the one-shot reader's (core/reads/direct.py, issue 15), so both refuse the same things with the
same words. Must not import SQLAlchemy, SQLModel or the tables.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, TypeVar

from core.errors import InvalidInput, NotFound, PermissionDenied
from core.identity.scopes import ALL_SCOPES
from core.schemas import Principal
from db.clock import utcnow
from db.enums import ActionClass, Role

if TYPE_CHECKING:
    from core.rows import MembershipRow, TenantRow, TokenRow, UserRow

PASSWORD = "password"  # noqa: S105  (the name of an authentication method)
TOKEN = "token"  # noqa: S105
SSO = "sso"
CLAIMED = "claimed"
AUTH_METHODS = frozenset({PASSWORD, TOKEN, SSO, CLAIMED})

# What someone without a proven identity reads: one line, pointing at the way in.
IDENTITY_HINT = "set OPSC_TOKEN or --token-file; see README Security model"

_KEY = secrets.token_bytes(32)

U = TypeVar("U", bound="UserRow")
M = TypeVar("M", bound="MembershipRow")
T = TypeVar("T", bound="TenantRow")


def _seal_of(principal: Principal) -> str:
    body = json.dumps(principal.model_dump(mode="json", exclude={"proof"}), sort_keys=True, separators=(",", ":"))
    return hmac.new(_KEY, body.encode(), hashlib.sha256).hexdigest()


def issue(
    user: UserRow,
    membership: MembershipRow,
    tenant: TenantRow,
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


def require_genuine(principal: Principal) -> None:
    """Raises PermissionDenied unless core issued ``principal`` in this process (see the module docstring)."""
    if not isinstance(principal, Principal) or not is_genuine(principal):
        raise PermissionDenied(f"this identity was not issued by OpsConductor; {IDENTITY_HINT}")


def check_credentials(principal: Principal, user: U | None, token: TokenRow | None, now: datetime) -> U:
    """Whether a genuine principal's credential still holds, given its user row and (if any) its token row.

    Refuses: a disabled or deleted user; a password or token credential presented before the user's
    ``credentials_changed_at`` (a password change signs out older sessions and tokens); a token since revoked
    or expired. Returns the user row.

    Raises:
        PermissionDenied: naming which of those it was.
    """
    if user is None or user.disabled:
        raise PermissionDenied(f"{principal.username} is disabled or no longer exists")
    changed = user.credentials_changed_at
    presented = principal.authenticated_at
    if principal.auth != CLAIMED and changed is not None and (presented is None or presented < changed):
        what = "this API token was issued" if principal.auth == TOKEN else "you signed in"
        raise PermissionDenied(f"{what} before {principal.username}'s password changed; sign in again")
    if principal.auth == TOKEN or principal.token_id is not None:
        if token is None or token.user_id != user.id or token.revoked_at is not None:
            raise PermissionDenied("this API token was revoked")
        if token.expires_at <= now:
            raise PermissionDenied("this API token has expired")
    return user


def require_claims_accepted(accepted: bool) -> None:
    """Raises PermissionDenied unless this installation accepts claimed names (a demo / single-operator box)."""
    if not accepted:
        raise PermissionDenied(f"claimed names are accepted only on a demo box; {IDENTITY_HINT}")


def enabled_user(username: str, user: U | None) -> U:
    """The user row called ``username`` if it exists and is enabled. Raises NotFound (the same for both)."""
    if user is None or user.disabled:
        raise NotFound("user", username)
    return user


def sole_membership(username: str, tenant: str | None, rows: Sequence[tuple[M, T]]) -> tuple[M, T]:
    """The user's one membership among ``rows`` (theirs, in ``tenant`` if named, ordered by tenant name).

    Raises:
        NotFound: none (no role in that tenant, or in any). InvalidInput: several and no tenant named.
    """
    if not rows:
        if tenant is not None:
            raise NotFound("tenant membership", f"{username}@{tenant}")
        raise NotFound("tenant membership", username)
    if len(rows) > 1:
        names = ", ".join(t.name for _m, t in rows)
        raise InvalidInput(f"{username} belongs to several tenants ({names}); name one with --tenant", path="tenant")
    return rows[0]


def owning_membership(execution_id: str, row: tuple[M, T] | None) -> tuple[M, T]:
    """The user's membership in the tenant that owns ``execution_id``, if they have one there.

    Raises:
        NotFound: as for an execution that does not exist, so another tenant's id tells nothing.
    """
    if row is None:
        raise NotFound("execution", execution_id)
    return row

"""What an API token value stands for, decided over its rows (DESIGN §13): pure, like core/identity/proofs.py.

A value is ``opsc_`` + 32 random bytes (URL-safe); the database keeps its SHA-256, the lookup key. A token
holds while it is neither revoked nor expired, was created after its user's last password change, and its
user is enabled and still a member of its tenant. Its last use is written at most once a minute
(``last_use_due``). core/identity/tokens.py reads the rows through a Session; the one-shot reader of ``show``
(core/reads/direct.py) through a DB-API connection (issue 15).
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import TYPE_CHECKING

from core.errors import PermissionDenied
from core.identity import scopes as scope_rules
from core.identity.proofs import TOKEN, issue
from core.schemas import Principal

if TYPE_CHECKING:
    from core.rows import MembershipRow, TenantRow, TokenRow, UserRow

VALUE_PREFIX = "opsc_"
LAST_USED_EVERY_S = 60


def token_hash(value: str) -> str:
    """The stored form of a token value: SHA-256, hex."""
    return hashlib.sha256(value.encode()).hexdigest()


def lookup_hash(value: str) -> str:
    """The hash to look ``value`` up by (surrounding whitespace ignored).

    Raises:
        PermissionDenied: not an OpsConductor token at all.
    """
    value = value.strip()
    if not value.startswith(VALUE_PREFIX):
        raise PermissionDenied("this is not an OpsConductor API token")
    return token_hash(value)


def token_principal(
    row: TokenRow | None,
    user: UserRow | None,
    membership: MembershipRow | None,
    tenant: TenantRow | None,
    now: datetime,
) -> Principal:
    """The principal of the token ``row`` (None: no token has that hash), with its user, membership and tenant.

    Raises:
        PermissionDenied: unknown, revoked or expired token; issued before the user's password changed;
            disabled user or no longer a member of the token's tenant.
    """
    if row is None:
        raise PermissionDenied("unknown API token")
    if row.revoked_at is not None:
        raise PermissionDenied("this API token was revoked")
    if row.expires_at <= now:
        raise PermissionDenied("this API token has expired")
    if user is None or user.disabled:
        raise PermissionDenied("the user of this API token is disabled")
    if user.credentials_changed_at is not None and row.created_at < user.credentials_changed_at:
        raise PermissionDenied("this API token was issued before its user's password changed")
    if membership is None or tenant is None:
        raise PermissionDenied("the user of this API token no longer has a role in its tenant")
    return issue(
        user,
        membership,
        tenant,
        auth=TOKEN,
        scopes=scope_rules.parse(row.scopes),
        authenticated_at=row.created_at,
        token_id=row.id,
    )


def last_use_due(row: TokenRow, now: datetime) -> bool:
    """True when the token's last use should be written now (never yet, or not in the last minute)."""
    return row.last_used_at is None or (now - row.last_used_at).total_seconds() >= LAST_USED_EVERY_S

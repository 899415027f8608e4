"""Execution ids as people type them: the whole id, or a unique prefix of at least 6 characters (issue 16 item 6).

The console shows ids shortened to 8 characters; the CLI and deep links accept any prefix of at least
``MIN_PREFIX`` hex characters that names exactly one execution. Only the tenants the caller belongs to are
searched, so a prefix never matches, counts or names another tenant's execution: "not found" and "ambiguous"
are answers about the caller's own executions only.
"""

from __future__ import annotations

import string
from collections.abc import Collection, Sequence

from sqlmodel import Session, col, select

from core.errors import InvalidInput, NotFound
from core.identity import rbac
from core.identity.permissions import Permission
from core.schemas import Principal
from core.transactions import session_scope
from db.tables import Execution

MIN_PREFIX = 6
FULL_LENGTH = 32
MAX_CANDIDATES = 10
_HEX = frozenset(string.hexdigits.lower())


def normalized(ref: str) -> str:
    """``ref`` stripped and lower-cased, checked for shape.

    Raises:
        NotFound: not hex, or longer than an id (so it names nothing, as before prefixes).
        InvalidInput: hex but shorter than ``MIN_PREFIX``.
    """
    value = ref.strip().lower()
    if not value or len(value) > FULL_LENGTH or not set(value) <= _HEX:
        raise NotFound("execution", ref)
    if len(value) < MIN_PREFIX:
        raise InvalidInput(f"give at least {MIN_PREFIX} characters of the execution id", path="id")
    return value


def candidates(session: Session, tenant_ids: Collection[str], prefix: str) -> list[Execution]:
    """The executions of ``tenant_ids`` whose id starts with ``prefix`` (at most ``MAX_CANDIDATES`` + 1)."""
    if len(prefix) == FULL_LENGTH:
        where = [col(Execution.id) == prefix]
    else:
        # A range on the primary key (an index seek on both databases; LIKE needs a pattern-ops index on
        # PostgreSQL): hex ids sort between the prefix and the prefix followed by 'g'.
        where = [col(Execution.id) >= prefix, col(Execution.id) < prefix + "g"]
    rows = session.exec(
        select(Execution)
        .where(col(Execution.tenant_id).in_(sorted(tenant_ids)), *where)
        .order_by(col(Execution.id))
        .limit(MAX_CANDIDATES + 1)
    ).all()
    return [r for r in rows if r.id.startswith(prefix)]


def only_one(ref: str, rows: Sequence[Execution]) -> Execution:
    """The one execution ``ref`` names among ``rows``.

    Raises:
        NotFound: none. InvalidInput: several, listed (id, name, status) so the caller can pick.
    """
    if not rows:
        raise NotFound("execution", ref)
    if len(rows) > 1:
        shown = "; ".join(f"{r.id} {r.name} ({r.status})" for r in rows[:MAX_CANDIDATES])
        more = " and more" if len(rows) > MAX_CANDIDATES else ""
        raise InvalidInput(f"{ref!r} matches several executions: {shown}{more}; give more characters", path="id")
    return rows[0]


def resolve_execution_id(principal: Principal, ref: str) -> str:
    """The full id of the principal's tenant's execution that ``ref`` (an id or a prefix of >= 6) names.

    Raises:
        NotFound: no execution of the tenant starts with ``ref`` (another tenant's never counts).
        InvalidInput: fewer than 6 characters, or several executions match (they are listed).
        PermissionDenied: the principal may not read the tenant's executions.
    """
    prefix = normalized(ref)
    with session_scope() as session:
        rbac.require(session, principal, Permission.READ)
        return only_one(ref, candidates(session, [principal.tenant_id], prefix)).id

"""API token scopes (DESIGN §13): what a token may do on top of its user's role.

``read`` < ``submit`` (submit, cancel and requeue your own work, keep runbooks); ``approve`` (approve and
reject, open step gates); ``admin`` (everything an admin role allows). Every scope includes ``read``, and
``admin`` includes them all: a token that may act may see what it acts on. The role still decides: a scope
never grants what the role does not.
"""

from __future__ import annotations

from collections.abc import Iterable

from core.errors import InvalidInput

READ = "read"
SUBMIT = "submit"
APPROVE = "approve"
ADMIN = "admin"
SCOPES: tuple[str, ...] = (READ, SUBMIT, APPROVE, ADMIN)
ALL_SCOPES: tuple[str, ...] = tuple(sorted(SCOPES))

_IMPLIES: dict[str, frozenset[str]] = {
    READ: frozenset({READ}),
    SUBMIT: frozenset({READ, SUBMIT}),
    APPROVE: frozenset({READ, APPROVE}),
    ADMIN: frozenset(SCOPES),
}


def effective(scopes: Iterable[str]) -> frozenset[str]:
    """Every scope that ``scopes`` grant, implied ones included."""
    granted: set[str] = set()
    for scope in scopes:
        granted |= _IMPLIES.get(scope, frozenset())
    return frozenset(granted)


def parse(scopes: str | Iterable[str]) -> tuple[str, ...]:
    """Scopes from ``"read,submit"`` (or a list), validated, sorted, without duplicates.

    Raises:
        InvalidInput: empty, or a name that is not a scope (path ``scopes``).
    """
    items = scopes.split(",") if isinstance(scopes, str) else list(scopes)
    names = {item.strip().lower() for item in items if item.strip()}
    unknown = sorted(names - set(SCOPES))
    if unknown:
        raise InvalidInput(f"unknown scope {', '.join(unknown)}; choose from {', '.join(SCOPES)}", path="scopes")
    if not names:
        raise InvalidInput(f"name at least one scope: {', '.join(SCOPES)}", path="scopes")
    return tuple(sorted(names))

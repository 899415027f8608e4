"""Facts about the installation as a whole: whether claimed names are accepted (a demo or single-operator box).

A claimed name (``--as USER``, ``principal(name, tenant)``) proves nothing, so it is accepted only where the
operator said so at ``init`` (``--demo`` or ``--single-operator``); ``check`` reports that as NO-GO for
production (DESIGN §13).
"""

from __future__ import annotations

from sqlmodel import Session

from db.tables import Installation


def claimed_identity_allowed(session: Session) -> bool:
    """True if this installation accepts claimed names (no row yet: it does not)."""
    row = session.get(Installation, 1)
    return bool(row and row.claimed_identity)


def set_claimed_identity(session: Session, allowed: bool) -> None:
    """Turn claimed names on (a demo / single-operator box) or off (production)."""
    row = session.get(Installation, 1) or Installation(id=1)
    row.claimed_identity = allowed
    session.add(row)
    session.flush()

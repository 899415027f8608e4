"""A tenant's webhook signing secret: drawn at random, stored encrypted like the secret store's values
(Fernet under ``OPSC_SECRET_KEY``), shown to an admin only when it is made or rotated."""

from __future__ import annotations

import secrets

from sqlmodel import Session

from core.safety.secret_store import fernet
from db.clock import utcnow
from db.tables import NotificationKey


def signing_secret(session: Session, tenant_id: str) -> str | None:
    """The tenant's signing secret, or None when it has none yet."""
    row = session.get(NotificationKey, tenant_id)
    return None if row is None else fernet().decrypt(row.ciphertext.encode()).decode()


def new_signing_secret(session: Session, tenant_id: str, *, actor_id: str) -> str:
    """Draw a new signing secret for the tenant (replacing any), store it encrypted; returns it (show it once)."""
    value = "whsec_" + secrets.token_urlsafe(32)
    token = fernet().encrypt(value.encode()).decode()
    row = session.get(NotificationKey, tenant_id)
    if row is None:
        row = NotificationKey(tenant_id=tenant_id, ciphertext=token, updated_by=actor_id)
    else:
        row.ciphertext, row.updated_at, row.updated_by = token, utcnow(), actor_id
    session.add(row)
    session.flush()
    return value

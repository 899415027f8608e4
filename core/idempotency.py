"""Idempotent submission: the same plan by the same person in the same tenant yields one execution.

The key is SHA-256 over (tenant, actor, canonical plan), or the caller's own key. The database enforces
at most one *active* execution per (tenant, key) with a partial unique index (``idempotency_active``), so
two racing submits are settled by the database: the loser reads the winner. An execution stops being
active when it ends ``failed|cancelled|rejected|expired|timeout`` (core/fsm.py clears the flag), or when it
completed longer ago than the window (cleared here, lazily, when a new submit collides with it).
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection
from datetime import timedelta

from sqlalchemy import update
from sqlmodel import Session, col, select

from core.errors import InvalidInput
from db.clock import utcnow
from db.enums import ExecutionStatus
from db.tables import Execution

MAX_KEY_LENGTH = 128


def derive_key(tenant_id: str, user_id: str, plan_hash: str) -> str:
    """The default key: SHA-256 over tenant, actor and the canonical plan's hash."""
    return hashlib.sha256(f"{tenant_id}\x00{user_id}\x00{plan_hash}".encode()).hexdigest()


def check_caller_key(key: str) -> str:
    """Validate a caller-given key. Raises InvalidInput."""
    key = key.strip()
    if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
        raise InvalidInput(f"1-{MAX_KEY_LENGTH} printable characters", path="idempotency_key")
    return key


def active_holder(session: Session, tenant_id: str, key: str) -> Execution | None:
    """The active execution holding ``key`` in the tenant, if any."""
    return session.exec(
        select(Execution).where(
            Execution.tenant_id == tenant_id,
            Execution.idempotency_key == key,
            Execution.idempotency_active == True,  # noqa: E712
        )
    ).first()


def active_holders(session: Session, tenant_id: str, keys: Collection[str]) -> dict[str, Execution]:
    """The active executions holding any of ``keys`` in the tenant, by key (one read, for a batch)."""
    if not keys:
        return {}
    rows = session.exec(
        select(Execution).where(
            Execution.tenant_id == tenant_id,
            col(Execution.idempotency_key).in_(sorted(set(keys))),
            Execution.idempotency_active == True,  # noqa: E712
        )
    ).all()
    return {row.idempotency_key: row for row in rows}


def release_if_stale(session: Session, holder: Execution, *, window_s: int) -> bool:
    """Free the key of a holder that completed more than ``window_s`` ago. True if it was freed."""
    if holder.status != ExecutionStatus.COMPLETED or holder.finished_at is None:
        return False
    if holder.finished_at > utcnow() - timedelta(seconds=window_s):
        return False
    result = session.execute(
        update(Execution)
        .where(Execution.id == holder.id, Execution.idempotency_active == True)  # type: ignore[arg-type]  # noqa: E712
        .values(idempotency_active=False)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]

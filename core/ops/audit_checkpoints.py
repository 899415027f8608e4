"""Signed checkpoints of the tenant audit chains (DESIGN §13): what detects a truncated tail after the fact.

A checkpoint states "tenant T's chain had link number N with hash H, and E links were stored, at time C",
signed with the installation's Ed25519 key (core/safety/audit_keys.py). The database can be rewritten by
whoever holds it; a checkpoint cannot be made without the key, and one shipped out (``audit export``) cannot
be taken back. ``audit verify`` checks every checkpoint's signature and that the chain still reaches it.

The sweeper writes one per tenant whose head moved, at most every ``audit_checkpoint_interval_s``
(``write_due``); ``opsconductor audit checkpoint`` writes one now. Writers never lock the head: they read
it as committed (every link up to it is committed with it), check that it is the hash of its link, and
insert; two writers of the same checkpoint at once leave one row (unique tenant and number).
"""

from __future__ import annotations

import base64
import json
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import func, or_, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session

from core.audit_links import ADMIN_EVENTS, CONTENT, EVENTS, HEADS, TABLES, link_hash
from core.errors import Conflict
from core.identity import rbac
from core.identity.permissions import Permission
from core.safety.audit_keys import public_key_pem, signing_key
from core.schemas import CheckpointView, Principal
from core.transactions import session_scope
from db.clock import utcnow
from db.tables import AuditCheckpoint

CHECKPOINTS = AuditCheckpoint.__table__  # type: ignore[attr-defined]
PAYLOAD_VERSION = "opsc-audit-checkpoint-v1"

log = logging.getLogger("opsconductor.audit")


def checkpoint_payload(tenant_id: str, seq: int, head_hash: str, event_count: int, created_at: datetime) -> str:
    """The exact text a checkpoint's signature covers: canonical JSON (sorted keys, no spaces, ASCII)."""
    when = (created_at if created_at.tzinfo else created_at.replace(tzinfo=UTC)).astimezone(UTC)
    return json.dumps(
        {
            "v": PAYLOAD_VERSION,
            "tenant_id": tenant_id,
            "seq": seq,
            "head_hash": head_hash,
            "event_count": event_count,
            "created_at": when.isoformat(timespec="microseconds"),
        },
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=True,
    )


def signature_valid(payload: str, signature: str, public_key: Ed25519PublicKey | None = None) -> bool:
    """Whether ``signature`` (base64) is the installation's (or ``public_key``'s) signature of ``payload``."""
    key = public_key or signing_key().public_key()
    try:
        key.verify(base64.b64decode(signature, validate=True), payload.encode("ascii"))
    except (InvalidSignature, ValueError):
        return False
    return True


def view(row: Any, tenant: str) -> CheckpointView:
    """A checkpoint row as the public view, with the payload its signature covers."""
    payload = checkpoint_payload(row.tenant_id, int(row.chain_seq), row.head_hash, int(row.event_count), row.created_at)
    return CheckpointView(
        tenant=tenant,
        seq=int(row.chain_seq),
        head_hash=row.head_hash,
        event_count=int(row.event_count),
        created_at=row.created_at,
        signature=row.signature,
        payload=payload,
    )


def write(session: Session, tenant_id: str) -> bool:
    """Write a checkpoint of ``tenant_id``'s chain at its current head; False when there is nothing new.

    Raises:
        Conflict: the head is not the hash of its link (the chain was tampered with): nothing is signed.
    """
    head = session.execute(select(HEADS.c.seq, HEADS.c.hash).where(HEADS.c.tenant_id == tenant_id)).first()
    if head is None or not head.seq:
        return False
    seq, head_hash = int(head.seq), head.hash
    latest = session.execute(
        select(func.max(CHECKPOINTS.c.chain_seq)).where(CHECKPOINTS.c.tenant_id == tenant_id)
    ).scalar()
    if latest is not None and latest >= seq:
        return False
    if not _head_is_its_link(session, tenant_id, seq, head_hash):
        raise Conflict(f"the audit chain head of tenant {tenant_id} (link {seq}) is not its link: run `audit verify`")
    count = sum(
        session.execute(
            select(func.count()).where(table.c.tenant_id == tenant_id, table.c.chain_seq <= seq)
        ).scalar_one()
        for table in (EVENTS, ADMIN_EVENTS)
    )
    created_at = utcnow()
    payload = checkpoint_payload(tenant_id, seq, head_hash, count, created_at)
    signature = base64.b64encode(signing_key().sign(payload.encode("ascii"))).decode()
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    session.execute(
        insert(CHECKPOINTS)
        .values(
            tenant_id=tenant_id,
            chain_seq=seq,
            head_hash=head_hash,
            event_count=count,
            created_at=created_at,
            signature=signature,
        )
        .on_conflict_do_nothing(index_elements=["tenant_id", "chain_seq"])
    )
    return True


def _head_is_its_link(session: Session, tenant_id: str, seq: int, head_hash: str | None) -> bool:
    """The link numbered ``seq`` exists, matches its HMAC, and its hash is the head's."""
    for source, table in TABLES.items():
        row = session.execute(select(table).where(table.c.tenant_id == tenant_id, table.c.chain_seq == seq)).first()
        if row is not None:
            content = {name: getattr(row, name) for name in CONTENT[source]}
            digest = link_hash(source, tenant_id, seq, row.prev_hash, content)
            return bool(digest == row.hash == head_hash)
    return False


def write_due(interval_s: float) -> int:
    """The sweeper's part: a checkpoint for every tenant whose head moved since its newest checkpoint, and
    whose newest checkpoint is older than ``interval_s`` (or that has none). Returns how many were written."""
    cutoff = utcnow() - timedelta(seconds=interval_s)
    newest_first = CHECKPOINTS.c.tenant_id == HEADS.c.tenant_id, CHECKPOINTS.c.chain_seq.desc()
    newest_seq = (
        select(CHECKPOINTS.c.chain_seq).where(newest_first[0]).order_by(newest_first[1]).limit(1).scalar_subquery()
    )
    newest_at = (
        select(CHECKPOINTS.c.created_at).where(newest_first[0]).order_by(newest_first[1]).limit(1).scalar_subquery()
    )
    with session_scope() as session:
        # One row per tenant, an index probe each (uq_audit_checkpoints_tenant_seq): cheap every sweep.
        due = (
            session.execute(
                select(HEADS.c.tenant_id)
                .where(HEADS.c.seq > func.coalesce(newest_seq, 0), or_(newest_at.is_(None), newest_at < cutoff))
                .order_by(HEADS.c.tenant_id)
            )
            .scalars()
            .all()
        )
    written = 0
    for tenant_id in due:
        try:
            with session_scope() as session:
                written += write(session, tenant_id)
        except Conflict as exc:  # a tampered chain is not signed; the sweeper goes on with the others
            log.error("audit checkpoint not written: %s", exc)
    return written


def checkpoint(principal: Principal) -> CheckpointView | None:
    """Write a signed checkpoint of the tenant's audit chain now (admin), and return the newest checkpoint
    (None while the chain is empty). Nothing is written when the head has not moved since the newest.

    Raises:
        PermissionDenied: not an admin of the tenant. Conflict: the chain's head does not match its link.
    """
    with session_scope() as session:
        rbac.require(session, principal, Permission.ADMIN)
        write(session, principal.tenant_id)
    return newest(principal.tenant_id, principal.tenant)


def newest(tenant_id: str, tenant: str) -> CheckpointView | None:
    """The tenant's newest checkpoint."""
    with session_scope() as session:
        row = session.execute(
            select(CHECKPOINTS)
            .where(CHECKPOINTS.c.tenant_id == tenant_id)
            .order_by(CHECKPOINTS.c.chain_seq.desc())
            .limit(1)
        ).first()
    return view(row, tenant) if row is not None else None


def public_key() -> str:
    """The installation's checkpoint verification key (Ed25519, PEM): give it to the SIEM.

    Raises:
        SafetyRefused: no secret key material (PostgreSQL without ``OPSC_SECRET_KEY``).
    """
    return public_key_pem()

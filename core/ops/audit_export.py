"""``audit export``: a tenant's audit chain as JSON objects, for a SIEM (docs/operations.md "Audit trail").

First a ``header`` (tenant, head, the checkpoint verification key), then every ``link`` from ``since_seq``
on in number order (execution and admin events as stored, so already masked), then the ``checkpoint``\\ s at
or after ``since_seq``, each with the exact ``payload`` its Ed25519 signature covers. Read a page per
transaction: a long export never holds the database.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from sqlalchemy import select

from core.audit_links import CONTENT, HEADS, TABLES, VERSION
from core.errors import InvalidInput
from core.identity import rbac
from core.identity.permissions import Permission
from core.ops.audit_checkpoints import CHECKPOINTS, PAYLOAD_VERSION, view
from core.safety.audit_keys import public_key_pem
from core.schemas import Principal
from core.transactions import session_scope
from db.clock import utcnow

FORMAT = "opsconductor-audit-export/1"
PAGE = 1000


def export_audit(principal: Principal, *, since_seq: int = 0) -> Iterator[dict[str, Any]]:
    """The tenant's audit chain as JSON-ready objects, one per line of an export (admin).

    Args:
        since_seq: only links numbered after it, and checkpoints at or after it (incremental shipping: pass
            the last ``seq`` the SIEM has).

    Raises:
        PermissionDenied: not an admin of the tenant. InvalidInput: a negative ``since_seq``.
    """
    if since_seq < 0:
        raise InvalidInput("must be 0 or more", path="since_seq")
    tenant_id = principal.tenant_id
    with session_scope() as session:
        rbac.require(session, principal, Permission.ADMIN)
        head = session.execute(select(HEADS.c.seq, HEADS.c.hash).where(HEADS.c.tenant_id == tenant_id)).first()
    head_seq = int(head.seq) if head is not None else 0
    yield {
        "type": "header",
        "format": FORMAT,
        "tenant": principal.tenant,
        "tenant_id": tenant_id,
        "exported_at": utcnow().isoformat(),
        "since_seq": since_seq,
        "head_seq": head_seq,
        "head_hash": head.hash if head is not None else None,
        "link_version": VERSION,
        "link_mac": "HMAC-SHA256 under a per-tenant key derived from the installation's secret (not exported)",
        "checkpoint_version": PAYLOAD_VERSION,
        "checkpoint_signature": "Ed25519 over the checkpoint's payload, base64",
        "public_key": public_key_pem(),
    }
    yield from _links(principal, since_seq, head_seq)
    with session_scope() as session:
        rows = session.execute(
            select(CHECKPOINTS)
            .where(CHECKPOINTS.c.tenant_id == tenant_id, CHECKPOINTS.c.chain_seq >= since_seq)
            .order_by(CHECKPOINTS.c.chain_seq)
        ).all()
    for row in rows:
        yield {"type": "checkpoint", "tenant_id": tenant_id, **view(row, principal.tenant).model_dump(mode="json")}


def _links(principal: Principal, since_seq: int, head_seq: int) -> Iterator[dict[str, Any]]:
    after = since_seq
    while after < head_seq:
        with session_scope() as session:
            rbac.require(session, principal, Permission.ADMIN)  # a role revoked during a long export stops it
            pages = {
                source: session.execute(
                    select(table)
                    .where(
                        table.c.tenant_id == principal.tenant_id,
                        table.c.chain_seq > after,
                        table.c.chain_seq <= head_seq,
                    )
                    .order_by(table.c.chain_seq, table.c.id)
                    .limit(PAGE)
                ).all()
                for source, table in TABLES.items()
            }
        limit = head_seq
        for page in pages.values():
            if len(page) == PAGE:
                limit = min(limit, int(page[-1].chain_seq))
        rows = sorted(
            ((source, row) for source, page in pages.items() for row in page if row.chain_seq <= limit),
            key=lambda item: (item[1].chain_seq, item[0], item[1].id),
        )
        for source, row in rows:
            yield _link(source, row)
        after = limit


def _link(source: str, row: Any) -> dict[str, Any]:
    line: dict[str, Any] = {
        "type": "link",
        "source": source,
        "seq": int(row.chain_seq),
        "prev_hash": row.prev_hash,
        "hash": row.hash,
        "tenant_id": row.tenant_id,
        "event_id": row.id,
    }
    for name in CONTENT[source]:
        value = getattr(row, name)
        line[name] = value.isoformat() if isinstance(value, datetime) else value
    return line

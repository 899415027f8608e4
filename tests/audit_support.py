"""Test helpers about the tenant's audit chain (core/audit_links.py), shared by the attack tests."""

from __future__ import annotations

from sqlalchemy import select

from core import audit_links, principal, verify_chain
from core.audit_links import HEADS, TABLES
from db.engine import get_engine, session_scope
from db.enums import ExecutionStatus
from db.tables import Tenant
from tests.factories import raw_execution


def tenant_id_of(name: str) -> str:
    with session_scope() as session:
        return str(session.execute(select(Tenant.id).where(Tenant.name == name)).scalar_one())  # type: ignore[call-overload]


def running_execution(tenant: str = "demo") -> tuple[str, str]:
    """A running execution's id and its tenant's id (a raw row: events may be recorded about it)."""
    with session_scope() as session:
        row = raw_execution(session, ExecutionStatus.RUNNING, tenant=tenant)
        return row.id, row.tenant_id


def assert_chain_sound(tenant: str) -> int:
    """The tenant's links are numbered 1..N with no gap, each names the link before it (no fork), the head is the
    last link, and verify (which recomputes every HMAC) finds it intact. Returns N."""
    tenant_id = tenant_id_of(tenant)
    with session_scope() as session:
        links = sorted(
            (row.chain_seq, row.prev_hash, row.hash)
            for table in TABLES.values()
            for row in session.execute(
                select(table.c.chain_seq, table.c.prev_hash, table.c.hash).where(
                    table.c.tenant_id == tenant_id, table.c.chain_seq.is_not(None)
                )
            ).all()
        )
        head = session.execute(select(HEADS.c.seq, HEADS.c.hash).where(HEADS.c.tenant_id == tenant_id)).first()
    assert [seq for seq, _, _ in links] == list(range(1, len(links) + 1))
    assert len({prev for _, prev, _ in links}) == len(links)  # no fork: each predecessor is named once
    for (seq, prev, _), (_, _, before_hash) in zip(links[1:], links[:-1], strict=True):
        assert prev == before_hash, f"link {seq} names a predecessor that is not link {seq - 1}"
    if links:
        assert head is not None and (head.seq, head.hash) == (links[-1][0], links[-1][2])
    report = verify_chain(principal("admin", tenant))
    assert report.intact, report.breaks
    assert report.links == report.head_seq == len(links)
    return len(links)


def turn_free(tenant_id: str) -> bool:
    """Whether no transaction of this process holds the tenant's turn (taking it without waiting works)."""
    turn = audit_links._HEADS._turns.get(get_engine(), {}).get(tenant_id)
    if turn is None:
        return True
    if not turn.acquire(blocking=False):
        return False
    turn.release()
    return True

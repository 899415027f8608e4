"""The tenant's audit chain (DESIGN §13): every execution event and admin event of a tenant, one keyed chain.

Each link carries ``chain_seq`` (the tenant's gapless link number, shared by execution_events and
admin_events), ``prev_hash`` (the previous link's hash, NULL for link 1) and ``hash`` = HMAC-SHA256, under a
per-tenant key derived from the secret key material (core/safety/audit_keys.py), of the link's canonical
encoding (``link_canonical``). The key is never in the database: a chain recomputed without it fails.

When links are made, and why then. Events are not written as the transaction goes: core/audit.py and
core/admin_audit.py hand them here (``append``), and a ``before_commit`` session hook writes them all at the
very end: it flushes, locks the heads of the transaction's tenants (``audit_heads``, ``FOR UPDATE``, sorted by
tenant), numbers and hashes the events, inserts them already linked (one multi-row INSERT per table) and moves
the heads; the commit follows at once. So the tenant-wide lock is held only between the last statements of the
transaction and its commit, and no other lock is taken after it: a transaction holding a head waits for
nothing, which is what keeps the hot path free of deadlocks (one that took the head mid-transaction, then
waited for an execution row held by another that waits for the head, would deadlock). It costs 3 statements
per transaction that wrote events, whatever their number (lock, insert, head), plus 2 the first time a tenant
links anything (its head row is created then). An event is therefore visible to a query only after its
transaction commits, even to that transaction: nothing reads its own transaction's events.
SQLite: writers are serial anyway (BEGIN IMMEDIATE), ``FOR UPDATE`` renders as nothing; same code path.

PostgreSQL, the usual transaction (one tenant, one table): its events and the head's move are one statement,
and when this process remembers the head it last moved (``_Heads``), the lock is saved too: the events are
hashed onto that head and inserted only if the head still is exactly that (number *and* hash, compared and
set by the same statement, under the row lock the UPDATE takes). If another writer moved it meanwhile
(another worker, or a transaction of ours that rolled back after its statement), that statement wrote no
event, but it has locked the head and returned it as it stands: the events are hashed onto that one and
linked by a second statement. So a transaction links in one statement without contention and in two under
it (as the locking way does), never three. The threads of one process take turns per tenant
(``_Heads.take_turn``, from the link to the end of the transaction), so they never make each other's memory
stale; they would queue for the head's row lock anyway.

An event cannot be appended inside a savepoint: rolling the savepoint back would not take the event with
it (it is not written yet), and the trail would record a change that did not happen.
"""

from __future__ import annotations

import json
import threading
import weakref
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import TextClause, bindparam, event, insert, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session as OrmSession
from sqlmodel import Session

from core.safety.audit_keys import chain_key, link_mac
from db.clock import utcnow
from db.prepared import Prepared
from db.tables import AdminEvent, AuditHead, ExecutionEvent

EXECUTION = "execution"
ADMIN = "admin"
VERSION = "opsc-audit-v2"
_PENDING = "opsc.audit_pending"

EVENTS = ExecutionEvent.__table__  # type: ignore[attr-defined]
ADMIN_EVENTS = AdminEvent.__table__  # type: ignore[attr-defined]
HEADS = AuditHead.__table__  # type: ignore[attr-defined]
TABLES = {EXECUTION: EVENTS, ADMIN: ADMIN_EVENTS}
# The stored columns each kind of link covers, in the canonical order.
CONTENT = {
    EXECUTION: (
        "execution_id",
        "kind",
        "from_status",
        "to_status",
        "step_index",
        "actor",
        "message",
        "data_json",
        "created_at",
    ),
    ADMIN: ("actor", "action", "subject", "data_json", "created_at"),
}


def link_canonical(source: str, tenant_id: str, seq: int, prev_hash: str | None, content: dict[str, Any]) -> bytes:
    """The bytes a link's HMAC covers: a JSON array (null stays distinct from ""), ASCII only so it does not
    depend on how a database hands text back, ``created_at`` in UTC to the microsecond (both databases keep it).
    """
    values: list[Any] = [VERSION, source, tenant_id, seq, prev_hash or ""]
    for name in CONTENT[source]:
        value = content[name]
        if isinstance(value, datetime):
            value = (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC)
            value = value.isoformat(timespec="microseconds")
        values.append(value)
    return json.dumps(values, ensure_ascii=True, separators=(",", ":")).encode("ascii")


def link_hash(
    source: str,
    tenant_id: str,
    seq: int,
    prev_hash: str | None,
    content: dict[str, Any],
    *,
    material: bytes | None = None,
) -> str:
    """The HMAC (hex) of a link under its tenant's key (``material``: another key's, for tests and tools)."""
    return link_mac(chain_key(tenant_id, material), link_canonical(source, tenant_id, seq, prev_hash, content))


@dataclass
class _Pending:
    source: str
    tenant_id: str
    content: dict[str, Any]


def append(session: Session, source: str, tenant_id: str, content: dict[str, Any]) -> None:
    """Have an event (``source``'s CONTENT columns) written, linked, when this session's transaction commits.

    Raises:
        RuntimeError: inside a savepoint (see the module docstring).
    """
    if session.in_nested_transaction():
        raise RuntimeError("an audit event cannot be recorded inside a savepoint: its rollback would not undo it")
    # The event belongs to the transaction in progress; a session that has sent nothing yet begins it now.
    transaction = session.get_transaction() or session.begin()
    cached: tuple[object, list[_Pending]] | None = session.info.get(_PENDING)
    if cached is None or cached[0] is not transaction:  # a new transaction: what an old one left is void
        cached = (transaction, [])
        session.info[_PENDING] = cached
    cached[1].append(_Pending(source, tenant_id, content))


@event.listens_for(OrmSession, "before_commit")
def _link_before_commit(session: OrmSession) -> None:
    if session.in_nested_transaction():  # a savepoint's commit: the outer transaction links, later
        return
    cached = session.info.pop(_PENDING, None)
    if cached is None or cached[0] is not session.get_transaction() or not cached[1]:
        return
    session.flush()  # whatever the ORM still holds takes its locks now, not after the heads
    write(session, cached[1])


def write(session: OrmSession, pending: list[_Pending]) -> None:
    """Number, hash and insert ``pending`` (in order), chained onto their tenants' heads. See the module docstring."""
    tenants = sorted({p.tenant_id for p in pending})
    if _link_onto_seen_head(session, tenants, pending):
        return
    heads = _lock_heads(session, tenants)
    missing = [t for t in tenants if t not in heads]
    if missing:
        _create_heads(session, missing)
        heads |= _lock_heads(session, missing)
    sources = {p.source for p in pending}
    if len(tenants) == 1 and len(sources) == 1 and session.get_bind().dialect.name == "postgresql":
        # The usual transaction (one tenant, one table): its events and the head's move in one statement.
        _pg_link_locked(session, sources.pop(), tenants[0], heads[tenants[0]], pending, utcnow())
        return
    rows = _linked(pending, heads)
    now = utcnow()
    filled = [source for source, values in rows.items() if values]
    for source in filled:  # one statement for all of the transaction's events of a table, in chain order
        session.execute(_INSERTS[source], rows[source])
    for tenant_id in tenants:
        head_seq, head_hash = heads[tenant_id]
        session.execute(_MOVE_HEAD, {"head_tenant": tenant_id, "new_seq": head_seq, "new_hash": head_hash, "now": now})
        _HEADS.moved(session, tenant_id, head_seq, head_hash)


def _linked(pending: list[_Pending], heads: dict[str, tuple[int, str | None]]) -> dict[str, list[dict[str, Any]]]:
    """The rows of ``pending`` per table, numbered and hashed onto ``heads`` (moved to their new links)."""
    rows: dict[str, list[dict[str, Any]]] = {source: [] for source in TABLES}
    for p in pending:
        last_seq, prev = heads[p.tenant_id]
        seq = last_seq + 1
        digest = link_hash(p.source, p.tenant_id, seq, prev, p.content)
        rows[p.source].append(
            {**p.content, "tenant_id": p.tenant_id, "chain_seq": seq, "prev_hash": prev, "hash": digest}
        )
        heads[p.tenant_id] = (seq, digest)
    return rows


def _link_onto_seen_head(session: OrmSession, tenants: list[str], pending: list[_Pending]) -> bool:
    """PostgreSQL, one tenant and one table: link onto the head this process last moved, if it still is that
    (one statement, no lock first); if another writer moved it, that statement has locked the head and read it,
    and the events are linked onto it (a second statement). False: nothing was written (no head remembered, or
    no head row yet); link the locking way."""
    sources = {p.source for p in pending}
    if len(tenants) != 1 or len(sources) != 1 or session.get_bind().dialect.name != "postgresql":
        return False
    tenant_id, source = tenants[0], sources.pop()
    if not _HEADS.take_turn(session, tenant_id):
        return False  # another thread of this process took long: link the locking way, beside it
    seen = _HEADS.seen(session, tenant_id)
    if seen is None:
        return False
    heads = {tenant_id: seen}
    rows = _linked(pending, heads)
    head_seq, head_hash = heads[tenant_id]
    now = utcnow()
    params = {
        "rows": json.dumps(rows[source], default=_iso),
        "head_tenant": tenant_id,
        "seen_seq": seen[0],
        "seen_hash": seen[1],
        "new_seq": head_seq,
        "new_hash": head_hash,
        "now": now,
    }
    found = _PG_LINK_SEEN[source].first(session, params)
    if found is None:
        return False
    if (found[0], found[1]) == (head_seq, head_hash):  # an HMAC onto the seen head: only this statement wrote it
        _HEADS.moved(session, tenant_id, head_seq, head_hash)
        return True
    _pg_link_locked(session, source, tenant_id, (int(found[0]), found[1]), pending, now)  # moved by another writer
    return True


def _pg_link_locked(
    session: OrmSession,
    source: str,
    tenant_id: str,
    head: tuple[int, str | None],
    pending: list[_Pending],
    now: datetime,
) -> None:
    """PostgreSQL: link ``pending`` (one tenant, one table) onto ``head``, which this transaction holds locked,
    and move the head, in one statement."""
    heads = {tenant_id: head}
    rows = _linked(pending, heads)
    head_seq, head_hash = heads[tenant_id]
    moved = {"head_tenant": tenant_id, "new_seq": head_seq, "new_hash": head_hash, "now": now}
    _PG_LINK[source].rowcount(session, {"rows": json.dumps(rows[source], default=_iso)} | moved)
    _HEADS.moved(session, tenant_id, head_seq, head_hash)


class _Heads:
    """The head this process last moved, per engine and tenant (``_link_onto_seen_head``), and the turns of
    this process's threads. Only a hint: a wrong one costs a statement, never a wrong link (the head is
    compared, number and hash, by the statement that moves it)."""

    TURN_WAIT_S = 0.5  # a commit takes milliseconds; longer, and the thread links beside the turn's holder

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: weakref.WeakKeyDictionary[Any, dict[str, tuple[int, str | None]]] = weakref.WeakKeyDictionary()
        self._turns: weakref.WeakKeyDictionary[Any, dict[str, threading.Lock]] = weakref.WeakKeyDictionary()

    def take_turn(self, session: OrmSession, tenant_id: str) -> bool:
        """Be this process's one transaction linking ``tenant_id`` until this transaction ends, so that the head
        it remembers is not moved by its own threads meanwhile (they would wait for the head's row lock anyway).

        Waits ``TURN_WAIT_S`` at most, then goes without (False): a thread waiting here holds its transaction's
        row locks, and one the turn's holder needed would otherwise be a deadlock PostgreSQL cannot see."""
        with self._lock:
            turns = self._turns.setdefault(session.get_bind(), {})
            turn = turns.setdefault(tenant_id, threading.Lock())
        if not turn.acquire(timeout=self.TURN_WAIT_S):
            return False
        session.info[_TURN] = turn
        return True

    def seen(self, session: OrmSession, tenant_id: str) -> tuple[int, str | None] | None:
        """The head this process last moved for ``tenant_id`` (number, hash), or None."""
        with self._lock:
            return self._seen.get(session.get_bind(), {}).get(tenant_id)

    def moved(self, session: OrmSession, tenant_id: str, seq: int, digest: str | None) -> None:
        """This transaction moved the head to (``seq``, ``digest``)."""
        with self._lock:
            self._seen.setdefault(session.get_bind(), {})[tenant_id] = (seq, digest)


_HEADS = _Heads()
_TURN = "opsc.audit_turn"


@event.listens_for(OrmSession, "after_transaction_end")
def _end_turn(session: OrmSession, transaction: Any) -> None:
    # The turn lasts to the end of the transaction (committed or not): its head's move is then settled.
    if transaction.parent is None and (turn := session.info.pop(_TURN, None)) is not None:
        turn.release()


# Built once: every transaction that writes events sends them (building each costs more CPU than sending it).
_INSERTS = {source: insert(table) for source, table in TABLES.items()}
_MOVE_HEAD = (
    update(HEADS)
    .where(HEADS.c.tenant_id == bindparam("head_tenant"))
    .values(seq=bindparam("new_seq"), hash=bindparam("new_hash"), updated_at=bindparam("now"))
)


def _pg_link(source: str) -> TextClause:
    """PostgreSQL: insert a JSON array of linked rows (in their order) and move the tenant's head, one statement."""
    table = TABLES[source]
    columns = ", ".join((*CONTENT[source], "tenant_id", "chain_seq", "prev_hash", "hash"))
    # Table and column names from this module's constants, never from input.
    sql = (
        f"WITH linked AS (INSERT INTO {table.name} ({columns}) SELECT {columns} "  # noqa: S608
        f"FROM json_populate_recordset(NULL::{table.name}, CAST(:rows AS json)) WITH ORDINALITY AS r "
        "ORDER BY r.ordinality) "
        "UPDATE audit_heads SET seq = :new_seq, hash = :new_hash, updated_at = :now WHERE tenant_id = :head_tenant"
    )
    return text(sql)


_PG_LINK = {source: Prepared(_pg_link(source)) for source in TABLES}


def _pg_link_seen(source: str) -> TextClause:
    """PostgreSQL: move the tenant's head from the seen one (number and hash) and insert the rows linked onto it,
    only if it still is that; one statement, returning the head as it now stands, under this transaction's lock:
    the new one (it moved) or the one another writer left (nothing was written)."""
    table = TABLES[source]
    columns = ", ".join((*CONTENT[source], "tenant_id", "chain_seq", "prev_hash", "hash"))
    # Table and column names from this module's constants, never from input. The UPDATE takes the head's row
    # lock (waiting for its holder) and its SET sees the newest committed head (READ COMMITTED re-reads a row
    # it waited for); a head that is not the seen one is left as it is, but locked, and returned.
    seen = "seq = :seen_seq AND hash = :seen_hash"
    sql = (
        f"WITH head AS (UPDATE audit_heads SET seq = CASE WHEN {seen} THEN :new_seq ELSE seq END, "  # noqa: S608
        f"hash = CASE WHEN {seen} THEN :new_hash ELSE hash END, "
        f"updated_at = CASE WHEN {seen} THEN :now ELSE updated_at END "
        "WHERE tenant_id = :head_tenant RETURNING seq, hash), "
        f"linked AS (INSERT INTO {table.name} ({columns}) SELECT {columns} "
        f"FROM json_populate_recordset(NULL::{table.name}, CAST(:rows AS json)) WITH ORDINALITY AS r "
        "WHERE EXISTS (SELECT 1 FROM head WHERE seq = :new_seq AND hash = :new_hash) ORDER BY r.ordinality) "
        "SELECT seq, hash FROM head"
    )
    return text(sql)


_PG_LINK_SEEN = {source: Prepared(_pg_link_seen(source)) for source in TABLES}


def _iso(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"cannot encode {type(value).__name__} in an audit row")


_LOCK_HEADS = (
    select(HEADS.c.tenant_id, HEADS.c.seq, HEADS.c.hash)
    .where(HEADS.c.tenant_id.in_(bindparam("tenants", expanding=True)))
    .order_by(HEADS.c.tenant_id)
    .with_for_update()
)


# PostgreSQL: one text whatever the number of tenants (an array, not IN (...)), so it is prepared once.
_PG_LOCK_HEADS = Prepared(
    text("SELECT tenant_id, seq, hash FROM audit_heads WHERE tenant_id = ANY(:tenants) ORDER BY tenant_id FOR UPDATE")
)


def _lock_heads(session: OrmSession, tenants: list[str]) -> dict[str, tuple[int, str | None]]:
    # Sorted, so two transactions that both span tenants A and B lock them in the same order. Under READ
    # COMMITTED a row returned FOR UPDATE after a wait is its newest committed version: one statement.
    if session.get_bind().dialect.name == "postgresql":
        rows = _PG_LOCK_HEADS.rows(session, {"tenants": tenants})
    else:
        rows = [tuple(row) for row in session.execute(_LOCK_HEADS, {"tenants": tenants})]
    return {tenant_id: (int(seq), digest) for tenant_id, seq, digest in rows}


def _create_heads(session: OrmSession, tenants: list[str]) -> None:
    """A tenant's first link: create its head row (another transaction may create it at the same moment)."""
    dialect = session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    now = utcnow()
    session.execute(
        insert(HEADS)
        .values([{"tenant_id": t, "seq": 0, "hash": None, "updated_at": now} for t in tenants])
        .on_conflict_do_nothing(index_elements=["tenant_id"])
    )

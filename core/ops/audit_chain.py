"""Verifying a tenant's keyed audit chain (core/audit_links.py): execution events and admin events, one chain.

The links are read in number order (a page at a time, each page its own short transaction) and every one is
recomputed with the tenant's key. What is found (ChainBreak.problem):

- ``modified``: a link no longer matches its HMAC (consecutive ones are reported as one run), or does not
  follow the link before it, or is not the link a signed checkpoint states;
- ``deleted``: numbers are missing (a deleted event, or a deleted execution: its links go with it), or an
  execution's status is not its last recorded change (its last events were removed);
- ``inserted``: a row the chain does not pass through: a second row with a link's number, a row without a
  number after the tenant's first link, a link beyond the head;
- ``truncated``: the head, or a signed checkpoint, says the chain is longer than what is stored;
- ``wrong_key``: no link matches under this installation's key (recomputed without it, or the key changed);
- ``bad_signature``: a checkpoint whose Ed25519 signature does not verify (it is not trusted then).

Rows written before the chain existed (no number) are *unchained*: counted, not judged, as long as they all
precede the tenant's first link. Retention (core/ops/retention.py) removes links legitimately: its ``pruned``
event (itself a link, so its HMAC vouches for it) lists the numbers it removed and the hash ending each run,
and those gaps are not breaks; the link after such a run must still link to the hash the event recorded.
Deleting the newest links *and* rewinding the head goes unseen only past the newest checkpoint: ship the
checkpoints out (``audit export``) to close that window.
"""

from __future__ import annotations

import bisect
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlmodel import Session

from core.audit_links import ADMIN, CONTENT, EVENTS, EXECUTION, HEADS, TABLES, link_hash
from core.errors import NotFound
from core.identity import rbac
from core.identity.permissions import Permission
from core.ops.audit_checkpoints import CHECKPOINTS, checkpoint_payload, signature_valid
from core.schemas import ChainBreak, ChainReport, Principal
from core.transactions import session_scope
from db.tables import Execution

PRUNED_EVENT = "pruned"
PAGE = 500  # links per table per transaction: bounds how long a verify holds SQLite's write lock
MAX_BREAKS = 200
STATUS_CHUNK = 500

_EXECUTIONS = Execution.__table__  # type: ignore[attr-defined]
_UNKNOWN = object()  # the previous link's hash when it was removed by retention without a recorded hash


def pruned_runs(seqs: Sequence[int], hashes: Sequence[str]) -> list[list[Any]]:
    """Removed link numbers (ascending) as runs ``[first, last, hash of last]``: what a ``pruned`` event keeps."""
    runs: list[list[Any]] = []
    for seq, digest in zip(seqs, hashes, strict=True):
        if runs and runs[-1][1] == seq - 1:
            runs[-1][1], runs[-1][2] = seq, digest
        else:
            runs.append([seq, seq, digest])
    return runs


@dataclass
class _Coverage:
    """The runs of link numbers that retention removed, from trusted ``pruned`` links: sorted, merged."""

    starts: list[int] = field(default_factory=list)
    ends: list[int] = field(default_factory=list)
    end_hash: dict[int, str] = field(default_factory=dict)

    @classmethod
    def of(cls, runs: Iterable[Sequence[Any]]) -> _Coverage:
        coverage = cls()
        for first, last, digest in sorted((int(r[0]), int(r[1]), str(r[2])) for r in runs):
            coverage.end_hash[last] = digest
            if coverage.ends and first <= coverage.ends[-1] + 1:
                coverage.ends[-1] = max(coverage.ends[-1], last)
            else:
                coverage.starts.append(first)
                coverage.ends.append(last)
        return coverage

    def covers(self, first: int, last: int) -> bool:
        i = bisect.bisect_right(self.starts, first) - 1
        return i >= 0 and self.ends[i] >= last


@dataclass
class _Walk:
    tenant_id: str
    coverage: _Coverage
    checkpoints: dict[int, str]  # trusted checkpoints: number → head hash
    expected: int = 1
    prev: object = None  # hash of link expected-1 (None before link 1)
    links: int = 0
    macs_ok: int = 0
    continuity_breaks: int = 0
    events: int = 0
    admin_events: int = 0
    breaks: list[ChainBreak] = field(default_factory=list)
    run: list[Any] | None = None  # the open run of links failing their HMAC: [break index, first, last]
    last_change: dict[str, tuple[str, int]] = field(default_factory=dict)  # execution → (to_status, event id)
    submitted: dict[str, tuple[str, str | None, int]] = field(default_factory=dict)  # → (hash, run mode, event)
    executions_seen: set[str] = field(default_factory=set)
    pruned: set[str] = field(default_factory=set)

    def add(self, brk: ChainBreak) -> None:
        if len(self.breaks) < MAX_BREAKS:
            self.breaks.append(brk)

    def feed(self, rows: list[tuple[str, Any]]) -> None:
        """Rows (source, row) in link-number order; a number's rows are never split across calls."""
        i = 0
        while i < len(rows):
            j = i
            while j < len(rows) and rows[j][1].chain_seq == rows[i][1].chain_seq:
                j += 1
            self._number(rows[i:j])
            i = j

    def _number(self, group: list[tuple[str, Any]]) -> None:
        seq = int(group[0][1].chain_seq)
        macs = [self._mac_ok(source, row) for source, row in group]
        genuine = next((k for k, ok in enumerate(macs) if ok), 0)
        for k, (source, row) in enumerate(group):
            if k != genuine:
                self.add(_brk(source, row, "inserted", f"a second row numbered {seq}: not in the chain"))
        source, row = group[genuine]
        self._count(source, row)
        if seq > self.expected:
            if self.coverage.covers(self.expected, seq - 1):
                self.prev = self.coverage.end_hash.get(seq - 1, _UNKNOWN)
            else:
                self.continuity_breaks += 1
                self.add(
                    ChainBreak(
                        execution_id=None,
                        event_id=None,
                        problem="deleted",
                        source="chain",
                        seq=self.expected,
                        detail=f"links {_span(self.expected, seq - 1)} are missing: events were deleted "
                        "(a whole execution's, when its rows are gone)",
                    )
                )
                self.prev = _UNKNOWN
        if macs[genuine]:
            self.macs_ok += 1
            self.run = None
        elif self.run is not None and self.run[2] == seq - 1:
            self.run[2] = seq
            index = self.run[0]
            if index < len(self.breaks):
                first = self.breaks[index]
                self.breaks[index] = first.model_copy(
                    update={"detail": f"links {_span(self.run[1], seq)} do not match their HMAC: modified"}
                )
        else:
            self.run = [len(self.breaks), seq, seq]
            self.add(_brk(source, row, "modified", f"link {seq} does not match its HMAC: modified"))
        if self.prev is not _UNKNOWN and row.prev_hash != self.prev and macs[genuine]:
            self.continuity_breaks += 1
            self.add(_brk(source, row, "modified", f"link {seq} does not follow link {seq - 1}: one was replaced"))
        if seq in self.checkpoints and self.checkpoints[seq] != row.hash:
            self.add(
                _brk(source, row, "modified", f"link {seq} is not the one its signed checkpoint states: rewritten")
            )
        self.prev = row.hash
        self.expected = seq + 1

    def _mac_ok(self, source: str, row: Any) -> bool:
        content = {name: getattr(row, name) for name in CONTENT[source]}
        return bool(link_hash(source, self.tenant_id, int(row.chain_seq), row.prev_hash, content) == row.hash)

    def _count(self, source: str, row: Any) -> None:
        self.links += 1
        if source == ADMIN:
            self.admin_events += 1
            return
        self.events += 1
        self.executions_seen.add(row.execution_id)
        if row.kind == PRUNED_EVENT:
            self.pruned.add(row.execution_id)
        if row.to_status is not None:
            before = self.last_change.get(row.execution_id)
            if before is not None and row.from_status != before[0]:  # a change the trail does not record
                self.add(
                    _brk(
                        source,
                        row,
                        "inserted",
                        f"a change from {row.from_status} follows one to {before[0]}: "
                        "the status was set outside the FSM",
                    )
                )
            if row.from_status is None and "plan_hash" in (data := json.loads(row.data_json or "{}")):
                self.submitted[row.execution_id] = (str(data["plan_hash"]), data.get("run_mode"), row.id)
            self.last_change[row.execution_id] = (row.to_status, row.id)


def _span(first: int, last: int) -> str:
    return str(first) if first == last else f"{first}..{last}"


def _brk(source: str, row: Any, problem: str, detail: str) -> ChainBreak:
    return ChainBreak(
        execution_id=row.execution_id if source == EXECUTION else None,
        event_id=row.id,
        problem=problem,
        source=source,
        seq=row.chain_seq,
        detail=detail,
    )


def verify_chain(principal: Principal, execution_id: str | None = None) -> ChainReport:
    """Recompute the tenant's audit chain (admin). With ``execution_id``, the report counts that execution's
    events and keeps the breaks that concern it: its own, and those of the chain as a whole (gaps, tail, key).

    Raises:
        PermissionDenied: not an admin of the tenant. NotFound: no such execution in the tenant.
    """
    tenant_id = principal.tenant_id
    with session_scope() as session:
        rbac.require(session, principal, Permission.ADMIN)
        if execution_id is not None:
            found = session.execute(
                select(_EXECUTIONS.c.id).where(_EXECUTIONS.c.id == execution_id, _EXECUTIONS.c.tenant_id == tenant_id)
            ).first()
            if found is None:
                raise NotFound("execution", execution_id)
        head = session.execute(select(HEADS.c.seq, HEADS.c.hash).where(HEADS.c.tenant_id == tenant_id)).first()
        head_seq, head_hash = (int(head.seq), head.hash) if head is not None else (0, None)
        checkpoint_rows = session.execute(
            select(CHECKPOINTS).where(CHECKPOINTS.c.tenant_id == tenant_id).order_by(CHECKPOINTS.c.chain_seq)
        ).all()
        walk = _Walk(tenant_id, _Coverage(), {})
        walk.coverage = _Coverage.of(_trusted_runs(session, walk))
        executions = session.execute(
            select(func.count()).select_from(_EXECUTIONS).where(_EXECUTIONS.c.tenant_id == tenant_id)
        ).scalar_one()
        legacy = _unchained(session, tenant_id, walk, execution_id)
    checkpoint_breaks: list[ChainBreak] = []
    for cp in checkpoint_rows:
        payload = checkpoint_payload(tenant_id, int(cp.chain_seq), cp.head_hash, int(cp.event_count), cp.created_at)
        if signature_valid(payload, cp.signature):
            walk.checkpoints[int(cp.chain_seq)] = cp.head_hash
        else:
            checkpoint_breaks.append(
                ChainBreak(
                    execution_id=None,
                    event_id=cp.id,
                    problem="bad_signature",
                    source="checkpoint",
                    seq=cp.chain_seq,
                    detail=f"checkpoint {cp.id} (link {cp.chain_seq}) is not signed by this installation: forged",
                )
            )
    bound = max([head_seq, *walk.checkpoints])
    _read_links(tenant_id, bound, walk)
    last = walk.expected - 1
    _tail(walk, last, head_seq, head_hash)
    _beyond(tenant_id, bound, walk)
    if walk.links >= 2 and walk.macs_ok == 0 and walk.continuity_breaks == 0:
        walk.breaks = [
            ChainBreak(
                execution_id=None,
                event_id=None,
                problem="wrong_key",
                source="chain",
                seq=1,
                detail=f"none of the {walk.links} links matches its HMAC under this installation's key: the chain "
                "was recomputed without it (or the secret key changed)",
            ),
            *[b for b in walk.breaks if b.problem != "modified"],
        ]
    _statuses(walk)
    breaks = sorted([*legacy["breaks"], *walk.breaks, *checkpoint_breaks], key=lambda b: (b.seq is None, b.seq or 0))[
        :MAX_BREAKS
    ]
    if execution_id is not None:
        breaks = [b for b in breaks if b.execution_id == execution_id or b.source in ("chain", "checkpoint")]
    events = walk.events
    if execution_id is not None:
        with session_scope() as session:
            events = session.execute(
                select(func.count()).select_from(EVENTS).where(EVENTS.c.execution_id == execution_id)
            ).scalar_one()
    return ChainReport(
        tenant=principal.tenant,
        execution_id=execution_id,
        executions=1 if execution_id is not None else executions,
        events=events if execution_id is not None else walk.events + legacy["events"],
        unchained_events=legacy["events"],
        unchained_executions=legacy["executions"],
        pruned_executions=(1 if execution_id in walk.pruned else 0) if execution_id is not None else len(walk.pruned),
        intact=not breaks,
        first_break=breaks[0] if breaks else None,
        breaks=breaks,
        admin_events=walk.admin_events,
        links=walk.links,
        head_seq=head_seq,
        checkpoints=len(walk.checkpoints),
        checkpoint_seq=max(walk.checkpoints) if walk.checkpoints else None,
    )


def _trusted_runs(session: Session, walk: _Walk) -> list[Sequence[Any]]:
    """The removed runs listed by the tenant's ``pruned`` links that match their HMAC."""
    rows = session.execute(
        select(EVENTS).where(
            EVENTS.c.tenant_id == walk.tenant_id, EVENTS.c.kind == PRUNED_EVENT, EVENTS.c.chain_seq.is_not(None)
        )
    ).all()
    runs: list[Sequence[Any]] = []
    for row in rows:
        if walk._mac_ok(EXECUTION, row):
            runs += json.loads(row.data_json).get("removed_links", [])
    return runs


def _unchained(session: Session, tenant_id: str, walk: _Walk, execution_id: str | None) -> dict[str, Any]:
    """Rows without a link number: legacy before the tenant's first link of their table, inserted after it."""
    breaks: list[ChainBreak] = []
    legacy_events = 0
    for source, table in TABLES.items():
        first = session.execute(
            select(func.min(table.c.id)).where(table.c.tenant_id == tenant_id, table.c.chain_seq.is_not(None))
        ).scalar()
        unchained = table.c.tenant_id == tenant_id, table.c.chain_seq.is_(None)
        if first is not None:
            for row in session.execute(select(table).where(*unchained, table.c.id > first).limit(MAX_BREAKS)).all():
                detail = f"{source} event {row.id} has no link number but follows the tenant's first link"
                breaks.append(_brk(source, row, "inserted", f"{detail}: written behind the application's back"))
        if source == EXECUTION:
            legacy = select(func.count()).where(*unchained)
            if first is not None:
                legacy = legacy.where(table.c.id < first)
            if execution_id is not None:
                legacy = legacy.where(table.c.execution_id == execution_id)
            legacy_events = session.execute(legacy).scalar_one()
    linked = select(EVENTS.c.id).where(EVENTS.c.execution_id == _EXECUTIONS.c.id, EVENTS.c.chain_seq.is_not(None))
    unlinked = select(EVENTS.c.id).where(EVENTS.c.execution_id == _EXECUTIONS.c.id, EVENTS.c.chain_seq.is_(None))
    only_legacy = select(func.count()).where(_EXECUTIONS.c.tenant_id == tenant_id, unlinked.exists(), ~linked.exists())
    if execution_id is not None:
        only_legacy = only_legacy.where(_EXECUTIONS.c.id == execution_id)
    executions = session.execute(only_legacy).scalar_one()
    return {"breaks": breaks, "events": legacy_events, "executions": executions}


def _read_links(tenant_id: str, bound: int, walk: _Walk) -> None:
    """Feed the walk every link numbered up to ``bound``, in order: both tables a page at a time, merged."""
    after = 0
    while after < bound:
        with session_scope() as session:
            pages = {
                source: session.execute(
                    select(table)
                    .where(table.c.tenant_id == tenant_id, table.c.chain_seq > after, table.c.chain_seq <= bound)
                    .order_by(table.c.chain_seq, table.c.id)
                    .limit(PAGE)
                ).all()
                for source, table in TABLES.items()
            }
        limit = bound
        for page in pages.values():
            if len(page) == PAGE:  # more may follow in this table: merge only up to what both have read
                limit = min(limit, int(page[-1].chain_seq))
        rows = sorted(
            ((source, row) for source, page in pages.items() for row in page if row.chain_seq <= limit),
            key=lambda item: (item[1].chain_seq, item[0], item[1].id),
        )
        walk.feed(rows)
        after = limit


def _tail(walk: _Walk, last: int, head_seq: int, head_hash: str | None) -> None:
    """The chain must reach its head and every trusted checkpoint (unless retention removed the tail)."""
    claims = [("the head", head_seq, head_hash)] + [
        (f"the signed checkpoint at link {seq}", seq, digest) for seq, digest in sorted(walk.checkpoints.items())
    ]
    for who, seq, _digest in claims:
        if seq > last and not walk.coverage.covers(last + 1, seq):
            walk.add(
                ChainBreak(
                    execution_id=None,
                    event_id=None,
                    problem="truncated",
                    source="chain" if who == "the head" else "checkpoint",
                    seq=last + 1,
                    detail=f"{who} says the chain has {seq} links but it ends at link {last}: "
                    "the newest links were deleted",
                )
            )
            return
    if head_seq and head_seq == last and walk.prev is not _UNKNOWN and head_hash != walk.prev:
        walk.add(
            ChainBreak(
                execution_id=None,
                event_id=None,
                problem="modified",
                source="chain",
                seq=head_seq,
                detail=f"the head's hash is not link {head_seq}'s: the head was rewritten",
            )
        )


def _beyond(tenant_id: str, bound: int, walk: _Walk) -> None:
    """Links numbered past the head (read now: links committed since the walk began move the head too)."""
    with session_scope() as session:
        head = session.execute(select(HEADS.c.seq).where(HEADS.c.tenant_id == tenant_id)).scalar() or 0
        for source, table in TABLES.items():
            rows = session.execute(
                select(table)
                .where(table.c.tenant_id == tenant_id, table.c.chain_seq > max(head, bound))
                .order_by(table.c.chain_seq)
                .limit(MAX_BREAKS)
            ).all()
            for row in rows:
                walk.add(_brk(source, row, "inserted", f"link {row.chain_seq} is past the chain's head ({head})"))


def _statuses(walk: _Walk) -> None:
    """Each execution's status must be its last recorded change (else its last events were removed, or the
    status was set outside the FSM). A mismatch is read again, status and events in one statement, so a
    change committed while the walk went on is not mistaken for one."""
    ids = sorted(walk.last_change)
    suspects: list[str] = []
    for start in range(0, len(ids), STATUS_CHUNK):
        chunk = ids[start : start + STATUS_CHUNK]
        with session_scope() as session:
            rows = session.execute(
                select(_EXECUTIONS.c.id, _EXECUTIONS.c.status, _EXECUTIONS.c.plan_hash, _EXECUTIONS.c.run_mode).where(
                    _EXECUTIONS.c.id.in_(chunk)
                )
            ).all()
        suspects += [row.id for row in rows if row.status != walk.last_change[row.id][0]]
        for stored in rows:  # what the approval covered: the plan's hash and whether it runs live or dry
            submitted = walk.submitted.get(stored.id)
            if submitted is not None and submitted[:2] != (stored.plan_hash, stored.run_mode):
                walk.add(
                    ChainBreak(
                        execution_id=stored.id,
                        event_id=submitted[2],
                        problem="modified",
                        source=EXECUTION,
                        seq=None,
                        detail="the execution's plan hash or run mode is not the one it was submitted with: "
                        "rewritten in the database",
                    )
                )
    for execution_id in suspects:
        latest = (
            select(EVENTS.c.to_status)
            .where(EVENTS.c.execution_id == execution_id, EVENTS.c.to_status.is_not(None))
            .order_by(EVENTS.c.chain_seq.desc())
            .limit(1)
            .scalar_subquery()
        )
        with session_scope() as session:
            row = session.execute(
                select(_EXECUTIONS.c.status, latest.label("last_change")).where(_EXECUTIONS.c.id == execution_id)
            ).first()
        if row is None or row.status == row.last_change:
            continue
        change, event_id = walk.last_change[execution_id]
        walk.add(
            ChainBreak(
                execution_id=execution_id,
                event_id=event_id,
                problem="deleted",
                source=EXECUTION,
                seq=None,
                detail=f"the execution is {row.status} but its last recorded change is to {change}: events after "
                f"event {event_id} were deleted (or the status was changed outside the FSM)",
            )
        )

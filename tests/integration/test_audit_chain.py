"""The tenant's keyed audit chain (core/audit_links.py, core/ops/audit_chain.py) on SQLite and PostgreSQL:
execution and admin events form one gapless chain that verifies; each tampering done with raw SQL after the
fact (modified, inserted, deleted event; deleted execution; truncated tail; modified admin event; a chain
recomputed with another key) is found and named; concurrent appends never fork or deadlock."""

from __future__ import annotations

import itertools
import threading
import time
from typing import Any

import pytest
from sqlalchemy import delete, insert, select, text, update
from sqlmodel import Session, create_engine

from core import (
    NotFound,
    PermissionDenied,
    Role,
    audit_checkpoint,
    audit_links,
    principal,
    set_member,
    submit,
    verify_chain,
)
from core.audit import record_event
from core.audit_links import ADMIN, ADMIN_EVENTS, CONTENT, EVENTS, EXECUTION, HEADS, TABLES, link_hash
from core.schemas import ChainReport
from db.clock import utcnow
from db.engine import session_scope
from db.enums import ExecutionStatus
from db.tables import Execution, Tenant
from tests.engine_support import link_statements
from tests.factories import noop_plan, raw_execution

_EXECUTIONS = Execution.__table__  # type: ignore[attr-defined]


def _admin() -> Any:
    return principal("admin", "demo")


def _completed_execution(name: str = "n") -> str:
    """A level-0 noop plan: it runs in the caller and ends completed, with a handful of events."""
    result = submit(principal("alice", "demo"), noop_plan(name))
    assert result.execution.status == "completed"
    return result.execution.execution_id


def _tenant_id(name: str = "demo") -> str:
    with session_scope() as session:
        return str(session.execute(select(Tenant.id).where(Tenant.name == name)).scalar_one())  # type: ignore[call-overload]


def _links(tenant_id: str) -> list[tuple[str, Any]]:
    """Every link of the tenant, (source, row), in link-number order."""
    with session_scope() as session:
        rows = [
            (source, row)
            for source, table in TABLES.items()
            for row in session.execute(
                select(table).where(table.c.tenant_id == tenant_id, table.c.chain_seq.is_not(None))
            ).all()
        ]
    return sorted(rows, key=lambda item: item[1].chain_seq)


def _notes(execution_id: str, tenant_id: str, n: int) -> None:
    """``n`` events without a status change, each in its own transaction."""
    for i in range(n):
        with session_scope() as session:
            record_event(
                session, execution_id=execution_id, tenant_id=tenant_id, kind="note", actor="t", message=f"{i}"
            )


def _problems(report: ChainReport) -> list[tuple[str, str]]:
    return [(b.source, b.problem) for b in report.breaks]


def _history() -> tuple[str, str, list[tuple[str, Any]]]:
    """Two completed executions and an admin change between them: one chain of the demo tenant."""
    first = _completed_execution("a")
    set_member(_admin(), "erin", Role.OPERATOR)
    second = _completed_execution("b")
    return first, second, _links(_tenant_id())


def test_execution_and_admin_events_form_one_gapless_chain_that_verifies(db: str) -> None:
    """Numbers 1..N over both tables, each link naming the previous one's hash; verify finds it intact."""
    first, _second, links = _history()
    assert [row.chain_seq for _, row in links] == list(range(1, len(links) + 1))
    assert {source for source, _ in links} == {EXECUTION, ADMIN}
    assert links[0][1].prev_hash is None
    assert all(b.prev_hash == a.hash for (_, a), (_, b) in itertools.pairwise(links))
    with session_scope() as session:
        head = session.execute(select(HEADS).where(HEADS.c.tenant_id == _tenant_id())).one()
    assert (head.seq, head.hash) == (len(links), links[-1][1].hash)
    report = verify_chain(_admin())
    assert report.intact and report.first_break is None, report.breaks
    assert (report.executions, report.links, report.admin_events, report.head_seq) == (2, len(links), 1, len(links))
    one = verify_chain(_admin(), first)
    assert one.intact and one.executions == 1 and one.events == sum(1 for s, r in links if s == EXECUTION
                                                                    and r.execution_id == first)  # fmt: skip
    assert verify_chain(principal("admin", "globex")).links == 0  # another tenant, another chain


def test_a_modified_event_is_named(db: str) -> None:
    """Editing a stored event's message breaks its HMAC: modified, at that event."""
    first, _, links = _history()
    _source, target = next((s, r) for s, r in links if s == EXECUTION and r.execution_id == first and r.chain_seq == 3)
    with session_scope() as session:
        session.execute(update(EVENTS).where(EVENTS.c.id == target.id).values(message="nothing to see here"))
    report = verify_chain(_admin(), first)
    assert _problems(report) == [(EXECUTION, "modified")]
    assert report.first_break is not None
    assert (report.first_break.execution_id, report.first_break.event_id, report.first_break.seq) == (
        first,
        target.id,
        3,
    )


def test_a_modified_admin_event_is_named(db: str) -> None:
    """The admin trail is in the chain: changing who made a change is found."""
    _, _, links = _history()
    admin_row = next(r for s, r in links if s == ADMIN)
    with session_scope() as session:
        session.execute(update(ADMIN_EVENTS).where(ADMIN_EVENTS.c.id == admin_row.id).values(actor="carol"))
    report = verify_chain(_admin())
    assert _problems(report) == [(ADMIN, "modified")]
    assert report.first_break is not None and report.first_break.event_id == admin_row.id


def test_a_deleted_event_leaves_a_gap(db: str) -> None:
    """Deleting an event from the middle: its number is missing."""
    first, _, links = _history()
    _, target = links[2]
    with session_scope() as session:
        session.execute(delete(EVENTS).where(EVENTS.c.id == target.id))
    report = verify_chain(_admin())
    assert report.first_break is not None
    assert (report.first_break.source, report.first_break.problem, report.first_break.seq) == ("chain", "deleted", 3)
    assert not verify_chain(_admin(), first).intact  # the chain is one: the execution's verdict includes the gap


def test_a_deleted_execution_is_found(db: str) -> None:
    """Deleting a whole execution (its events go with it by cascade) leaves its numbers missing."""
    first, _second, links = _history()
    with session_scope() as session:
        session.execute(delete(_EXECUTIONS).where(_EXECUTIONS.c.id == first))
    report = verify_chain(_admin())
    gone = [r.chain_seq for s, r in links if s == EXECUTION and r.execution_id == first]
    assert report.first_break is not None
    assert (report.first_break.problem, report.first_break.seq) == ("deleted", min(gone))
    assert f"links {min(gone)}..{max(gone)} are missing" in report.first_break.detail
    assert report.executions == 1


@pytest.mark.parametrize("kind", ["unnumbered", "duplicate_number", "past_the_head"])
def test_an_inserted_event_is_named(db: str, kind: str) -> None:
    """A row added behind the application's back: without a number, with a link's number (and a made-up
    hash: nobody can compute a valid one without the key), or with a number past the head."""
    first, _, links = _history()
    seq = {"unnumbered": None, "duplicate_number": 4, "past_the_head": len(links) + 1}[kind]
    forged = {
        "execution_id": first,
        "tenant_id": _tenant_id(),
        "kind": "approval",
        "actor": "bob",
        "message": "approved",
        "data_json": "{}",
        "created_at": utcnow(),
        "chain_seq": seq,
        "prev_hash": links[2][1].hash if seq == 4 else (links[-1][1].hash if seq else None),
        "hash": "0" * 64 if seq else None,
    }
    with session_scope() as session:
        if kind == "duplicate_number":  # the unique index would refuse a second row with the number: drop it
            session.execute(text("DROP INDEX ux_execution_events_tenant_chain"))
        new_id = session.execute(insert(EVENTS).values(**forged).returning(EVENTS.c.id)).scalar_one()
    try:
        report = verify_chain(_admin())
        assert (report.first_break.event_id, report.first_break.problem) == (new_id, "inserted")  # type: ignore[union-attr]
        assert _problems(report) == [(EXECUTION, "inserted")]
    finally:
        if kind == "duplicate_number":
            with session_scope() as session:
                session.execute(delete(EVENTS).where(EVENTS.c.id == new_id))
                session.execute(
                    text(
                        "CREATE UNIQUE INDEX ux_execution_events_tenant_chain ON execution_events (tenant_id, chain_seq)"
                    )
                )


def _admin_tail(n: int) -> list[tuple[str, Any]]:
    """The history, then ``n`` admin changes: a tail whose removal no execution's status betrays."""
    _history()
    for i in range(n):
        set_member(_admin(), f"user{i}", Role.OPERATOR)
    return _links(_tenant_id())


def test_a_truncated_tail_is_found_by_the_head(db: str) -> None:
    """Deleting the newest links: the head still says how long the chain was."""
    links = _admin_tail(2)
    with session_scope() as session:
        for source, row in links[-2:]:
            session.execute(delete(TABLES[source]).where(TABLES[source].c.id == row.id))
    report = verify_chain(_admin())
    assert _problems(report) == [("chain", "truncated")]
    assert f"has {len(links)} links but it ends at link {len(links) - 2}" in report.breaks[0].detail


def test_a_truncated_tail_with_a_rewound_head_is_found_by_the_signed_checkpoint(db: str) -> None:
    """Deleting the newest links and setting the head back to what is left: the head agrees, but a checkpoint
    signed before says more; without the checkpoint the same edit goes unseen (why checkpoints ship out)."""
    links = _admin_tail(3)
    keep, tenant_id = links[-4][1], _tenant_id()
    checkpoint = audit_checkpoint(_admin())
    assert checkpoint is not None and checkpoint.seq == len(links)
    with session_scope() as session:
        for source, row in links[-3:]:
            session.execute(delete(TABLES[source]).where(TABLES[source].c.id == row.id))
        session.execute(update(HEADS).where(HEADS.c.tenant_id == tenant_id).values(seq=keep.chain_seq, hash=keep.hash))
    report = verify_chain(_admin())
    assert _problems(report) == [("checkpoint", "truncated")]
    assert report.checkpoint_seq == len(links)
    with session_scope() as session:  # the control: the same edit, no checkpoint
        session.execute(text("DELETE FROM audit_checkpoints"))
    assert verify_chain(_admin()).intact


@pytest.mark.parametrize("key", ["another", "this"])
def test_a_chain_recomputed_without_the_key_fails(db: str, key: str) -> None:
    """Every link rehashed with another key (a forger who knows the algorithm, not the key) is refused as a
    whole; the same recomputation with this installation's key passes (so the forger's only lack is the key)."""
    _, _, links = _history()
    material = b"a guess at the key" if key == "another" else None
    tenant_id = _tenant_id()
    prev = None
    with session_scope() as session:
        for source, row in links:
            table = TABLES[source]
            content = {name: getattr(row, name) for name in CONTENT[source]}
            content["message" if source == EXECUTION else "subject"] = "rewritten history"
            digest = link_hash(source, tenant_id, row.chain_seq, prev, content, material=material)
            session.execute(update(table).where(table.c.id == row.id).values(**content, prev_hash=prev, hash=digest))
            prev = digest
        session.execute(update(HEADS).where(HEADS.c.tenant_id == tenant_id).values(hash=prev))
    report = verify_chain(_admin())
    if key == "this":
        assert report.intact, report.breaks
        return
    assert _problems(report) == [("chain", "wrong_key")]
    assert f"none of the {len(links)} links" in report.breaks[0].detail


def test_a_forged_checkpoint_is_named(db: str) -> None:
    """A checkpoint row whose signature is not the installation's is reported and not trusted."""
    _history()
    assert audit_checkpoint(_admin()) is not None
    with session_scope() as session:
        session.execute(text("UPDATE audit_checkpoints SET event_count = event_count + 1"))
    assert _problems(verify_chain(_admin())) == [("checkpoint", "bad_signature")]


def test_deleting_an_executions_last_events_is_found(db: str) -> None:
    """The completed transition removed from the end of an execution's trail: a gap, and its status says more
    than its trail."""
    first, _, links = _history()
    last = [r for s, r in links if s == EXECUTION and r.execution_id == first][-1]
    with session_scope() as session:
        session.execute(delete(EVENTS).where(EVENTS.c.id == last.id))
    report = verify_chain(_admin(), first)
    problems = {(b.source, b.problem) for b in report.breaks}
    assert {("chain", "deleted"), (EXECUTION, "deleted")} <= problems
    status = next(b for b in report.breaks if b.source == EXECUTION)
    assert status.execution_id == first and "completed" in status.detail


def test_events_from_before_the_chain_are_unchained_not_broken(db: str) -> None:
    """Rows without a number that precede the tenant's first link are counted as unchained; one added after
    the first link is an insertion."""
    with session_scope() as session:
        row = raw_execution(session, ExecutionStatus.RUNNING)
        legacy_only = raw_execution(session, ExecutionStatus.RUNNING)
        execution_id, legacy_id, tenant_id = row.id, legacy_only.id, row.tenant_id
    with session_scope() as session:  # raw rows, as the pre-0008 schema had them (a per-execution SHA-256)
        for target in (execution_id, execution_id, legacy_id):
            session.execute(
                insert(EVENTS).values(
                    execution_id=target, tenant_id=tenant_id, kind="note", message="old", created_at=utcnow(),
                    hash="f" * 64,
                )
            )  # fmt: skip
    _notes(execution_id, tenant_id, 2)
    report = verify_chain(_admin())
    assert report.intact, report.breaks
    assert (report.unchained_events, report.unchained_executions, report.links) == (3, 1, 2)
    with session_scope() as session:
        late = session.execute(
            insert(EVENTS)
            .values(execution_id=legacy_id, tenant_id=tenant_id, kind="note", message="late", created_at=utcnow())
            .returning(EVENTS.c.id)
        ).scalar_one()
    report = verify_chain(_admin())
    assert (report.first_break.event_id, report.first_break.problem) == (late, "inserted")  # type: ignore[union-attr]


def test_an_execution_verdict_leaves_out_other_executions_breaks(db: str) -> None:
    """Verifying one execution keeps its own breaks and the chain's, not another execution's."""
    first, second, links = _history()
    other = next(r for s, r in links if s == EXECUTION and r.execution_id == second)
    with session_scope() as session:
        session.execute(update(EVENTS).where(EVENTS.c.id == other.id).values(actor="mallory"))
    assert verify_chain(_admin(), first).intact
    assert _problems(verify_chain(_admin(), second)) == [(EXECUTION, "modified")]


def test_verify_is_admin_only_and_tenant_scoped(db: str) -> None:
    """An operator may not verify; another tenant's admin does not find the execution."""
    execution_id = _completed_execution()
    with pytest.raises(PermissionDenied):
        verify_chain(principal("alice", "demo"), execution_id)
    with pytest.raises(NotFound):
        verify_chain(principal("admin", "globex"), execution_id)
    assert verify_chain(principal("admin", "globex")).executions == 0


def test_verifying_pages_through_the_chain(db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Links are read a page at a time per table and merged: every one is checked exactly once."""
    monkeypatch.setattr("core.ops.audit_chain.PAGE", 2)
    ids = [_completed_execution(f"n{i}") for i in range(3)]
    set_member(_admin(), "erin", Role.OPERATOR)
    set_member(_admin(), "frank", Role.OPERATOR)
    report = verify_chain(_admin())
    assert report.intact, report.breaks
    assert report.links == report.head_seq == len(_links(_tenant_id())) and report.executions == len(ids)
    assert report.admin_events == 2


def test_a_rolled_back_transaction_leaves_no_link_and_no_gap(db: str) -> None:
    """Events of a transaction that rolls back take no number: the next commit continues the chain."""
    _, _, links = _history()
    with session_scope() as session:
        row = raw_execution(session, ExecutionStatus.RUNNING)
        execution_id, tenant_id = row.id, row.tenant_id
    with pytest.raises(RuntimeError), session_scope() as session:
        record_event(session, execution_id=execution_id, tenant_id=tenant_id, kind="note", actor="t")
        raise RuntimeError("abandon")
    _notes(execution_id, tenant_id, 1)
    after = _links(tenant_id)
    assert [r.chain_seq for _, r in after] == list(range(1, len(links) + 2))
    assert verify_chain(_admin()).intact


@pytest.mark.integration
def test_concurrent_appends_across_executions_are_gapless_and_never_deadlock(postgres_db: str) -> None:
    """8 threads x 25 transactions on PostgreSQL, each locking its own execution row (as a transition does),
    some also a shared one and some writing an admin event, all into one tenant chain: no error (PostgreSQL
    would abort a deadlock), numbers 1..N with no gap or fork, and the chain verifies."""
    threads_n, per_thread = 8, 25
    with session_scope() as session:
        rows = [raw_execution(session, ExecutionStatus.RUNNING) for _ in range(threads_n + 1)]
        ids = [r.id for r in rows]
        tenant_id = rows[0].tenant_id
    shared = ids[-1]
    barrier = threading.Barrier(threads_n)
    errors: list[BaseException] = []
    admin = _admin()

    def work(n: int) -> None:
        from core.admin_audit import record_admin_event

        try:
            barrier.wait()
            for i in range(per_thread):
                with session_scope() as session:
                    mine = ids[n]
                    session.execute(update(_EXECUTIONS).where(_EXECUTIONS.c.id == mine).values(updated_at=utcnow()))
                    record_event(session, execution_id=mine, tenant_id=tenant_id, kind="note", actor=f"t{n}")
                    if i % 3 == 0:  # a row other transactions hold too, locked mid-transaction
                        session.execute(
                            update(_EXECUTIONS).where(_EXECUTIONS.c.id == shared).values(updated_at=utcnow())
                        )
                        record_event(session, execution_id=shared, tenant_id=tenant_id, kind="note", actor=f"t{n}")
                    if i % 5 == 0:
                        record_admin_event(session, admin, "note", f"t{n}-{i}")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(threads_n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors[:3]
    links = _links(tenant_id)
    expected = threads_n * (per_thread + len(range(0, per_thread, 3)) + len(range(0, per_thread, 5)))
    assert [r.chain_seq for _, r in links] == list(range(1, expected + 1))
    assert len({r.prev_hash for _, r in links}) == expected  # no two links claim the same predecessor
    report = verify_chain(admin)
    assert report.intact, report.breaks
    assert report.links == report.head_seq == expected


def test_a_plan_rewritten_with_its_hash_recomputed_is_found(db: str) -> None:
    """plan_hash is a bare SHA-256: a database writer recomputes it (and the approvals' copies) after an edit.
    The submitted event's HMAC vouches for the hash the execution was submitted with: verify compares."""
    first, _second, _ = _history()
    with session_scope() as session:
        session.execute(update(_EXECUTIONS).where(_EXECUTIONS.c.id == first).values(plan_hash="0" * 64))
    report = verify_chain(_admin(), first)
    assert (EXECUTION, "modified") in _problems(report)
    assert "submitted with" in report.breaks[0].detail
    with session_scope() as session:  # approved as a dry run, run live: the run mode is covered as well
        session.execute(update(_EXECUTIONS).where(_EXECUTIONS.c.id == _second).values(run_mode="dry_run"))
    assert any(b.execution_id == _second and "run mode" in b.detail for b in verify_chain(_admin()).breaks)


def test_a_status_set_outside_the_fsm_is_found_once_the_worker_moves_on(db: str) -> None:
    """Skipping a state by hand (pending_approval → approved, no event) shows when the next change is recorded."""
    first, _, links = _history()
    last = [r for s, r in links if s == EXECUTION and r.execution_id == first and r.to_status][-1]
    with session_scope() as session:
        session.execute(update(EVENTS).where(EVENTS.c.id == last.id).values(from_status="pending_approval"))
    assert (EXECUTION, "modified") in _problems(verify_chain(_admin(), first))  # an edit: its HMAC fails
    assert any("outside the FSM" in b.detail for b in verify_chain(_admin(), first).breaks)


def test_events_are_written_linked_at_commit_and_never_inside_a_savepoint(db: str) -> None:
    """An event is not in the table before its transaction commits (it is inserted, linked, at commit); one
    recorded in a savepoint is refused, since the savepoint's rollback could not take it back."""
    with session_scope() as session:
        row = raw_execution(session, ExecutionStatus.RUNNING)
        execution_id, tenant_id = row.id, row.tenant_id
    with session_scope() as session:
        record_event(session, execution_id=execution_id, tenant_id=tenant_id, kind="note", actor="t", message="a")
        assert session.execute(select(EVENTS.c.id).where(EVENTS.c.execution_id == execution_id)).all() == []
    with session_scope() as session:
        [(seq, digest)] = session.execute(
            select(EVENTS.c.chain_seq, EVENTS.c.hash).where(EVENTS.c.execution_id == execution_id)
        ).all()
    assert seq is not None and digest is not None
    with session_scope() as session:
        savepoint = session.begin_nested()
        with pytest.raises(RuntimeError, match="savepoint"):
            record_event(session, execution_id=execution_id, tenant_id=tenant_id, kind="note", actor="t")
        savepoint.rollback()
    assert verify_chain(_admin()).intact


@pytest.mark.integration
def test_a_process_that_moved_the_head_links_onto_it_in_one_statement(postgres_db: str) -> None:
    """PostgreSQL: the first transaction locks the head, then links; the next ones of this process link onto
    the head they left, in one statement (no lock first), and the chain verifies."""
    with session_scope() as session:
        row = raw_execution(session, ExecutionStatus.RUNNING)
        execution_id, tenant_id = row.id, row.tenant_id
    first = link_statements(lambda: _notes(execution_id, tenant_id, 1))
    then = link_statements(lambda: _notes(execution_id, tenant_id, 3))
    assert first[-2:] == ["locked", "linked"] or first == ["tried"]  # a head left by the fixture's own writes
    assert then == ["tried"] * 3  # each onto the head the one before left: no second statement
    assert verify_chain(_admin()).intact


@pytest.mark.integration
def test_a_head_moved_by_another_process_or_a_rollback_is_never_linked_onto(postgres_db: str) -> None:
    """The head this process remembers is stale twice: another process (its own engine) moved it, then a
    transaction of ours linked and rolled back. Each time the one-statement link writes nothing, locks the head
    and reads it, and the events are linked onto that head: gapless, no fork, and the chain verifies."""
    with session_scope() as session:
        row = raw_execution(session, ExecutionStatus.RUNNING)
        execution_id, tenant_id = row.id, row.tenant_id
    _notes(execution_id, tenant_id, 2)  # this process now knows the head
    other = create_engine(postgres_db)  # another worker process: its own pool, its own memory of heads
    try:
        with Session(other) as session:
            record_event(session, execution_id=execution_id, tenant_id=tenant_id, kind="note", actor="other")
            session.commit()
    finally:
        other.dispose()
    # The try finds another head: it writes nothing, locks that head and reads it; the events go onto it.
    assert link_statements(lambda: _notes(execution_id, tenant_id, 1)) == ["tried", "linked"]
    with session_scope() as session:  # linked, then rolled back: the head it moved never existed
        record_event(session, execution_id=execution_id, tenant_id=tenant_id, kind="note", actor="t")
        session.flush()
        audit_links._link_before_commit(session)
        session.rollback()
    # The head it remembers is the ghost: the try writes nothing, and the events go onto the real head.
    assert link_statements(lambda: _notes(execution_id, tenant_id, 1)) == ["tried", "linked"]
    links = _links(tenant_id)
    assert [r.chain_seq for _, r in links] == list(range(1, len(links) + 1))
    assert len({r.prev_hash for _, r in links}) == len(links)
    assert verify_chain(_admin()).intact


@pytest.mark.integration
def test_two_processes_appending_at_once_never_fork_the_chain(postgres_db: str) -> None:
    """Two engines (two processes' pools and memories of the head) x 3 threads x 20 transactions into one
    tenant chain: each misses the head the other moved and links onto the one it finds; numbers 1..N, no fork,
    it verifies, and no transaction sent more than two statements about the head."""
    with session_scope() as session:
        rows = [raw_execution(session, ExecutionStatus.RUNNING) for _ in range(6)]
        ids, tenant_id = [r.id for r in rows], rows[0].tenant_id
    _notes(ids[0], tenant_id, 1)  # the tenant's head row exists (a first link creates it: statements of its own)
    before = len(_links(tenant_id))
    engines = [create_engine(postgres_db, pool_size=3), create_engine(postgres_db, pool_size=3)]
    barrier = threading.Barrier(6)
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            barrier.wait()
            for i in range(20):
                with Session(engines[n % 2]) as session:
                    record_event(session, execution_id=ids[n], tenant_id=tenant_id, kind="note", actor=f"t{n}-{i}")
                    session.commit()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(6)]

    def run() -> None:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    try:
        sent = link_statements(run)
    finally:
        for engine in engines:
            engine.dispose()
    assert not errors, errors[:3]
    # Two at most per transaction, hit or miss (a miss cost three before the try locked what it found).
    assert sent.count("tried") + sent.count("locked") == 120
    assert len(sent) <= 2 * 120
    links = _links(tenant_id)
    assert [r.chain_seq for _, r in links] == list(range(1, before + 120 + 1))
    assert len({r.prev_hash for _, r in links}) == len(links)
    report = verify_chain(_admin())
    assert report.intact, report.breaks


@pytest.mark.integration
def test_threads_of_one_process_take_turns_and_each_links_in_one_statement(postgres_db: str) -> None:
    """4 threads x 10 transactions of one process into one tenant: they take turns at the head, so after the
    first transaction every one links onto the head the one before left (one statement, no lock first)."""
    with session_scope() as session:
        rows = [raw_execution(session, ExecutionStatus.RUNNING) for _ in range(4)]
        ids, tenant_id = [r.id for r in rows], rows[0].tenant_id
    _notes(ids[0], tenant_id, 1)
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            barrier.wait()
            _notes(ids[n], tenant_id, 10)
        except BaseException as exc:
            errors.append(exc)

    def run() -> None:
        threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    assert link_statements(run) == ["tried"] * 40
    assert not errors, errors[:3]
    assert verify_chain(_admin()).intact


@pytest.mark.integration
def test_a_turn_held_too_long_delays_another_transaction_but_never_stops_it(postgres_db: str) -> None:
    """A transaction of this process holds the tenant's turn and does not end; another one waits for the turn
    only ``TURN_WAIT_S``, then links the locking way: committed, chained, nothing hangs."""
    with session_scope() as session:
        row = raw_execution(session, ExecutionStatus.RUNNING)
        execution_id, tenant_id = row.id, row.tenant_id
    _notes(execution_id, tenant_id, 1)
    with session_scope() as holder:
        holder.execute(text("SELECT 1"))  # a transaction in progress, as at a commit: the turn ends with it
        assert audit_links._HEADS.take_turn(holder, tenant_id)
        started = time.monotonic()
        done = threading.Thread(target=_notes, args=(execution_id, tenant_id, 1))
        done.start()
        done.join(timeout=30)
        assert not done.is_alive()
        assert time.monotonic() - started >= audit_links._Heads.TURN_WAIT_S
    links = _links(tenant_id)
    assert [r.chain_seq for _, r in links] == list(range(1, len(links) + 1))
    assert verify_chain(_admin()).intact

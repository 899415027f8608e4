"""Attacks on issue 15's fifth cuts, from the failure side, on the real PostgreSQL and Redis (and real processes where
it matters): the prepared statements' kept connection and reused psycopg cursor (db/prepared.py), the reused watcher
threads (core/engine/watch_threads.py), the one-statement priority pick (core/engine/outbox.py ``pick``), the missed
one-statement audit link (core/audit_links.py) and the waking Redis consumer (jobs/consumer.py).

Each test tries to make an invariant fail at the worst moment it can reach (a connection killed while it idles in the
pool, a session's connection handed to another session, a fork while the idle list is locked, a backend killed
between a missed link and its second statement, writer processes whose backends are killed at random, a consumer
whose every message is nacked) and holds the outcome to DESIGN §3, §13 and §15."""

from __future__ import annotations

import gc
import os
import random
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict
from sqlalchemy import Column, Integer, MetaData, String, Table, and_, bindparam, create_engine, event, select, text
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from core import add_asset, approve, audit_links, principal, set_secret, submit
from core.actions.context import ActionResult, StepContext
from core.actions.registry import ActionType, _registry, register
from core.audit import record_event
from core.engine import outbox, watch_threads
from core.engine.claim import StepPlan
from core.logs import current_fields, log_context, set_trace_id
from db.clock import utcnow
from db.engine import get_engine, session_scope
from db.enums import ActionClass, Connection, ExecutionStatus
from db.prepared import _CURSOR, Prepared
from db.settings import get_settings
from tests.audit_support import assert_chain_sound, running_execution, turn_free
from tests.engine_support import delete_namespace, drive, link_statements, recording_dispatcher, wait_until
from tests.factories import raw_execution

REPO = Path(__file__).resolve().parents[2]

# -- 1. db/prepared.py: the kept connection and the reused cursor -------------------------------------------------

_META = MetaData()
PROBE = Table(
    "fifth_probe",
    _META,
    Column("id", Integer, primary_key=True),
    Column("note", String, nullable=False),
)
SELECT_ALL = Prepared(select(PROBE.c.id, PROBE.c.note).order_by(PROBE.c.id))
SELECT_ONE = Prepared(select(PROBE.c.note).where(PROBE.c.id == bindparam("probe_id")))
TOUCH = Prepared(PROBE.update().where(PROBE.c.id == bindparam("probe_id")).values(note=bindparam("note")))
INSERT = Prepared(PROBE.insert().values(id=bindparam("probe_id"), note=bindparam("note")))
BACKEND = Prepared(select(text("pg_backend_pid()")))
TXID = Prepared(select(text("txid_current()")))


def _probe() -> Iterator[None]:
    engine = get_engine()
    _META.create_all(engine)
    with session_scope() as session:
        session.execute(PROBE.insert(), [{"id": 1, "note": "one"}, {"id": 2, "note": "two"}])
    yield
    _META.drop_all(engine)


@pytest.fixture
def probe(db: str) -> Iterator[None]:
    yield from _probe()


@pytest.fixture
def pg_probe(postgres_db: str) -> Iterator[str]:
    for _ in _probe():
        yield postgres_db


def test_a_reused_cursor_hands_no_rows_of_one_statement_to_the_next(probe: None) -> None:
    """A statement whose rows were never read (``rowcount`` on a SELECT) leaves them on psycopg's kept cursor: the
    next statement's rows are its own only, an UPDATE without RETURNING gives none, across statements and
    transactions."""
    with session_scope() as session:
        SELECT_ALL.rowcount(session, {})  # rows left unread on the cursor (pysqlite counts no SELECT: -1)
        assert TOUCH.rows(session, {"probe_id": 1, "note": "x"}) == []  # no rows: not the SELECT's
        assert SELECT_ONE.rows(session, {"probe_id": 2}) == [("two",)]
        assert SELECT_ONE.rows(session, {"probe_id": 99}) == []
        SELECT_ALL.rowcount(session, {})
    with session_scope() as session:  # the next transaction, maybe the same connection and cursor
        assert SELECT_ONE.first(session, {"probe_id": 99}) is None
        assert TOUCH.rowcount(session, {"probe_id": 99, "note": "y"}) == 0
        assert SELECT_ALL.rows(session, {}) == [(1, "x"), (2, "two")]


# Regression (found by this file, fixed in db/prepared.py): the kept connection was keyed by the root
# transaction, and SQLAlchemy sends a savepoint's SAVEPOINT only when the nested transaction is first asked for
# its connection; a prepared statement inside ``begin_nested()`` after one outside it ran outside the savepoint
# (its rollback undid nothing; on PostgreSQL an error in it aborted the whole transaction). The cache is keyed
# by the innermost transaction now.


def test_a_prepared_write_inside_a_savepoint_is_undone_by_the_savepoints_rollback(probe: None) -> None:
    """The outer transaction has run a prepared statement (its connection is kept); a prepared write inside a
    savepoint must be undone by that savepoint's rollback, as the same write through the session is."""
    sent: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        sent.append(statement.split()[0] + (" " + statement.split()[1] if " " in statement else ""))

    event.listen(get_engine(), "before_cursor_execute", seen)
    try:
        with session_scope() as session:
            TOUCH.rowcount(session, {"probe_id": 1, "note": "outer"})
            savepoint = session.begin_nested()
            TOUCH.rowcount(session, {"probe_id": 2, "note": "undone"})
            savepoint.rollback()
    finally:
        event.remove(get_engine(), "before_cursor_execute", seen)
    with session_scope() as session:
        assert SELECT_ALL.rows(session, {}) == [(1, "outer"), (2, "two")], f"statements sent: {sent}"


def test_a_failed_statement_in_a_savepoint_leaves_the_outer_transaction_a_working_cursor(probe: None) -> None:
    """A prepared INSERT fails inside a savepoint (its cursor is dropped); after the savepoint's rollback the outer
    transaction's next prepared statements run, in that transaction, and see its own earlier write."""
    with session_scope() as session:
        TOUCH.rowcount(session, {"probe_id": 1, "note": "outer"})
        with pytest.raises(IntegrityError), session.begin_nested():
            INSERT.rowcount(session, {"probe_id": 1, "note": "dup"})
        assert SELECT_ONE.scalar(session, {"probe_id": 1}) == "outer"
        INSERT.rowcount(session, {"probe_id": 3, "note": "three"})
    with session_scope() as session:
        assert SELECT_ALL.rows(session, {}) == [(1, "outer"), (2, "two"), (3, "three")]


@pytest.mark.integration
def test_a_connection_handed_to_another_session_runs_each_statement_in_the_current_transaction(
    pg_probe: str,
) -> None:
    """A pool of one connection: session A's transaction ends (rollback, then commit), session B takes the same
    DB-API connection (and its kept cursor) while A stays open; every prepared statement runs in the transaction its
    session holds at that moment, never in the other session's, never in an ended one."""
    engine = create_engine(pg_probe, pool_size=1, max_overflow=0, pool_timeout=5)
    try:
        a, b = Session(engine), Session(engine)
        TOUCH.rowcount(a, {"probe_id": 1, "note": "a-undone"})
        a_tx = TXID.scalar(a, {})
        a.rollback()  # the connection goes back to the pool; A keeps its info
        TOUCH.rowcount(b, {"probe_id": 2, "note": "b"})  # B: the same DB-API connection
        b_tx = TXID.scalar(b, {})
        assert b_tx != a_tx
        assert SELECT_ONE.scalar(b, {"probe_id": 1}) == "one"  # A's write was rolled back, not inherited
        b.commit()
        assert SELECT_ONE.scalar(a, {"probe_id": 2}) == "b"  # A's new transaction sees B's commit
        assert TXID.scalar(a, {}) not in {a_tx, b_tx}
        INSERT.rowcount(a, {"probe_id": 5, "note": "a"})
        a.close()  # closed without commit: undone
        b2 = Session(engine)
        assert SELECT_ONE.first(b2, {"probe_id": 5}) is None
        b2.close()
    finally:
        engine.dispose()


@pytest.mark.integration
def test_a_session_handed_to_another_thread_keeps_its_transaction(pg_probe: str) -> None:
    """A session's transaction is continued by another thread (handed over, never used at once): the prepared
    statements of both threads run in that one transaction, and its rollback undoes both."""
    session = Session(get_engine())
    try:
        TOUCH.rowcount(session, {"probe_id": 1, "note": "first-thread"})
        first = TXID.scalar(session, {})
        seen: list[Any] = []

        def other() -> None:
            TOUCH.rowcount(session, {"probe_id": 2, "note": "second-thread"})
            seen.append(TXID.scalar(session, {}))

        worker = threading.Thread(target=other)
        worker.start()
        worker.join(10)
        assert seen == [first]
        session.rollback()
    finally:
        session.close()
    with session_scope() as check:
        assert SELECT_ALL.rows(check, {}) == [(1, "one"), (2, "two")]


@pytest.mark.integration
def test_a_connection_killed_while_idle_in_the_pool_is_replaced_with_a_new_cursor(pg_probe: str) -> None:
    """The server ends a pooled connection whose kept psycopg cursor is in the pool's info (an idle backend killed
    by an admin or a failover): the next transactions reconnect and their prepared statements run on a cursor of the
    new connection; the kept cursor of the dead one is never used again (it would fail every statement)."""
    engine = create_engine(pg_probe, pool_size=1, max_overflow=0)  # no ping on checkout: the statement meets it
    killer = create_engine(pg_probe, poolclass=NullPool)
    try:
        with Session(engine) as session:
            old_pid = BACKEND.scalar(session, {})
            session.commit()
        with killer.connect() as conn:
            assert conn.execute(text("SELECT pg_terminate_backend(:p, 10000)"), {"p": old_pid}).scalar()
        failures = 0
        for _ in range(3):
            try:
                with Session(engine) as session:
                    pid = BACKEND.scalar(session, {})
                    assert SELECT_ONE.scalar(session, {"probe_id": 1}) == "one"
                    session.commit()
                break
            except OperationalError as exc:
                assert exc.connection_invalidated
                failures += 1
        assert failures <= 1, "the dead connection's cursor stayed in use"
        assert pid != old_pid
        with engine.connect() as conn:
            fairy = conn.connection
            kept = fairy.info.get(_CURSOR)
            assert kept is not None and kept[0] is fairy.dbapi_connection and kept[1].connection is kept[0]
    finally:
        engine.dispose()
        killer.dispose()


@pytest.mark.integration
def test_two_sessions_at_once_each_use_the_cursor_of_their_own_connection(pg_probe: str) -> None:
    """Two sessions hold a connection each at the same time: each kept cursor belongs to its own DB-API connection
    (a cursor of the other would run a statement in the other's transaction)."""
    a, b = Session(get_engine()), Session(get_engine())
    try:
        a_pid, b_pid = BACKEND.scalar(a, {}), BACKEND.scalar(b, {})
        assert a_pid != b_pid
        TOUCH.rowcount(a, {"probe_id": 1, "note": "a"})
        assert SELECT_ONE.scalar(b, {"probe_id": 1}) == "one"  # not a's uncommitted write
        for session in (a, b):
            fairy = session.connection().connection
            kept = fairy.info[_CURSOR]
            assert kept[1].connection is fairy.dbapi_connection
    finally:
        a.rollback()
        a.close()
        b.close()


# -- 2. core/engine/watch_threads.py: reused watcher threads ------------------------------------------------------

SECRET = "fifth-S3cr3t-7f3a1c"


class HolderParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    value: str


class Holder(ActionType):
    """A step that is given a secret and does nothing with it."""

    name = "fifth_holder"
    params_model = HolderParams
    default_class = ActionClass.READ

    def run(self, ctx: StepContext) -> ActionResult:
        return ActionResult(ok=True)


@pytest.fixture
def holder() -> Iterator[None]:
    register(Holder)
    yield
    _registry.pop("fifth_holder", None)


def _watcher_frames_holding(execution_id: str) -> list[str]:
    """The watcher threads whose stack still references a StepPlan of ``execution_id``."""
    names = {t.ident: t.name for t in threading.enumerate()}
    found = []
    for ident, frame in sys._current_frames().items():
        f: Any = frame
        while f is not None:
            for value in f.f_locals.values():
                args = getattr(value, "args", ())
                if any(isinstance(a, StepPlan) and a.execution_id == execution_id for a in args):
                    found.append(f"{names.get(ident)} ({f.f_code.co_name})")
            f = f.f_back
    return found


@pytest.mark.integration
def test_an_idle_watcher_thread_keeps_nothing_of_the_step_it_watched(postgres_db: str, holder: None) -> None:
    """After a step ends, its plan (the resolved secret in ``params``, the asset's ``credential``) must leave
    memory with it: core/engine/steps.py closes the masker "the step is over: its secret values leave memory
    with it". A watcher thread that goes back to the idle list must not keep the finished step's plan."""
    # Regression (found by this file, fixed in core/engine/watch_threads.py): an idle watcher thread kept the
    # finished step's job (the partial holding its StepPlan) bound while it waited for the next step.
    set_secret(principal("admin", "demo"), "fifth_token", SECRET)
    plan = (
        "name: hold\nsteps:\n"
        "  - {name: only, action: fifth_holder, target: localhost, params: {value: '{{ secret:fifth_token }}'}}\n"
    )
    execution_id = submit(principal("alice", "demo"), plan, background=True).execution.execution_id
    approve(principal("bob", "demo"), execution_id)
    with recording_dispatcher():
        drive(execution_id, worker_id="fifth-worker")
    wait_until(lambda: watch_threads.idle_count() >= 1, 10, "the watcher to go back to the idle list")
    gc.collect()
    kept = [o for o in gc.get_objects() if isinstance(o, StepPlan) and o.execution_id == execution_id]
    assert not kept, (
        f"{len(kept)} finished StepPlan(s) still alive, params holding the secret: "
        f"{any(SECRET in str(p.params) for p in kept)}; held by {_watcher_frames_holding(execution_id)}"
    )


def test_one_steps_log_context_never_reaches_the_next_steps_watcher() -> None:
    """Step A's watcher runs in a copy of A's context and changes it (a trace id set without reset); step B's
    watcher, on the same reused thread, sees B's fields only; and the thread itself is left with none."""
    seen: list[tuple[str, dict[str, Any], int]] = []

    def watcher(tag: str) -> None:
        seen.append((tag, current_fields(), threading.get_ident()))
        set_trace_id(f"leaked-by-{tag}")  # set, never reset: stays in the context it ran in

    def bare() -> None:  # a job started without a copied context: the thread's own
        seen.append(("bare", current_fields(), threading.get_ident()))

    import contextvars
    from functools import partial

    with log_context(execution_id="exec-A", step=0, tenant="t-A", trace_id="trace-A"):
        assert watch_threads.start(partial(contextvars.copy_context().run, watcher, "A"), name="opsc-watch").join(5)
    wait_until(lambda: watch_threads.idle_count() >= 1, 10, "the watcher to rest")
    with log_context(execution_id="exec-B", step=3):
        assert watch_threads.start(partial(contextvars.copy_context().run, watcher, "B"), name="opsc-watch").join(5)
    wait_until(lambda: watch_threads.idle_count() >= 1, 10, "the watcher to rest")
    assert watch_threads.start(bare, name="opsc-watch").join(5)
    (_, a, _), (_, b, _), (_, own, _) = seen
    assert (a["execution_id"], a["step"], a["tenant"], a["trace_id"]) == ("exec-A", 0, "t-A", "trace-A")
    assert (b["execution_id"], b["step"], b["tenant"], b["trace_id"]) == ("exec-B", 3, None, None)
    assert (own["execution_id"], own["step"], own["trace_id"]) == (None, None, None)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork")
def test_a_fork_while_another_thread_holds_the_idle_list_gives_the_child_working_watchers() -> None:
    """Dramatiq forks while a parent thread is inside ``start`` (holding the idle list's lock): the child must not
    deadlock on that lock, must not be handed a parent's (absent) thread, and every step it runs gets a watcher."""
    assert watch_threads.start(lambda: None, name="opsc-watch").join(5)
    wait_until(lambda: watch_threads.idle_count() >= 1, 10, "the watcher to rest")
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        with watch_threads._lock:
            holding.set()
            release.wait(10)

    holder_thread = threading.Thread(target=hold)
    holder_thread.start()
    assert holding.wait(5)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            ran: list[int] = []
            watching = [watch_threads.start(lambda: ran.append(1), name="opsc-watch") for _ in range(3)]
            ok = watch_threads.idle_count() <= 3 and all(w.join(5) for w in watching) and len(ran) == 3
            os.write(write, b"1" if ok else b"0")
        finally:
            os._exit(0)
    os.close(write)
    release.set()
    holder_thread.join(5)
    try:
        got = b""
        deadline = time.monotonic() + 20
        import select as select_module

        while not got and time.monotonic() < deadline:
            ready, _, _ = select_module.select([read], [], [], 0.5)
            if ready:
                got = os.read(read, 1) or b"0"
        assert got == b"1", "the forked child could not watch its steps"
    finally:
        os.close(read)
        os.waitpid(pid, 0)


@pytest.fixture
def heartbeats(postgres_db: str, monkeypatch: pytest.MonkeyPatch, holder: None) -> Iterator[str]:
    monkeypatch.setenv("OPSC_WATCH_INTERVAL_S", "0.02")
    monkeypatch.setenv("OPSC_HEARTBEAT_S", "0.05")
    monkeypatch.setenv("OPSC_LEASE_TTL_S", "2")
    get_settings.cache_clear()
    yield postgres_db
    get_settings.cache_clear()


class SleepyParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    gate: str


_GATES: dict[str, threading.Event] = {}


class Sleepy(ActionType):
    """Waits for its gate (a test event) or its stop."""

    name = "fifth_sleepy"
    params_model = SleepyParams
    default_class = ActionClass.READ

    def run(self, ctx: StepContext) -> ActionResult:
        gate = _GATES[ctx.params["gate"]]
        while not gate.wait(0.01):
            if ctx.stop.is_set():
                return ActionResult(ok=False, stopped=True)
        return ActionResult(ok=True)


@pytest.mark.integration
def test_every_step_running_at_once_has_its_lease_renewed(heartbeats: str) -> None:
    """More steps at once than are likely idle watcher threads, one of whose watchers raises first (a thread that
    died is never handed a step): while they all run, every step's lease keeps moving forward (a heartbeat from a
    watcher of its own), none is stopped, and all complete."""
    from core import engine as core_engine

    register(Sleepy)
    gate = threading.Event()
    _GATES["all"] = gate
    previous_hook = threading.excepthook
    threading.excepthook = lambda args: None
    try:
        assert watch_threads.start(lambda: 1 / 0, name="opsc-watch").join(5)  # a watcher that raises
    finally:
        threading.excepthook = previous_hook
    count = 6
    ids = []
    for n in range(count):  # an asset each: one plan at a time per asset (DESIGN §3.9)
        add_asset(principal("admin", "demo"), f"fifth-hb-{n}", Connection.LOCAL)
        plan = (
            f"name: hb{n}\nsteps:\n  - {{name: s, action: fifth_sleepy, target: fifth-hb-{n}, params: {{gate: all}}}}\n"
        )
        execution_id = submit(principal("alice", "demo"), plan, background=True).execution.execution_id
        ids.append(execution_id)  # a level-0 read plan: queued at once, no approval
    outcomes: dict[str, Any] = {}
    threads = [
        threading.Thread(target=lambda e=e: outcomes.__setitem__(e, core_engine.process(e, worker_id=f"w-{e[:6]}")))
        for e in ids
    ]
    try:
        with recording_dispatcher():
            for thread in threads:
                thread.start()
            first: dict[str, Any] = {}

            def leases() -> dict[str, Any]:
                with session_scope() as session:
                    rows = session.execute(
                        select(outbox.QUEUE.c.execution_id, outbox.QUEUE.c.lease_expires_at).where(
                            outbox.QUEUE.c.execution_id.in_(ids)
                        )
                    ).all()
                return {r[0]: r[1] for r in rows if r[1] is not None}

            wait_until(lambda: len(first.update(leases()) or first) == count, 20, "every step to hold its lease")
            wait_until(
                lambda: all(v is not None and v > first[k] for k, v in leases().items()) and len(leases()) == count,
                20,
                "every running step's lease to be renewed",
            )
            gate.set()
            for thread in threads:
                thread.join(30)
        assert not any(t.is_alive() for t in threads)
        with session_scope() as session:
            statuses = {
                r[0]: r[1]
                for r in session.execute(text("SELECT id, status FROM executions WHERE id = ANY(:i)"), {"i": ids})
            }
        assert set(statuses.values()) == {"completed"}, statuses
    finally:
        gate.set()
        _registry.pop("fifth_sleepy", None)
        _GATES.pop("all", None)


# -- 3. core/engine/outbox.py pick: one statement instead of two -------------------------------------------------

QUEUE = outbox.QUEUE


def _old_pick(session: Any, execution_id: str, message_id: str, now: Any) -> tuple[str, str | None]:
    """The two-statement pick of 2461ac3^, verbatim in its logic: the reference the new one must equal."""
    free = (
        QUEUE.c.lease_token.is_(None),
        QUEUE.c.available_at <= bindparam("p_now"),
        QUEUE.c.waiting_for_asset_id.is_(None),
    )
    own_q = select(QUEUE.c.execution_id, QUEUE.c.sort_at, and_(*free).label("free")).where(
        QUEUE.c.message_id == bindparam("p_message_id")
    )
    best_q = (
        select(QUEUE.c.execution_id, QUEUE.c.sort_at, QUEUE.c.message_id, QUEUE.c.dispatched_at)
        .where(
            QUEUE.c.sort_at < bindparam("p_sort_at", type_=QUEUE.c.sort_at.type),
            QUEUE.c.execution_id != bindparam("p_execution_id"),
            *free,
        )
        .order_by(QUEUE.c.sort_at)
        .limit(1)
    )
    own = session.execute(own_q, {"p_message_id": message_id, "p_now": now}).first()
    if own is None:
        return execution_id, None
    if not own.free or own.sort_at is None:
        return own.execution_id, None
    best = session.execute(best_q, {"p_sort_at": own.sort_at, "p_now": now, "p_execution_id": own.execution_id}).first()
    if best is None or (own.sort_at - best.sort_at).total_seconds() <= outbox.pick_margin_s():
        return own.execution_id, None
    return own.execution_id, best.execution_id


def test_the_one_statement_pick_picks_exactly_what_the_two_statements_picked(
    db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Random queues of two tenants' rows (leased, leased-but-expired, not yet due, in an asset's line, without a
    sort_at, without a message), every message of every queue: the new pick returns the row the old two statements
    returned, and what it picks is always another free, due, unlined row that sorts first by more than the margin."""
    now = utcnow().replace(microsecond=0)
    monkeypatch.setattr(outbox, "utcnow", lambda: now)
    rng = random.Random(20261208)
    with session_scope() as session:
        executions = [
            raw_execution(session, ExecutionStatus.QUEUED, tenant="demo" if n % 2 else "globex") for n in range(12)
        ]
        ids = [(e.id, e.tenant_id) for e in executions]
        session.execute(
            QUEUE.insert(),
            [{"id": uuid.uuid4().hex, "execution_id": e, "tenant_id": t, "sla_class": "fast"} for e, t in ids],
        )
    margin = outbox.pick_margin_s()
    checked = picked = 0
    for _ in range(12):
        states = []
        offsets = rng.sample(range(-600, 600, 7), len(ids))  # distinct sort_at: no ties
        for (execution_id, _tenant), offset in zip(ids, offsets, strict=True):
            kind = rng.choice(["free", "free", "free", "leased", "expired", "later", "line", "nosort", "nomsg"])
            states.append(
                {
                    "e": execution_id,
                    "lease_token": "tok" if kind in ("leased", "expired") else None,
                    "lease_expires_at": now - timedelta(seconds=30) if kind == "expired" else None,
                    "available_at": now + timedelta(seconds=5) if kind == "later" else now - timedelta(seconds=1),
                    "waiting_for_asset_id": "asset-x" if kind == "line" else None,
                    "sort_at": None if kind == "nosort" else now + timedelta(seconds=offset),
                    "message_id": None if kind == "nomsg" else uuid.uuid4().hex,
                }
            )
        with session_scope() as session:
            session.execute(
                QUEUE.update()
                .where(QUEUE.c.execution_id == bindparam("e"))
                .values(
                    lease_token=bindparam("lease_token"),
                    lease_expires_at=bindparam("lease_expires_at"),
                    available_at=bindparam("available_at"),
                    waiting_for_asset_id=bindparam("waiting_for_asset_id"),
                    sort_at=bindparam("sort_at"),
                    message_id=bindparam("message_id"),
                ),
                states,
            )
        by_id = {s["e"]: s for s in states}
        free = [
            s
            for s in states
            if s["lease_token"] is None and s["available_at"] <= now and s["waiting_for_asset_id"] is None
        ]
        with session_scope() as session:
            for state in states:
                message = state["message_id"] or "no-such-message"
                new_own, chosen = outbox.pick(session, state["e"], message)
                old_own, old_best = _old_pick(session, state["e"], message, now)
                assert (new_own, chosen.picked if chosen else None) == (old_own, old_best), state
                checked += 1
                if chosen is None:
                    continue
                picked += 1
                best = by_id[chosen.picked]
                assert chosen.picked != state["e"] and best in free and state in free
                assert (state["sort_at"] - best["sort_at"]).total_seconds() > margin
                assert best["sort_at"] == min(s["sort_at"] for s in free if s["sort_at"] is not None)
                assert chosen.picked_message_id == best["message_id"]
    assert checked == 12 * len(ids) and picked > 0  # the attack reached the pick


# -- 4. core/audit_links.py: the missed one-statement link -----------------------------------------------------


def _note(execution_id: str, tenant_id: str, actor: str = "t") -> None:
    with session_scope() as session:
        record_event(session, execution_id=execution_id, tenant_id=tenant_id, kind="note", actor=actor)


@pytest.mark.integration
def test_a_backend_killed_between_the_missed_link_and_its_second_statement_keeps_the_chain(postgres_db: str) -> None:
    """Another engine (another worker's memory) moves the head, so this process's one-statement link misses and
    locks the head; the server connection is killed before the second statement links the events onto it. The
    transaction fails, the turn is free, nothing of it is in the chain, and the next link goes onto the real head."""
    execution_id, tenant_id = running_execution()
    _note(execution_id, tenant_id)
    _note(execution_id, tenant_id)  # this process remembers the head
    before = assert_chain_sound("demo")
    other = create_engine(postgres_db, pool_size=1)
    killer = create_engine(postgres_db, poolclass=NullPool)
    try:
        with Session(other) as session:  # the other worker moves the head: this process's memory is stale
            record_event(session, execution_id=execution_id, tenant_id=tenant_id, kind="note", actor="other")
            session.commit()
        sent: list[str] = []

        def kill_on_second(conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
            head = statement.lstrip()
            if "audit_heads" not in head:
                return
            sent.append(head[:10])
            if head.startswith("WITH linked") and len(sent) == 2:
                pid = conn.connection.dbapi_connection.info.backend_pid
                with killer.connect() as k:
                    assert k.execute(text("SELECT pg_terminate_backend(:p, 10000)"), {"p": pid}).scalar()

        event.listen(get_engine(), "before_cursor_execute", kill_on_second)
        try:
            with pytest.raises(DBAPIError), session_scope() as session:
                record_event(session, execution_id=execution_id, tenant_id=tenant_id, kind="note", actor="killed")
        finally:
            event.remove(get_engine(), "before_cursor_execute", kill_on_second)
        assert [s[:9] for s in sent] == ["WITH head", "WITH link"]  # missed, then the second statement met the kill
        assert turn_free(tenant_id)
        assert assert_chain_sound("demo") == before + 1  # the other's link only
        then = link_statements(lambda: _note(execution_id, tenant_id, "after"))
        assert then == ["tried", "linked"]  # still stale: missed, locked, linked onto the real head
        assert link_statements(lambda: _note(execution_id, tenant_id, "again")) == ["tried"]
        assert assert_chain_sound("demo") == before + 3
    finally:
        other.dispose()
        killer.dispose()


@pytest.mark.integration
def test_a_missed_link_waits_for_the_head_holder_and_links_onto_what_it_committed(postgres_db: str) -> None:
    """The other engine holds the head's row lock (it has linked, not yet committed) while this process tries its
    remembered head: the try waits, then finds the head the other committed (not the one it remembered, not one
    rolled back), and links onto it. Then the same with the holder rolling back: the try links onto the old head."""
    execution_id, tenant_id = running_execution()
    _note(execution_id, tenant_id)
    before = assert_chain_sound("demo")
    other = create_engine(postgres_db, pool_size=1)
    try:
        for outcome in ("commit", "rollback"):
            holder_session = Session(other)
            record_event(holder_session, execution_id=execution_id, tenant_id=tenant_id, kind="note", actor="holder")
            holder_session.flush()
            audit_links._link_before_commit(holder_session)  # linked: the head row is locked, uncommitted
            done = threading.Event()
            errors: list[BaseException] = []

            def mine(done: threading.Event = done, errors: list[BaseException] = errors) -> None:
                try:
                    _note(execution_id, tenant_id, "waiter")
                except BaseException as exc:
                    errors.append(exc)
                finally:
                    done.set()

            waiter = threading.Thread(target=mine)
            waiter.start()

            def waiting_for_lock() -> bool:
                with other.connect() as conn:
                    return bool(
                        conn.execute(
                            text(
                                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                                "AND query LIKE 'WITH head%' AND datname = current_database()"
                            )
                        ).scalar()
                    )

            wait_until(waiting_for_lock, 10, "the try to wait for the head's lock")
            assert not done.is_set()
            getattr(holder_session, outcome)()
            holder_session.close()
            assert done.wait(10) and not errors, errors
            waiter.join(5)
        assert assert_chain_sound("demo") == before + 3  # holder (committed), waiter, waiter
    finally:
        other.dispose()


_KILLED_WRITER = """
import sys, time
from pathlib import Path
from sqlalchemy.exc import DBAPIError
from core.audit import record_event
from core.errors import ServiceUnavailable
from db.engine import session_scope

start, stop, n, tenant_id, execution_id, tag = sys.argv[1:7]
while not Path(start).exists():
    time.sleep(0.005)
sure = attempted = 0
for i in range(int(n)):
    attempted += 1
    try:
        with session_scope() as session:
            record_event(session, execution_id=execution_id, tenant_id=tenant_id, kind="note", actor=tag)
            if i % 4 == 3:
                record_event(session, execution_id=execution_id, tenant_id=tenant_id, kind="note", actor=tag)
        sure += 2 if i % 4 == 3 else 1
    except (DBAPIError, ServiceUnavailable):
        pass
Path(stop).touch()
print(sure, attempted + int(n) // 4)
"""


@pytest.mark.integration
def test_writer_processes_whose_backends_are_killed_at_random_never_fork_or_gap_a_chain(
    postgres_db: str, tmp_path: Path
) -> None:
    """Three writer processes (own engines, own memories of the head) link into one tenant while this process kills
    their backends at random (mid-link, mid-commit, idle): whatever reached the server, the chain is gapless, unforked,
    holds every event whose commit returned, no more than were attempted, and verifies."""
    execution_id, tenant_id = running_execution()
    before = assert_chain_sound("demo")
    start = tmp_path / "start"
    url = postgres_db + ("&" if "?" in postgres_db else "?") + "application_name=fifth-writer"
    env = os.environ | {"OPSC_DATABASE_URL": url}
    writers = []
    for n in range(3):
        stop = tmp_path / f"stop{n}"
        writers.append(
            (
                stop,
                subprocess.Popen(
                    [
                        sys.executable,
                        "-c",
                        _KILLED_WRITER,
                        str(start),
                        str(stop),
                        "80",
                        tenant_id,
                        execution_id,
                        f"k{n}",
                    ],
                    cwd=REPO,
                    env=env,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                ),
            )
        )
    killer = create_engine(postgres_db, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    kills = 0
    start.touch()
    try:
        rng = random.Random(7)
        deadline = time.monotonic() + 60
        with killer.connect() as conn:
            while not all(stop.exists() for stop, _ in writers) and time.monotonic() < deadline:
                pids = list(
                    conn.execute(
                        text(
                            "SELECT pid FROM pg_stat_activity WHERE application_name = 'fifth-writer' "
                            "AND datname = current_database()"
                        )
                    ).scalars()
                )
                if pids:
                    kills += int(
                        bool(conn.execute(text("SELECT pg_terminate_backend(:p)"), {"p": rng.choice(pids)}).scalar())
                    )
                threading.Event().wait(rng.uniform(0.005, 0.03))
        sure = attempted = 0
        for _stop, writer in writers:
            out, err = writer.communicate(timeout=60)
            assert writer.returncode == 0, err[-2000:]
            s, a = (int(x) for x in out.split())
            sure, attempted = sure + s, attempted + a
    finally:
        for _stop, writer in writers:
            if writer.poll() is None:
                writer.kill()
        killer.dispose()
    assert kills > 0, "no backend was killed: the attack did not happen"
    written = assert_chain_sound("demo") - before
    assert sure <= written <= attempted, (sure, written, attempted, kills)


# -- 5. jobs/consumer.py: the waking consumer --------------------------------------------------------------------


@pytest.fixture
def waking(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    import dramatiq.worker

    from jobs.consumer import WakingRedisBroker

    monkeypatch.setattr(dramatiq.worker, "QUEUE_PREFETCH", 2)  # one message per thread, as jobs/processes.py sets
    namespace = f"opsc-test-fifth-{uuid.uuid4().hex[:8]}"
    broker = WakingRedisBroker(url=redis_url, namespace=namespace)  # type: ignore[no-untyped-call]
    yield broker, namespace
    broker.close()
    delete_namespace(redis_url, namespace)


def _probe_actor(broker: Any, behaviour: Any) -> Any:
    import dramatiq

    def fifth_probe(n: int) -> None:
        behaviour(n)

    return dramatiq.actor(fifth_probe, broker=broker, queue_name="fifth", max_retries=0)


def _redis_left(redis_url: str, namespace: str) -> dict[str, int]:
    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        sizes = {}
        for key in client.scan_iter(match=f"{namespace}:*"):
            name = key.decode()
            kind = client.type(key).decode()
            size = {"set": client.scard, "zset": client.zcard, "list": client.llen, "hash": client.hlen}.get(kind)
            sizes[name.removeprefix(namespace + ":")] = int(size(key)) if size else -1
        return sizes
    finally:
        client.close()


def test_a_consumer_whose_every_message_is_nacked_is_woken_by_each_nack(waking: Any, redis_url: str) -> None:
    """Every message fails (nack: to the dead letters), 2 threads, 2 messages held at most, a worker timeout of 3 s:
    only a nack can wake the full consumer early. All 16 are taken once each, promptly (without the nack's wake a
    pair would wait up to 3 s each: 24 s), none is left in an ack set or the queue, all 16 are dead-lettered, and the
    worker stops."""
    import dramatiq

    broker, namespace = waking
    taken: Counter[int] = Counter()
    lock = threading.Lock()

    def fail(n: int) -> None:
        with lock:
            taken[n] += 1
        raise RuntimeError("fails on purpose")

    actor = _probe_actor(broker, fail)
    for n in range(16):
        actor.send(n)
    worker = dramatiq.Worker(broker, worker_threads=2, worker_timeout=3000)
    quiet = __import__("logging").getLogger("dramatiq")
    level, quiet.level = quiet.level, 100  # the 16 expected failures' tracebacks
    started = time.monotonic()
    worker.start()
    try:
        wait_until(lambda: sum(taken.values()) >= 16, 15, "all messages to be taken")
        took = time.monotonic() - started
        wait_until(lambda: _redis_left(redis_url, namespace).get("fifth.XQ", 0) == 16, 10, "the dead letters")
    finally:
        worker.stop(timeout=15_000)
        quiet.level = level
    assert taken == Counter({n: 1 for n in range(16)})
    assert took < 12, f"{took:.1f} s: a nack did not wake the full consumer"
    left = _redis_left(redis_url, namespace)
    assert left.get("fifth", 0) == 0 and left.get("fifth.msgs", 0) == 0 and left.get("fifth.XQ.msgs") == 16, left
    assert not {k: v for k, v in left.items() if "__acks__" in k and v}, left


def test_pause_and_stop_of_a_full_consumer_neither_hang_nor_lose_nor_repeat_a_message(
    waking: Any, redis_url: str
) -> None:
    """Both threads are busy and the consumer is full (waiting for an ack) with more in Redis: a pause returns once
    the busy messages end, nothing is taken while paused, a resume takes the rest, a message that was in flight at a
    stop is requeued rather than lost: every message runs exactly once and nothing stays in an ack set."""
    import dramatiq

    broker, namespace = waking
    taken: Counter[int] = Counter()
    lock = threading.Lock()
    release = threading.Event()

    def work(n: int) -> None:
        with lock:
            taken[n] += 1
        if n < 2:
            release.wait(10)

    actor = _probe_actor(broker, work)
    for n in range(12):
        actor.send(n)
    worker = dramatiq.Worker(broker, worker_threads=2, worker_timeout=3000)
    worker.start()
    try:
        wait_until(lambda: taken[0] and taken[1], 10, "the two blocking messages to run")
        paused = threading.Event()
        pauser = threading.Thread(target=lambda: (worker.pause(), paused.set()), daemon=True)
        pauser.start()
        wait_until(lambda: all(c.paused for c in worker.consumers.values()), 5, "the pause to reach the consumers")
        release.set()
        assert paused.wait(10), "pause hung behind a full consumer"
        while_paused = sum(taken.values())
        assert while_paused <= 4  # the two blocking ones and at most the two held for the freed threads
        worker.resume()
        wait_until(lambda: sum(taken.values()) >= 12, 15, "the rest after the resume")
    finally:
        release.set()
        started = time.monotonic()
        worker.stop(timeout=15_000)
        stopped_in = time.monotonic() - started
    assert taken == Counter({n: 1 for n in range(12)})
    assert stopped_in < 10
    left = _redis_left(redis_url, namespace)
    assert left.get("fifth", 0) == 0 and left.get("fifth.msgs", 0) == 0, left
    assert not {k: v for k, v in left.items() if "__acks__" in k and v}, left

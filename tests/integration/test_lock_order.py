"""One lock order everywhere (DESIGN §15, §3.9): 200 executions on shared assets cause no PostgreSQL deadlock.

Eight worker threads call the engine exactly as Dramatiq's threads do, with a sweeper running beside them,
on plans of 1–3 steps over three overlapping assets, so locks are taken, parked for, handed off and woken
all the time. PostgreSQL's own counter (``pg_stat_database.deadlocks`` of the test's database) must not
move, no worker may see a database error, and every execution must complete.
"""

from __future__ import annotations

import heapq
import logging
import random
import threading
import time
import traceback
from collections.abc import Iterator

import psycopg
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError
from sqlmodel import col, select

from core import Connection, add_asset, cancel, engine, get_execution, ports, principal, submit
from core.engine import claim, sweeper
from core.engine.steps import Outcome
from core.errors import InvalidTransition
from db.engine import dispose_engines, session_scope
from db.enums import ExecutionStatus
from db.settings import get_settings
from db.tables import Execution
from tests.engine_support import recording_dispatcher

EXECUTIONS = 200
WORKERS = 8
CANCEL_EVERY = 10  # one in ten is cancelled straight after submit, racing its first claim
ASSETS = ("lo-a", "lo-b", "lo-c")


class ThreadQueue:
    """A dispatcher whose messages (with their delays) feed the worker threads, like the broker would."""

    def __init__(self) -> None:
        self._due: list[tuple[float, int, str]] = []
        self._seq = 0
        self._ready = threading.Condition()
        self.closed = False

    def dispatch(self, execution_id: str, delay_s: float = 0.0, *, message_id: str | None = None) -> None:
        with self._ready:
            self._seq += 1
            heapq.heappush(self._due, (time.monotonic() + delay_s, self._seq, execution_id))
            self._ready.notify()

    def take(self) -> str | None:
        """The next due id, or None once closed."""
        with self._ready:
            while not self.closed:
                if self._due and self._due[0][0] <= time.monotonic():
                    return heapq.heappop(self._due)[2]
                self._ready.wait(timeout=None if not self._due else max(0.0, self._due[0][0] - time.monotonic()))
            return None

    def close(self) -> None:
        with self._ready:
            self.closed = True
            self._ready.notify_all()


def _described(exc: Exception) -> str:
    """The error's first line and the engine function it came from (which transaction lost)."""
    frames = [f"{f.name}" for f in traceback.extract_tb(exc.__traceback__) if "/core/" in f.filename]
    return f"{type(exc).__name__}: {str(exc).splitlines()[0]} in {' > '.join(frames[-3:])}"


def _deadlocks(url: str) -> int:
    """The database's deadlock counter, once every other backend of it has exited (and so flushed its stats)."""
    dispose_engines()
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            others = text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            deadline = time.monotonic() + 60
            while conn.execute(others).scalar_one():  # a closed connection's backend exits within moments
                assert time.monotonic() < deadline, "backends still open: their deadlocks would go uncounted"
                time.sleep(0.05)
            conn.execute(text("SELECT pg_stat_clear_snapshot()"))
            return int(
                conn.execute(
                    text("SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()")
                ).scalar_one()
            )
    finally:
        admin.dispose()


@pytest.fixture
def shared_assets(postgres_db: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("OPSC_RETRY_BACKOFF_S", "0.01")
    monkeypatch.setenv("OPSC_WATCH_INTERVAL_S", "0.05")
    get_settings.cache_clear()
    admin = principal("admin", "demo")
    for name in ASSETS:
        add_asset(admin, name, Connection.LOCAL)
    yield postgres_db
    ports.set_dispatcher(None)
    get_settings.cache_clear()


def _plans(count: int) -> list[str]:
    """Plans of 1–3 noop steps on 2–3 of the shared assets, in every order (seeded: the same each run)."""
    rng = random.Random(14)
    plans = []
    for i in range(count):
        targets = rng.sample(ASSETS, rng.choice((2, 3)))
        steps = [targets[s % len(targets)] for s in range(rng.choice((1, 2, 3)))]
        body = "".join(f"  - {{name: s{n}, action: noop, target: {t}}}\n" for n, t in enumerate(steps))
        # A one-step plan still locks every target of the plan: add the others as a last noop.
        body += "".join(
            f"  - {{name: t{n}, action: noop, target: {t}}}\n" for n, t in enumerate(targets) if t not in steps
        )
        plans.append(f"name: shared-{i}\nsteps:\n{body}")
    return plans


@pytest.mark.integration
def test_two_hundred_executions_on_shared_assets_cause_no_deadlock(shared_assets: str) -> None:
    """Claims, persists, hand-offs, wake-ups and the sweeper race on three assets: 0 deadlocks, all complete."""
    before = _deadlocks(shared_assets)
    queue = ThreadQueue()
    ports.set_dispatcher(queue)
    errors: list[str] = []
    stop = threading.Event()

    def work(n: int) -> None:
        while (execution_id := queue.take()) is not None:
            try:
                engine.process(execution_id, worker_id=f"w{n}")
            except Exception as exc:  # what Dramatiq would log with a traceback and drop
                errors.append(_described(exc))

    def sweep() -> None:
        while not stop.wait(0.5):  # every worker runs the sweeper periodically; lost messages come back
            try:
                sweeper.sweep(redispatch_after_s=1.0)
            except Exception as exc:
                errors.append(_described(exc))

    threads = [threading.Thread(target=work, args=(n,), daemon=True) for n in range(WORKERS)]
    threads.append(threading.Thread(target=sweep, daemon=True))
    for thread in threads:
        thread.start()
    alice = principal("alice", "demo")
    ids, cancelled = [], []
    try:
        for n, plan in enumerate(_plans(EXECUTIONS)):
            ids.append(submit(alice, plan, background=True).execution.execution_id)
            if n % CANCEL_EVERY == 0:  # while a worker may be claiming it, parking it or handing it a lock
                cancelled.append(ids[-1])
                try:
                    cancel(alice, ids[-1])
                except InvalidTransition:
                    pass  # it had already completed
                except Exception as exc:  # what the console would show its user
                    errors.append(_described(exc))
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            with session_scope() as session:
                now = session.exec(select(Execution.status).where(col(Execution.id).in_(ids))).all()
            if all(ExecutionStatus(s) not in _ACTIVE for s in now):
                break
            time.sleep(0.2)
    finally:
        stop.set()
        queue.close()
        for thread in threads:
            thread.join(timeout=30)
    with session_scope() as session:
        statuses = dict(session.exec(select(Execution.id, Execution.status).where(col(Execution.id).in_(ids))).all())
    deadlocks = _deadlocks(shared_assets) - before
    print(f"deadlocks: {deadlocks}; worker errors: {len(errors)}")  # the figure the report quotes
    assert deadlocks == 0, f"{deadlocks} deadlocks; worker errors: {errors[:5]}"
    assert errors == []
    assert len(statuses) == EXECUTIONS
    assert {statuses[i] for i in ids if i not in cancelled} == {"completed"}
    assert {statuses[i] for i in cancelled} <= {"cancelled", "completed"}  # completed: it ended before the cancel


_ACTIVE = {ExecutionStatus.APPROVED, ExecutionStatus.QUEUED, ExecutionStatus.RUNNING}


@pytest.fixture
def one_step_at_a_time(db: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("OPSC_CHAIN_STEPS", "0")  # a holder between its steps keeps its lock: B and C park behind
    get_settings.cache_clear()
    yield db
    get_settings.cache_clear()


def test_a_waiter_cancelled_after_its_hand_off_wakes_the_next_in_line(one_step_at_a_time: str) -> None:
    """A ends and hands localhost to B; B is cancelled before its message is taken: C must be woken, not left
    parked until its queue-wait bound with the lock free."""
    alice = principal("alice", "demo")
    two_steps = "name: a\nsteps:\n  - {name: s0, action: noop, target: localhost}\n  - {name: s1, action: noop, target: localhost}\n"
    one_step = "name: {}\nsteps:\n  - {{name: s, action: noop, target: localhost}}\n"
    a = submit(alice, two_steps, background=True).execution.execution_id
    b = submit(alice, one_step.format("b"), background=True).execution.execution_id
    c = submit(alice, one_step.format("c"), background=True).execution.execution_id
    with recording_dispatcher() as sent:
        assert engine.process(a, worker_id="w") is Outcome.ADVANCED  # holds localhost between its steps
        assert engine.process(b, worker_id="w") is Outcome.NOOP  # parked behind A
        assert engine.process(c, worker_id="w") is Outcome.NOOP  # parked behind A, after B
        assert engine.process(a, worker_id="w") is Outcome.FINISHED
        assert (b, 0.0) in sent.sent and (c, 0.0) not in sent.sent  # the hand-off went to B
        cancel(alice, b)
        assert (c, 0.0) in sent.sent  # B's turn passed on with it
        assert engine.process(c, worker_id="w") is Outcome.FINISHED
    assert get_execution(alice, c).status == "completed"


class _Psycopg2Deadlock(Exception):
    """What psycopg2 raises for PostgreSQL's deadlock_detected (psycopg's own class names it ``sqlstate``)."""

    pgcode = "40P01"


@pytest.mark.parametrize("deadlock", [psycopg.errors.DeadlockDetected, _Psycopg2Deadlock], ids=["psycopg", "psycopg2"])
def test_a_claim_that_loses_a_deadlock_runs_again_once_then_warns_in_one_line(
    sqlite_db: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, deadlock: type[Exception]
) -> None:
    """The claim's transaction was rolled back whole: it is retried at once; a second loss is one warning
    line (no traceback) and the message is left to the sweeper's re-dispatch."""
    execution_id = submit(
        principal("alice", "demo"), "name: n\nsteps:\n  - {name: s, action: noop, target: localhost}\n", background=True
    ).execution.execution_id
    real, losses = claim.claim_step_in, [1]

    def losing(*args: object, **kwargs: object) -> object:
        if losses:
            losses.pop()
            raise OperationalError("UPDATE assets ...", {}, deadlock("deadlock detected\nDETAIL: Process 1 waits"))
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(claim, "claim_step_in", losing)
    assert engine.process(execution_id, worker_id="w") is Outcome.FINISHED  # lost once, won at the retry
    losses.extend([1, 1])
    with caplog.at_level(logging.WARNING, logger="core.engine.claim"):
        assert claim.claim_step(execution_id, "w") is None
    [record] = [r for r in caplog.records if r.name == "core.engine.claim"]
    assert record.levelno == logging.WARNING and record.exc_info is None
    assert (
        record.getMessage()
        == f"claim of {execution_id} lost a lock conflict twice (deadlock detected); left to the sweeper"
    )

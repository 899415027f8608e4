"""One lock order everywhere (DESIGN §15, §3.9): 200 executions on shared assets cause no PostgreSQL deadlock.

Eight worker threads call the engine exactly as Dramatiq's threads do, with a sweeper running beside them,
on plans of 1–3 steps over three overlapping assets, so locks are taken, parked for, handed off and woken
all the time. PostgreSQL's own counter (``pg_stat_database.deadlocks`` of the test's database) must not
move, no worker may see a database error, and every execution must complete.
"""

from __future__ import annotations

import heapq
import random
import threading
import time
import traceback
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, text
from sqlmodel import col, select

from core import Connection, add_asset, engine, ports, principal, submit
from core.engine import sweeper
from db.engine import dispose_engines, session_scope
from db.enums import ExecutionStatus
from db.settings import get_settings
from db.tables import Execution

pytestmark = pytest.mark.integration

EXECUTIONS = 200
WORKERS = 8
ASSETS = ("lo-a", "lo-b", "lo-c")


class ThreadQueue:
    """A dispatcher whose messages (with their delays) feed the worker threads, like the broker would."""

    def __init__(self) -> None:
        self._due: list[tuple[float, int, str]] = []
        self._seq = 0
        self._ready = threading.Condition()
        self.closed = False

    def dispatch(self, execution_id: str, delay_s: float = 0.0) -> None:
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
            deadline = time.monotonic() + 30
            while conn.execute(others).scalar_one() and time.monotonic() < deadline:
                time.sleep(0.05)  # a closed connection's backend exits within moments
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
    ids = [submit(alice, plan, background=True).execution.execution_id for plan in _plans(EXECUTIONS)]
    try:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            with session_scope() as session:
                statuses = session.exec(select(Execution.status).where(col(Execution.id).in_(ids))).all()
            if all(ExecutionStatus(s) not in _ACTIVE for s in statuses):
                break
            time.sleep(0.2)
    finally:
        stop.set()
        queue.close()
        for thread in threads:
            thread.join(timeout=30)
    with session_scope() as session:
        statuses = session.exec(select(Execution.status).where(col(Execution.id).in_(ids))).all()
    deadlocks = _deadlocks(shared_assets) - before
    print(f"deadlocks: {deadlocks}; worker errors: {len(errors)}")  # the figure the report quotes
    assert deadlocks == 0, f"{deadlocks} deadlocks; worker errors: {errors[:5]}"
    assert errors == []
    assert sorted(set(statuses)) == ["completed"] and len(statuses) == EXECUTIONS


_ACTIVE = {ExecutionStatus.APPROVED, ExecutionStatus.QUEUED, ExecutionStatus.RUNNING}

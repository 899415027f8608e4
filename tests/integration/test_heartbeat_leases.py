"""Heartbeat leases and database outages (DESIGN §15): a live step keeps its lease however long it runs, a
dead worker's lease runs out in seconds whatever the policy says, and a result the worker has survives a
database outage instead of being thrown away (with one log line per outage, not a traceback per tick)."""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlmodel import select

from core import engine, get_execution, list_events, principal, submit
from core.engine import reachability, sweeper
from core.engine.claim import claim_step
from core.engine.steps import Outcome
from core.errors import InvalidInput
from core.policies import DEFAULT_POLICIES, PolicyValues, get_policy, validate_policy
from db.clock import utcnow
from db.engine import session_scope
from db.settings import get_settings
from db.tables import Execution, ExecutionLock, QueueItem
from tests.engine_support import processes_matching, unique_seconds


@pytest.fixture
def quick(db: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A short heartbeat lease, so that a lease outliving its renewals is visible within a test."""
    monkeypatch.setenv("OPSC_HEARTBEAT_S", "0.2")
    monkeypatch.setenv("OPSC_LEASE_TTL_S", "1")
    monkeypatch.setenv("OPSC_WATCH_INTERVAL_S", "0.05")
    get_settings.cache_clear()
    yield db
    get_settings.cache_clear()


def _background(plan: str) -> str:
    return submit(principal("alice", "demo"), plan, background=True).execution.execution_id


def _sleep_plan(seconds: str) -> str:
    # `long` (an estimate of 60 s): its policy's lock grace is 360 s, which the step's lease must not follow.
    return (
        "name: slow\nsteps:\n  - {name: s, action: shell, target: localhost, timeout_s: 60, "
        f"params: {{command: [sleep, '{seconds}']}}}}\n"
    )


def _lease_left_s(execution_id: str) -> float:
    with session_scope() as session:
        item = session.exec(select(QueueItem).where(QueueItem.execution_id == execution_id)).one()
        assert item.lease_expires_at is not None
        return (item.lease_expires_at - utcnow()).total_seconds()


def test_a_claim_leases_for_the_heartbeat_ttl_not_the_policy(db: str) -> None:
    """The claimed step's lease ends lease_ttl_s from now (4 s), not after the `long` policy's 360 s."""
    execution_id = _background(_sleep_plan("1"))
    plan = claim_step(execution_id, "w")
    assert plan is not None
    plan.masker.close()
    assert 0 < _lease_left_s(execution_id) <= get_settings().lease_ttl_s


def test_a_live_step_keeps_its_lease_past_many_ttls_while_sweepers_run(
    quick: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A step that runs 3 lease periods is renewed by its watcher: sweeping all along reclaims nothing."""
    # 1.5 s, not the fixture's 1 s: on a loaded machine SQLite's one writer (the sweeper's 10 sweeps a second
    # beside the renewals) once stalled a renewal for a whole 1 s period.
    monkeypatch.setenv("OPSC_LEASE_TTL_S", "1.5")
    get_settings.cache_clear()
    execution_id = _background(_sleep_plan(unique_seconds(4)))
    done = threading.Event()
    reclaimed: list[int] = []

    def sweep_until_done() -> None:
        while not done.wait(0.1):
            reclaimed.append(sweeper.sweep(redispatch_after_s=3600).reclaimed)

    sweeping = threading.Thread(target=sweep_until_done)
    sweeping.start()
    try:
        outcome = engine.process(execution_id, worker_id="live-worker")
    finally:
        done.set()
        sweeping.join()
    assert outcome is Outcome.FINISHED
    assert len(reclaimed) > 10 and sum(reclaimed) == 0  # swept throughout, never found the lease lost
    view = get_execution(principal("alice", "demo"), execution_id)
    assert (view.status, view.steps[0].attempts) == ("completed", 1)


def test_a_dead_workers_lease_runs_out_in_one_ttl_and_the_step_is_retried_at_once(quick: str) -> None:
    """Claimed, then never renewed (the worker died): within a TTL the sweeper reclaims it, due at once."""
    execution_id = _background(_sleep_plan("0.1"))
    plan = claim_step(execution_id, "doomed-worker")
    assert plan is not None
    plan.masker.close()
    deadline = time.monotonic() + 30
    while sweeper.sweep(redispatch_after_s=3600).reclaimed == 0:  # a sweep each tick: bounded by the TTL
        assert time.monotonic() < deadline, "the lease of a dead worker was never reclaimed"
        time.sleep(0.05)
    with session_scope() as session:
        item = session.exec(select(QueueItem).where(QueueItem.execution_id == execution_id)).one()
        assert item.lease_token is None and item.available_at <= utcnow() + timedelta(seconds=0.5)
    assert engine.process(execution_id, worker_id="second-worker") is Outcome.FINISHED
    view = get_execution(principal("alice", "demo"), execution_id)
    assert (view.status, view.steps[0].attempts) == ("completed", 2)


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _deadline_lock_expiry_and_grace(execution_id: str) -> tuple[datetime, datetime, timedelta]:
    """The execution's deadline, its asset lock's expiry, and how long its policy says locks outlive the deadline."""
    with session_scope() as session:
        execution = session.get(Execution, execution_id)
        lock = session.exec(select(ExecutionLock).where(ExecutionLock.execution_id == execution_id)).one()
        assert execution is not None and execution.deadline_at is not None
        grace = timedelta(seconds=get_policy(session, execution.sla_class, execution.action_class).lease_s)
        return execution.deadline_at, lock.expires_at, grace


def test_a_reclaimed_read_step_gets_the_lost_attempts_time_back(quick: str) -> None:
    """The dead worker's attempt does not count against the execution limit (the steps before it may have
    used most of it): the deadline, and the asset locks' expiry with it, move by the time from the attempt's
    start to the reclaim, and the event says so."""
    execution_id = _background(_sleep_plan("0.1"))
    claimed_at = utcnow()
    plan = claim_step(execution_id, "doomed-worker")
    assert plan is not None
    plan.masker.close()
    deadline_before, lock_before, grace = _deadline_lock_expiry_and_grace(execution_id)
    # The reclaim comes after the lease runs out: at least that long after the attempt's start.
    started_at = get_execution(principal("alice", "demo"), execution_id).steps[0].started_at
    with session_scope() as session:
        lease_runs_out = session.exec(
            select(QueueItem.lease_expires_at).where(QueueItem.execution_id == execution_id)
        ).one()
    assert started_at is not None and lease_runs_out is not None
    bound = time.monotonic() + 30
    while sweeper.sweep(redispatch_after_s=3600).reclaimed == 0:
        assert time.monotonic() < bound, "the lease of a dead worker was never reclaimed"
        time.sleep(0.05)
    swept_at = utcnow()
    deadline_after, lock_after, _ = _deadline_lock_expiry_and_grace(execution_id)
    given = deadline_after - deadline_before
    # The lease had to run out first; the reclaim came before we looked again.
    assert _utc(lease_runs_out) - started_at <= given <= swept_at - claimed_at
    assert lock_after > lock_before and lock_after >= deadline_after + grace  # the lock follows the deadline
    [lost] = [e for e in list_events(principal("alice", "demo"), execution_id) if e.kind == "lease_expired"]
    assert f"its {given.total_seconds():.1f} s are given back to the execution limit" in lost.message
    assert engine.process(execution_id, worker_id="second-worker") is Outcome.FINISHED
    assert get_execution(principal("alice", "demo"), execution_id).status == "completed"


def test_every_seeded_policy_holds_a_reclaim_and_a_retry(db: str) -> None:
    """The 9 rows of DESIGN §6 pass; a row whose execution limit cannot hold a reclaim plus a retry fails."""
    for values in DEFAULT_POLICIES.values():
        validate_policy(values)
    reclaim = int(get_settings().reclaim_s + 0.999)
    with pytest.raises(InvalidInput) as refused:
        validate_policy(PolicyValues(8, 8 + reclaim - 1, 20, 300, 3))
    assert refused.value.issues[0][0] == "execution_s"
    assert f"8 + {reclaim} = {8 + reclaim}" in refused.value.issues[0][1]


# -- a database outage while a step runs (PostgreSQL: our own database is closed to connections) ---------


class _Cut:
    """Close and reopen our test database to new connections, dropping the open ones: a real outage of it."""

    def __init__(self, url: str) -> None:
        self.name = make_url(url).database
        self.admin = create_engine(make_url(url).set(database="postgres"), isolation_level="AUTOCOMMIT")

    def close(self) -> None:
        self.closed_at = time.monotonic()
        with self.admin.connect() as conn:
            conn.execute(text(f'ALTER DATABASE "{self.name}" ALLOW_CONNECTIONS false'))
            conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n AND pid <> pg_backend_pid()"
                ),
                {"n": self.name},
            )

    def open(self) -> None:
        with self.admin.connect() as conn:
            conn.execute(text(f'ALTER DATABASE "{self.name}" ALLOW_CONNECTIONS true'))
        self.admin.dispose()


def _wait(predicate: object, what: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def test_a_result_outlives_a_database_outage_and_is_stored_once_it_is_back(
    postgres_db: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The database goes away mid-step and the step ends during the outage: the worker keeps its result,
    retries quietly, and stores it when the database is back; the sweeper, which saw the outage too, gives
    the live worker a lease period before reclaiming (although the lease has run out meanwhile)."""
    monkeypatch.setenv("OPSC_HEARTBEAT_S", "0.2")
    monkeypatch.setenv("OPSC_LEASE_TTL_S", "1")
    monkeypatch.setenv("OPSC_WATCH_INTERVAL_S", "0.05")
    get_settings.cache_clear()
    # This process's view of the outage is put back afterwards: later tests' sweeps must not be held off.
    monkeypatch.setattr(reachability, "_down_since", None)
    monkeypatch.setattr(reachability, "_up_since", float("-inf"))
    seen: Counter[str] = Counter()
    real_outage = reachability.outage
    monkeypatch.setattr(reachability, "outage", lambda where, exc: (seen.update([where]), real_outage(where, exc)))
    marker = unique_seconds(2)
    execution_id = _background(_sleep_plan(marker))
    outcome: list[Outcome] = []
    worker = threading.Thread(target=lambda: outcome.append(engine.process(execution_id, worker_id="w")))
    cut = _Cut(postgres_db)
    caplog.set_level(logging.INFO)
    worker.start()
    try:
        _wait(lambda: processes_matching(f"sleep {marker}"), "the step never started")
        cut.close()
        _wait(lambda: not processes_matching(f"sleep {marker}"), "the step never ended")
        _wait(lambda: seen["step result"] >= 2, "the worker did not retry storing its result")
        # The last renewal was before the cut: one TTL after it the lease has run out, so a sweeper without
        # the hold-off would reclaim the step as lost the moment the database is back.
        lease_gone = cut.closed_at + get_settings().lease_ttl_s
        _wait(lambda: time.monotonic() > lease_gone, "")
    finally:
        cut.open()
    assert sweeper.sweep(redispatch_after_s=3600).reclaimed == 0  # the hold-off: the live worker comes first
    worker.join(timeout=60)
    assert outcome == [Outcome.FINISHED]
    view = get_execution(principal("alice", "demo"), execution_id)
    assert (view.status, view.steps[0].status, view.steps[0].attempts) == ("completed", "completed", 1)
    kinds = [e.kind for e in list_events(principal("alice", "demo"), execution_id)]
    assert "lease_expired" not in kinds and "stale_result" not in kinds
    ours = [r for r in caplog.records if r.name.startswith(("core", "jobs"))]
    assert [r.getMessage().split(" (")[0] for r in ours if "database unreachable" in r.getMessage()] == [
        "database unreachable"
    ]
    assert any("database reachable again after" in r.getMessage() for r in ours)
    assert not [r for r in ours if r.exc_info], "an outage must not log tracebacks"


def _expire_lease(execution_id: str, ago_s: float) -> None:
    with session_scope() as session:
        item = session.exec(select(QueueItem).where(QueueItem.execution_id == execution_id)).one()
        item.lease_expires_at = utcnow() - timedelta(seconds=ago_s)
        session.add(item)


def test_a_late_renewal_by_a_live_worker_of_this_host_is_not_taken_for_death(db: str) -> None:
    """A worker process alive on this host whose lease ran out just now (a loaded machine) keeps its step
    for two more lease periods; past them, or when the process is stopped (SIGSTOP), the step is reclaimed."""
    ttl = get_settings().lease_ttl_s
    alive = _background(_sleep_plan("0.1"))
    plan = claim_step(alive, engine.worker_identity("worker"))  # this test process: alive, here
    assert plan is not None
    plan.masker.close()
    _expire_lease(alive, ago_s=0.5)
    assert sweeper.sweep(redispatch_after_s=3600).reclaimed == 0
    _expire_lease(alive, ago_s=2 * ttl + 1)
    assert sweeper.sweep(redispatch_after_s=3600).reclaimed == 1

    stopped_process = subprocess.Popen(["sleep", "60"])  # noqa: S607
    try:
        os.kill(stopped_process.pid, signal.SIGSTOP)
        _wait(lambda: Path(f"/proc/{stopped_process.pid}/stat").read_text().split(")")[1].split()[0] == "T", "")
        stopped = _background(_sleep_plan("0.1"))
        hung = f"worker:{socket.gethostname()}:{stopped_process.pid}:abcdef"
        plan = claim_step(stopped, hung)
        assert plan is not None
        plan.masker.close()
        _expire_lease(stopped, ago_s=0.5)
        assert sweeper.sweep(redispatch_after_s=3600).reclaimed == 1
    finally:
        stopped_process.kill()
        stopped_process.wait()

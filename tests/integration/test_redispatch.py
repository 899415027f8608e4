"""Re-dispatch of lost messages only (issue 15 item 2): the sweeper asks the broker before it re-sends.

On SQLite and PostgreSQL, with a real Redis broker in a namespace of this test's own (only its keys are ever
deleted: the server is shared) and with the in-process StubBroker of the embedded runtime. Rows are aged by
moving ``dispatched_at`` back, never by waiting out ``OPSC_REDISPATCH_AFTER_S``.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta

import dramatiq
import pytest
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker
from sqlalchemy import update
from sqlmodel import col, select

from core import ports, principal, submit
from core.engine import outbox, sweeper
from core.transactions import session_scope
from db.clock import utcnow
from db.tables import QueueItem
from jobs.broker import QUEUE
from jobs.dispatch import BrokerDispatcher
from jobs.held import MessageKeys, StubLedger
from tests.engine_support import delete_namespace

ONE_STEP = "name: {name}\nsteps:\n  - {{name: a, action: noop, target: localhost}}\n"


@pytest.fixture
def redis_broker(redis_url: str) -> Iterator[RedisBroker]:
    """A RedisBroker set up as jobs/broker.py sets it up, in a fresh namespace deleted afterwards."""
    broker = RedisBroker(url=redis_url, namespace=f"opsc-test-{uuid.uuid4().hex[:8]}")  # type: ignore[no-untyped-call]
    broker.add_middleware(MessageKeys(QUEUE))
    broker.declare_queue(QUEUE)
    yield broker
    delete_namespace(redis_url, broker.namespace)
    broker.client.close()


@pytest.fixture
def on_redis(db: str, redis_broker: RedisBroker) -> Iterator[RedisBroker]:
    """Work submitted in this process is sent to ``redis_broker`` (no worker consumes it)."""
    ports.set_dispatcher(BrokerDispatcher(redis_broker))
    yield redis_broker
    ports.set_dispatcher(None)


def _queued(name: str = "q") -> str:
    return submit(principal("alice", "demo"), ONE_STEP.format(name=name), background=True).execution.execution_id


def _row(execution_id: str) -> QueueItem:
    with session_scope() as session:
        row = session.exec(select(QueueItem).where(QueueItem.execution_id == execution_id)).one()
        session.expunge(row)
        return row


def _age(execution_id: str, seconds: float) -> None:
    """Make the row's message look ``seconds`` old."""
    with session_scope() as session:
        session.execute(
            update(QueueItem)
            .where(col(QueueItem.execution_id) == execution_id)
            .values(dispatched_at=utcnow() - timedelta(seconds=seconds))
        )


def _in_redis(broker: RedisBroker) -> set[str]:
    """The message ids Dramatiq holds in our queue's hashes (queued and delayed)."""
    keys: set[str] = set()
    for name in (f"{broker.namespace}:{QUEUE}.msgs", f"{broker.namespace}:{QUEUE}.DQ.msgs"):
        keys |= {k.decode() for k in broker.client.hkeys(name)}
    return keys


def _fetch(broker: RedisBroker) -> dramatiq.MessageProxy:
    """Take the next message off our queue as a worker's consumer would (it stays unacknowledged)."""
    consumer = broker.consume(QUEUE, prefetch=1, timeout=100)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        message = next(consumer)
        if message is not None:
            return message
    raise AssertionError("no message to fetch")


def test_a_message_still_in_redis_is_not_resent_however_old(on_redis: RedisBroker) -> None:
    """A day in the queue behind a backlog: the broker still holds it, so the sweeper leaves it (and looks again
    only after another OPSC_REDISPATCH_AFTER_S); the old rule, kept for the benchmark, would have re-sent it."""
    execution_id = _queued()
    message_id = _row(execution_id).message_id
    assert message_id is not None and _in_redis(on_redis) == {message_id}
    for _ in range(3):
        _age(execution_id, 86400)
        assert sweeper.sweep().redispatched == 0
        assert _in_redis(on_redis) == {message_id}
        row = _row(execution_id)
        assert row.message_id == message_id
        assert row.dispatched_at is not None and utcnow() - row.dispatched_at < timedelta(seconds=60)
    _age(execution_id, 86400)
    with session_scope() as session:
        assert outbox.due_redispatch(session, older_than_s=15, ask_broker=False) == [execution_id]


def test_a_delayed_message_is_held_too(on_redis: RedisBroker) -> None:
    """A retry's message waits in Dramatiq's delay queue: due in the database, still held by the broker."""
    execution_id = _queued()
    with session_scope() as session:
        outbox.move_to_step(session, execution_id, step_index=0, delay_s=3600)
    message_id = _row(execution_id).message_id
    assert message_id in {k.decode() for k in on_redis.client.hkeys(f"{on_redis.namespace}:{QUEUE}.DQ.msgs")}
    with session_scope() as session:  # the retry is due now, its message an hour old
        session.execute(
            update(QueueItem)
            .where(col(QueueItem.execution_id) == execution_id)
            .values(available_at=utcnow(), dispatched_at=utcnow() - timedelta(hours=1))
        )
    assert sweeper.sweep().redispatched == 0


def test_a_message_deleted_with_our_namespace_is_resent_in_the_sweep_that_finds_it(
    on_redis: RedisBroker, redis_url: str
) -> None:
    """Our namespace's keys deleted (a FLUSHALL, for us): once the message is OPSC_REDISPATCH_AFTER_S old, the
    next sweep sends a new one, named in the row; the sweep after that finds it held."""
    execution_id = _queued()
    lost = _row(execution_id).message_id
    assert delete_namespace(redis_url, on_redis.namespace)
    assert sweeper.sweep().redispatched == 0  # within the grace: it may be on its way
    _age(execution_id, 16)
    assert sweeper.sweep().redispatched == 1
    resent = _row(execution_id).message_id
    assert resent not in {None, lost} and _in_redis(on_redis) == {resent}
    _age(execution_id, 16)
    assert sweeper.sweep().redispatched == 0


class _DiesBeforeSending(BrokerDispatcher):
    """The process commits its work and dies before the message leaves it."""

    def dispatch(self, execution_id: str, delay_s: float = 0.0, *, message_id: str | None = None) -> None:
        return None


def test_a_crash_between_commit_and_send_is_recovered(on_redis: RedisBroker) -> None:
    """The row names a message that was never sent: the sweeper finds the broker without it and sends one."""
    ports.set_dispatcher(_DiesBeforeSending(on_redis))
    execution_id = _queued()
    ports.set_dispatcher(BrokerDispatcher(on_redis))  # a live worker's sweeper, later
    assert _row(execution_id).message_id is not None and _in_redis(on_redis) == set()
    _age(execution_id, 16)
    assert sweeper.sweep().redispatched == 1
    assert _in_redis(on_redis) == {_row(execution_id).message_id}


def test_a_message_dead_lettered_by_dramatiq_is_resent(on_redis: RedisBroker) -> None:
    """A worker's Dramatiq rejected the message (it sits in the dead-letter queue): the work is re-sent."""
    execution_id = _queued()
    dead = _row(execution_id).message_id
    consumer = on_redis.consume(QUEUE, prefetch=1, timeout=100)
    message = None
    while message is None:
        message = next(consumer)
    consumer.nack(message)
    assert on_redis.client.zscore(f"{on_redis.namespace}:{QUEUE}.XQ", dead) is not None
    _age(execution_id, 16)
    assert sweeper.sweep().redispatched == 1
    assert _in_redis(on_redis) == {_row(execution_id).message_id}


def test_a_message_taken_by_a_live_consumer_is_held_and_by_a_dead_one_is_resent(
    on_redis: RedisBroker, redis_url: str
) -> None:
    """Another worker process fetched the message and has not acknowledged it: held while that process
    heartbeats; once its heartbeat is older than OPSC_REDISPATCH_AFTER_S (it was killed), the work is re-sent
    (Dramatiq itself would give the message back only after its 60 s heartbeat timeout)."""
    execution_id = _queued()
    other = RedisBroker(url=redis_url, namespace=on_redis.namespace)  # type: ignore[no-untyped-call]
    other.add_middleware(MessageKeys(QUEUE))
    try:
        _fetch(other)
        _age(execution_id, 16)
        assert sweeper.sweep().redispatched == 0
        on_redis.client.zadd(f"{on_redis.namespace}:__heartbeats__", {other.broker_id: 0})  # it stopped beating
        _age(execution_id, 16)
        assert sweeper.sweep().redispatched == 1
        assert _row(execution_id).message_id in _in_redis(on_redis)
    finally:
        other.client.close()


def test_a_broker_that_cannot_be_asked_leaves_the_rows_for_the_next_pass(on_redis: RedisBroker) -> None:
    """Redis unreachable: nothing is re-sent blindly (it would fail, or duplicate what Redis still holds)."""
    execution_id = _queued()
    message_id = _row(execution_id).message_id
    away = RedisBroker(url="redis://127.0.0.1:1/0", namespace=on_redis.namespace)  # type: ignore[no-untyped-call]
    ports.set_dispatcher(BrokerDispatcher(away))
    _age(execution_id, 16)
    assert sweeper.sweep().redispatched == 0
    assert _row(execution_id).message_id == message_id
    ports.set_dispatcher(BrokerDispatcher(on_redis))  # back: it still holds the message
    assert sweeper.sweep().redispatched == 0


# -- the embedded runtime's in-process broker ------------------------------------------------------------


@pytest.fixture
def stub(sqlite_db: str) -> Iterator[StubBroker]:
    """A StubBroker set up as jobs/broker.py sets it up, with a ``run_step`` that records and acknowledges
    (or, for ids in ``stub.refuse``, raises: Dramatiq dead-letters the message), on SQLite."""
    broker = StubBroker()
    broker.add_middleware(StubLedger())
    broker.refuse = set()  # type: ignore[attr-defined]
    broker.seen = []  # type: ignore[attr-defined]

    def run_step(execution_id: str) -> None:
        broker.seen.append(execution_id)  # type: ignore[attr-defined]
        if execution_id in broker.refuse:  # type: ignore[attr-defined]
            raise RuntimeError("refused")

    dramatiq.actor(run_step, actor_name="run_step", queue_name=QUEUE, broker=broker, max_retries=0)
    ports.set_dispatcher(BrokerDispatcher(broker))
    yield broker
    ports.set_dispatcher(None)
    broker.close()


def _drain(broker: StubBroker, count: int) -> None:
    """Let a Dramatiq worker on ``broker`` take ``count`` messages, then stop it."""
    worker = dramatiq.Worker(broker, worker_threads=1, worker_timeout=50)
    worker.start()
    try:
        deadline = time.monotonic() + 10
        while len(broker.seen) < count and time.monotonic() < deadline:  # type: ignore[attr-defined]
            threading.Event().wait(0.01)
        broker.join(QUEUE, timeout=10_000, fail_fast=False)
    finally:
        worker.stop()


def test_the_in_process_broker_holds_a_message_until_a_worker_acknowledges_it(stub: StubBroker) -> None:
    """Embedded: queued in the StubBroker, not re-sent however old; acknowledged without the work being
    done (a claim given up), or dead-lettered, it is lost: re-sent in the next sweep."""
    done, refused = _queued("done"), _queued("refused")
    stub.refuse.add(refused)  # type: ignore[attr-defined]
    for execution_id in (done, refused):
        _age(execution_id, 86400)
    assert sweeper.sweep().redispatched == 0
    _drain(stub, 2)
    assert sorted(stub.seen) == sorted([done, refused])  # type: ignore[attr-defined]
    assert len(stub.dead_letters) == 1
    for execution_id in (done, refused):
        _age(execution_id, 16)
    assert sweeper.sweep().redispatched == 2
    assert sweeper.sweep().redispatched == 0


def test_a_delayed_message_a_stopped_embedded_worker_had_taken_counts_as_lost(stub: StubBroker) -> None:
    """The stub cannot requeue what a stopping worker's consumer had taken (a delayed retry, held in memory):
    the ledger keeps only what is still in the stub's queues, and the sweeper re-sends the rest."""
    execution_id = _queued()
    with session_scope() as session:
        outbox.move_to_step(session, execution_id, step_index=0, delay_s=3600)
    _age(execution_id, 86400)
    worker = dramatiq.Worker(stub, worker_threads=1, worker_timeout=50)
    worker.start()
    try:
        deadline = time.monotonic() + 10
        while stub.queues[f"{QUEUE}.DQ"].qsize() and time.monotonic() < deadline:  # the consumer takes it
            threading.Event().wait(0.01)
    finally:
        worker.stop()
    assert stub.queues[f"{QUEUE}.DQ"].qsize() == 0
    with session_scope() as session:  # the retry is due now
        session.execute(update(QueueItem).values(available_at=utcnow(), dispatched_at=utcnow() - timedelta(hours=1)))
    assert sweeper.sweep().redispatched == 1

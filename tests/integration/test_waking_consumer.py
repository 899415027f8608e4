"""jobs/consumer.py against the real Redis: a consumer that holds its fill of messages waits for a thread to
finish one (an ack or a nack) and fetches the next at once, instead of sleeping as if the queue were empty."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from dramatiq import Message

from jobs.consumer import WakingConsumer, WakingRedisBroker
from jobs.middleware import broker_kind
from tests.engine_support import delete_namespace

QUEUE = "waking"


@pytest.fixture
def broker(redis_url: str) -> Iterator[WakingRedisBroker]:
    namespace = f"opsc-test-waking-{uuid.uuid4().hex[:8]}"
    broker = WakingRedisBroker(url=redis_url, namespace=namespace)  # type: ignore[no-untyped-call]
    broker.declare_queue(QUEUE)
    yield broker
    broker.close()
    delete_namespace(redis_url, namespace)  # only this test's keys: the server is shared


def _send(broker: WakingRedisBroker, n: int) -> None:
    for i in range(n):
        message: Message[Any] = Message(queue_name=QUEUE, actor_name="probe", args=(i,), kwargs={}, options={})
        broker.enqueue(message)


def _next_in_thread(consumer: WakingConsumer) -> tuple[threading.Thread, list[Any]]:
    got: list[Any] = []
    thread = threading.Thread(target=lambda: got.append(next(consumer)), daemon=True)
    thread.start()
    return thread, got


def _first_message(consumer: WakingConsumer) -> Any:
    for _ in range(100):  # None while Redis has nothing for it yet (Dramatiq's empty-queue backoff)
        message = next(consumer)
        if message is not None:
            return message
    raise AssertionError("no message")


@pytest.mark.parametrize("free", ["ack", "nack"])
def test_a_full_consumer_waits_for_a_free_thread_then_fetches_at_once(broker: WakingRedisBroker, free: str) -> None:
    _send(broker, 2)
    # Dramatiq's timeout is the longest idle sleep: 30 s here, so only a freed thread can end the wait early.
    consumer = broker.consume(QUEUE, prefetch=1, timeout=30_000)
    assert isinstance(consumer, WakingConsumer)
    held = _first_message(consumer)
    waiting, got = _next_in_thread(consumer)  # full: one message held, one allowed
    waiting.join(0.3)
    assert waiting.is_alive(), "a full consumer must wait for a thread, not poll"
    getattr(consumer, free)(held)
    waiting.join(10)
    assert not waiting.is_alive() and got == [None]  # woken: the worker's loop asks again
    assert _first_message(consumer).args == (1,)  # and the next one comes from Redis
    consumer.close()


def test_a_consumer_with_room_takes_messages_as_dramatiqs_does(broker: WakingRedisBroker) -> None:
    _send(broker, 3)
    consumer = broker.consume(QUEUE, prefetch=3, timeout=30_000)
    messages = [_first_message(consumer) for _ in range(3)]
    assert sorted(m.args[0] for m in messages) == [0, 1, 2]
    for message in messages:
        consumer.ack(message)
    consumer.close()


def test_its_workers_are_listed_as_redis_workers(broker: WakingRedisBroker) -> None:
    """The workers table's kind is Dramatiq's broker class (16 characters at most), not our subclass's name."""
    assert broker_kind(broker) == "RedisBroker"

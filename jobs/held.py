"""Which of our messages the broker still holds: what the sweeper asks before it re-sends (core/engine/outbox.py).

A message counts as held while it can still be delivered: queued or delayed, or taken by a consumer that is
alive. It is not held once it was acknowledged or dead-lettered, deleted with its namespace, never sent (a
crash between commit and send), or taken by a consumer that stopped heartbeating.

- **Redis.** Dramatiq keys each queued message in the hash ``<namespace>:<queue>.msgs`` (delayed ones in
  ``<queue>.DQ.msgs``) by a ``redis_message_id`` it draws per enqueue; ``MessageKeys`` makes that key our
  message id, so one ``HEXISTS`` per hash answers. Only our actor's queue is keyed so, and its messages are
  never enqueued twice under one id on one queue (Dramatiq's own retries are off: jobs/actors.py), which is
  what Dramatiq's per-enqueue key guards against. A message fetched by a consumer stays in the hash until it
  is acknowledged; if that consumer's process died, Dramatiq moves it back only after its heartbeat timeout
  (60 s), so a message in the ack set of a broker whose heartbeat (``<namespace>:__heartbeats__``) is older
  than ``stale_after_s`` counts as lost (the sweeper's bound, OPSC_REDISPATCH_AFTER_S, as before).
- **StubBroker** (embedded): the broker lives in this process, so ``StubLedger`` keeps the ids it enqueued
  until they are acknowledged or dead-lettered; at a worker's shutdown, which drops the messages its threads
  had taken (the stub cannot requeue), it keeps only those still in the stub's queues.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Collection
from typing import Any

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker
from dramatiq.common import dq_name
from dramatiq.middleware import Middleware


class MessageKeys(Middleware):
    """Redis: key our actor's messages in Dramatiq's hashes by their message id (see the module docstring)."""

    def __init__(self, queue_name: str) -> None:
        self.queue_names = {queue_name, dq_name(queue_name)}

    def before_enqueue(self, broker: dramatiq.Broker, message: dramatiq.Message[Any], delay: int | None) -> None:
        # RedisBroker.enqueue drew a fresh key into this message's own options just before, and stores the
        # message under whatever the key is once the hooks have run.
        if message.queue_name in self.queue_names and "redis_message_id" in message.options:
            message.options["redis_message_id"] = message.message_id


class StubLedger(Middleware):
    """StubBroker: the (queue, message id) pairs enqueued and not yet acknowledged or dead-lettered."""

    def __init__(self) -> None:
        self._held: set[tuple[str, str]] = set()
        self._lock = threading.Lock()

    def after_enqueue(self, broker: dramatiq.Broker, message: dramatiq.Message[Any], delay: int | None) -> None:
        with self._lock:
            self._held.add((message.queue_name, message.message_id))

    def after_ack(self, broker: dramatiq.Broker, message: Any) -> None:
        self._forget(message)

    def after_nack(self, broker: dramatiq.Broker, message: Any) -> None:
        self._forget(message)

    def after_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        assert isinstance(broker, StubBroker)
        queued = {
            (name, dramatiq.Message.decode(data).message_id)
            for name, queue in broker.queues.items()
            for data in list(queue.queue)
        }
        with self._lock:
            self._held &= queued

    def held(self, message_ids: Collection[str]) -> set[str]:
        with self._lock:
            present = {message_id for _, message_id in self._held}
        return present.intersection(message_ids)

    def _forget(self, message: Any) -> None:
        with self._lock:
            self._held.discard((message.queue_name, message.message_id))


def held(broker: dramatiq.Broker, queue_name: str, message_ids: Collection[str], *, stale_after_s: float) -> set[str]:
    """Which of ``message_ids`` (sent to ``queue_name``) ``broker`` still holds (see the module docstring).

    Raises:
        redis.RedisError: Redis could not be asked.
    """
    if isinstance(broker, RedisBroker):
        return _redis_held(broker, queue_name, list(message_ids), stale_after_s)
    ledger = next((m for m in broker.middleware if isinstance(m, StubLedger)), None)
    if ledger is None:
        raise TypeError(f"{type(broker).__name__} keeps no ledger of its messages")
    return ledger.held(message_ids)


def _redis_held(broker: RedisBroker, queue_name: str, ids: list[str], stale_after_s: float) -> set[str]:
    prefix = f"{broker.namespace}:{queue_name}"
    heartbeats = f"{broker.namespace}:__heartbeats__"
    stale_before_ms = int((time.time() - stale_after_s) * 1000)  # Dramatiq scores heartbeats in epoch ms
    # One MULTI: the delayed hash first, so a message moving from it to the queue's is seen in one of them.
    with broker.client.pipeline(transaction=True) as pipe:
        for message_id in ids:
            pipe.hexists(f"{prefix}.DQ.msgs", message_id)
        for message_id in ids:
            pipe.hexists(f"{prefix}.msgs", message_id)
        pipe.zrangebyscore(heartbeats, 0, stale_before_ms)
        answers = pipe.execute()
    count = len(ids)
    found = {m for i, m in enumerate(ids) if answers[i] or answers[count + i]}
    dead = [w.decode() if isinstance(w, bytes) else str(w) for w in answers[-1]]
    if not found or not dead:
        return found
    with broker.client.pipeline(transaction=False) as pipe:
        for worker in dead:
            for name in (queue_name, dq_name(queue_name)):
                pipe.smembers(f"{broker.namespace}:__acks__.{worker}.{name}")
        taken_by_dead = {m.decode() if isinstance(m, bytes) else str(m) for members in pipe.execute() for m in members}
    return found - taken_by_dead

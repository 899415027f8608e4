"""A Redis consumer that takes the next message as soon as a worker thread is free (issue 15 item 3).

Each worker process holds at most one message per thread (jobs/processes.py). Dramatiq's Redis consumer, once
it holds that many, does not ask Redis for more, and sleeps as if the queue were empty: 5 ms, then twice as
long at every turn, up to the worker timeout (100 ms here). Under a backlog every thread is busy whenever it
looks, so the sleep grows to its longest, and a thread that finishes a plan waits ~50 ms on average for its
next message: for 3 noop steps that is more than the steps took, and 1 process × 4 threads ran 141 steps/s
while half its CPU was idle (docs/benchmarks.md).

This consumer waits for an acknowledgement instead while it is full: a thread's ack (or nack) wakes it at
once, and it fetches again. Empty-queue polling keeps Dramatiq's backoff.
"""

from __future__ import annotations

import threading
from typing import Any

from dramatiq.brokers.redis import RedisBroker, _RedisConsumer


class WakingConsumer(_RedisConsumer):
    """Dramatiq's Redis consumer, woken by a freed thread instead of sleeping while it holds its fill."""

    def __init__(self, broker: RedisBroker, queue_name: str, prefetch: int, timeout: int) -> None:
        super().__init__(broker, queue_name, prefetch, timeout)  # type: ignore[no-untyped-call]
        self._freed = threading.Event()

    def ack(self, message: Any) -> None:
        try:
            super().ack(message)  # type: ignore[no-untyped-call]
        finally:
            self._freed.set()

    def nack(self, message: Any) -> None:
        try:
            super().nack(message)  # type: ignore[no-untyped-call]
        finally:
            self._freed.set()

    def __next__(self) -> Any:
        if not self.message_cache and self._full():
            self._freed.clear()
            if self._full():  # looked again after clearing: an ack in between has set it
                self._freed.wait(self.timeout / 1000)
            return None  # the worker's loop handles its delayed messages, then asks again
        return super().__next__()  # type: ignore[no-untyped-call]

    def _full(self) -> bool:
        return bool(self.outstanding_message_count >= self.prefetch)


class WakingRedisBroker(RedisBroker):
    """Dramatiq's RedisBroker with ``WakingConsumer``."""

    @property
    def consumer_class(self) -> type[WakingConsumer]:
        return WakingConsumer

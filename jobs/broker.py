"""The Dramatiq broker, chosen once per process before any actor is declared (DESIGN §10).

``OPSC_REDIS_URL`` set → a RedisBroker in the ``OPSC_REDIS_NAMESPACE`` namespace (its consumer takes the next
message as soon as a thread is free: jobs/consumer.py). Unset → the embedded
StubBroker, whose messages are consumed by worker threads in this same process (jobs/runtime.py).
Our own middleware starts the heartbeat and sweeper threads in each worker process; jobs/held.py's lets the
sweeper ask either broker whether it still holds a message.
"""

from __future__ import annotations

import dramatiq
from dramatiq.brokers.stub import StubBroker

from core import get_settings
from jobs.consumer import WakingRedisBroker
from jobs.held import MessageKeys, StubLedger
from jobs.middleware import OpsMiddleware

QUEUE = "opsconductor"


def _build() -> dramatiq.Broker:
    settings = get_settings()
    broker: dramatiq.Broker
    if settings.redis_url:
        broker = WakingRedisBroker(url=settings.redis_url, namespace=settings.redis_namespace)  # type: ignore[no-untyped-call]
        broker.add_middleware(MessageKeys(QUEUE))
    else:
        broker = StubBroker()
        broker.add_middleware(StubLedger())
    broker.add_middleware(OpsMiddleware())
    return broker


broker = _build()
dramatiq.set_broker(broker)


def is_embedded() -> bool:
    """True when the broker is the in-process StubBroker."""
    return isinstance(broker, StubBroker)

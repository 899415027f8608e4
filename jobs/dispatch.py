"""The Dispatcher core uses to send work: one Dramatiq message per announcement, carrying the execution id
only, sent under the message id the queue row names; and the question the sweeper asks before re-sending."""

from __future__ import annotations

from collections.abc import Collection
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import dramatiq


class BrokerDispatcher:
    """Implements core.ports.Dispatcher on the process's broker (jobs/broker.py), or on ``broker`` when given."""

    def __init__(self, broker: dramatiq.Broker | None = None) -> None:
        self._broker = broker

    def dispatch(self, execution_id: str, delay_s: float = 0.0, *, message_id: str | None = None) -> None:
        from core import metrics
        from jobs.actors import run_step

        message = run_step.message(execution_id)
        if message_id is not None:
            message = message.copy(message_id=message_id)
        (self._broker or run_step.broker).enqueue(message, delay=int(delay_s * 1000) if delay_s > 0 else None)
        metrics.MESSAGES_SENT.inc()

    def held(self, message_ids: Collection[str]) -> set[str] | None:
        from core import get_settings
        from jobs import held
        from jobs.broker import QUEUE, broker

        stale_after_s = get_settings().redispatch_after_s
        return held.held(self._broker or broker, QUEUE, message_ids, stale_after_s=stale_after_s)

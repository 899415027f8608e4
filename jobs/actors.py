"""Actors. Messages carry ids only; the database says what to do (DESIGN §3.2).

Dramatiq's own retries are off: attempts and backoff live in the database (core/engine/steps.py), so they
survive a broker loss. The time limit is only a backstop: the engine enforces the policy's timeouts.
"""

from __future__ import annotations

import dramatiq

from core import engine
from jobs.broker import QUEUE
from jobs.middleware import current_message_id, current_worker_id

BACKSTOP_TIME_LIMIT_MS = 3 * 3600 * 1000


@dramatiq.actor(queue_name=QUEUE, max_retries=0, time_limit=BACKSTOP_TIME_LIMIT_MS)
def run_step(execution_id: str) -> None:
    """Run the next step of an execution (a no-op if it is not ours to run)."""
    engine.process(execution_id, worker_id=current_worker_id.get(), message_id=current_message_id.get())

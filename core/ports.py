"""The seam to the job runner. ``core`` never imports ``jobs``; ``jobs`` registers a Dispatcher at start-up.

With no dispatcher registered, work still lands in the ``execution_queue`` table (the outbox) and a
worker started later picks it up from there.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Protocol

log = logging.getLogger(__name__)


class Dispatcher(Protocol):
    """Sends the broker message for queued work. Called only after the queue row is committed."""

    def dispatch(self, execution_id: str, delay_s: float = 0.0) -> None: ...


_dispatcher: Dispatcher | None = None


def set_dispatcher(dispatcher: Dispatcher | None) -> None:
    """Register (or, with None, remove) the job runner's dispatcher."""
    global _dispatcher
    _dispatcher = dispatcher


def get_dispatcher() -> Dispatcher | None:
    """The registered dispatcher, if any."""
    return _dispatcher


def dispatch_committed(execution_ids: Iterable[str], *, delay_s: float = 0.0) -> None:
    """Hand committed work to the job runner. A lost message is not an error: the sweeper re-sends it."""
    dispatcher = _dispatcher
    if dispatcher is None:
        return
    for execution_id in execution_ids:
        try:
            dispatcher.dispatch(execution_id, delay_s)
        except Exception:
            log.warning("dispatch of %s failed; the sweeper will retry", execution_id, exc_info=True)


# Where core/engine/outbox.py leaves (execution id, delay) pairs for session_scope to send after commit.
AFTER_COMMIT_KEY = "opsc.dispatch_after_commit"

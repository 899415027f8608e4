"""The seam to the job runner. ``core`` never imports ``jobs``; ``jobs`` registers a Dispatcher at start-up.

With no dispatcher registered, work still lands in the ``execution_queue`` table (the outbox) and a
worker started later picks it up from there.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable
from typing import NamedTuple, Protocol

from core.errors import ServiceUnavailable

log = logging.getLogger(__name__)


class Dispatcher(Protocol):
    """Sends the broker message for queued work. Called only after the queue row is committed."""

    def dispatch(self, execution_id: str, delay_s: float = 0.0, *, message_id: str | None = None) -> None:
        """Send one message for ``execution_id`` (under ``message_id`` when given: the id the queue row holds)."""
        ...

    def held(self, message_ids: Collection[str]) -> set[str] | None:
        """Which of ``message_ids`` the broker still holds (queued, delayed, or taken by a live consumer).

        None when it cannot tell: the sweeper then re-sends by age alone. May raise when the broker is away.
        """
        ...


class Outgoing(NamedTuple):
    """A message to send once the transaction that made its work runnable has committed."""

    execution_id: str
    delay_s: float
    message_id: str | None


_dispatcher: Dispatcher | None = None


def set_dispatcher(dispatcher: Dispatcher | None) -> None:
    """Register (or, with None, remove) the job runner's dispatcher."""
    global _dispatcher
    _dispatcher = dispatcher


def get_dispatcher() -> Dispatcher | None:
    """The registered dispatcher, if any."""
    return _dispatcher


def dispatch_committed(messages: Iterable[Outgoing]) -> None:
    """Hand committed work to the job runner. A lost message is not an error: the sweeper re-sends it."""
    dispatcher = _dispatcher
    if dispatcher is None:
        return
    for message in messages:
        try:
            dispatcher.dispatch(message.execution_id, message.delay_s, message_id=message.message_id)
        except Exception:
            log.warning("dispatch of %s failed; the sweeper will retry", message.execution_id, exc_info=True)


def held_messages(message_ids: Collection[str]) -> set[str] | None:
    """Which of ``message_ids`` the broker still holds; None when no dispatcher can tell (see Dispatcher.held).

    Raises:
        ServiceUnavailable: the broker could not be asked (whatever the job runner raised is its cause).
    """
    dispatcher = _dispatcher
    held = getattr(dispatcher, "held", None)  # a dispatcher from before message ids cannot tell
    if held is None or not message_ids:
        return None if held is None else set()
    try:
        answer: set[str] | None = held(message_ids)
    except Exception as exc:  # the job runner's errors (redis, ...) are not core's to know: translated here
        raise ServiceUnavailable(f"the broker could not say which messages it holds: {type(exc).__name__}") from exc
    return answer


# Where core/engine/outbox.py leaves the messages (by execution id: the last one of a transaction wins) for
# session_scope to send after commit.
AFTER_COMMIT_KEY = "opsc.dispatch_after_commit"

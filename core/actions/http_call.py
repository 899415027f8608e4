"""HTTP plumbing shared by the runners and service clients that speak HTTP (``http``, ``automation``, the
asset service): one request a step can abort, and retries with backoff for calls that are safe to repeat.

The circuit breaker stays in core/actions/circuit.py; callers decide what counts as a failure of the target.
Must not import the engine or any runner.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import httpx

from core.actions.context import StepContext

RETRIES = 2
RETRY_BACKOFF_S = 0.2
POLL_S = 0.02  # how often the runner looks at ctx.should_stop() while a request is in flight

R = TypeVar("R")


class Stopped(Exception):
    """The request was aborted because the step must stop; ``why`` is "cancelled" or "timed out"."""

    def __init__(self, why: str) -> None:
        super().__init__(why)
        self.why = why


def send(ctx: StepContext, method: str, url: str, *, timeout_s: float, **request: Any) -> httpx.Response:
    """Send one request (``request``: httpx keywords such as ``json``, ``headers``, ``auth``) and return the
    response, body read. It runs in a thread so the runner can watch ``ctx``; closing the client aborts it.

    Raises:
        Stopped: cancel, shutdown or the step's deadline came first.
        httpx.HTTPError: the request failed (connection, timeout, protocol).
    """
    client = httpx.Client(timeout=max(0.1, timeout_s), follow_redirects=False)
    box: dict[str, Any] = {}

    def go() -> None:
        try:
            box["response"] = client.request(method, url, **request)
        except httpx.HTTPError as exc:
            box["error"] = exc

    worker = threading.Thread(target=go, daemon=True, name="opsc-http")
    worker.start()
    while worker.is_alive():
        if ctx.should_stop():
            client.close()  # aborts the request
            worker.join(timeout=1)
            raise Stopped("cancelled" if ctx.stop.is_set() else "timed out")
        time.sleep(POLL_S)
    client.close()
    if "error" in box:
        raise box["error"]
    response: httpx.Response = box["response"]
    return response


def with_retries(once: Callable[[], tuple[R, bool]], *, attempts: int, wait: Callable[[float], bool]) -> R | None:
    """Call ``once`` (it returns its result and whether a failure may be retried) up to ``attempts`` times,
    pausing ``RETRY_BACKOFF_S * 2**n`` between tries. Only for calls that are safe to repeat.

    Returns:
        The last result, or None when ``wait`` (given the pause; True = stop) asks to stop.
    """
    result, retryable = once()
    for attempt in range(1, attempts):
        if not retryable:
            break
        if wait(RETRY_BACKOFF_S * 2 ** (attempt - 1)):
            return None
        result, retryable = once()
    return result


def step_wait(ctx: StepContext) -> Callable[[float], bool]:
    """A ``with_retries`` pause for a step: never past its deadline, cut short by a stop request.

    A deadline reached during the pause is left to the next ``send``, which reports it as "timed out".
    """
    return lambda pause_s: ctx.stop.wait(min(pause_s, ctx.remaining_s()))

"""Whether this process can reach the database, told once per change, and work that outlasts an outage (§15).

A worker's watcher ticks four times a second and its sweeper every second: during a database outage
each tick used to log a traceback (~4,700 lines per worker in 30 s). Callers that meet an outage tell
``outage``; the first failure logs one warning, the first success afterwards one line saying how long it
lasted, and nothing in between. The sweeper also asks ``up_for_s`` so that, once the database is back, it
gives live workers one lease period to renew before it reclaims their steps as lost, and the engine
runs a claim or a step's result through ``through_outages`` so that a result the worker has is stored once
the database is back instead of thrown away.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy.exc import DBAPIError

from core.errors import ServiceUnavailable
from db.settings import get_settings

T = TypeVar("T")

log = logging.getLogger(__name__)

# A migration beside live workers: a pool of 30 connections, a few altered statements in one transaction.
STALE_PLAN_RETRIES = 100

_lock = threading.Lock()
_down_since: float | None = None  # monotonic time of the first failure of the current outage
_up_since: float = float("-inf")  # monotonic time the database was last seen coming back (never: -inf)


def is_outage(exc: BaseException) -> bool:
    """True for an error that means "the database is not there right now", as opposed to a bug."""
    if isinstance(exc, ServiceUnavailable):
        return True
    if isinstance(exc, DBAPIError):
        return bool(exc.connection_invalidated) or _looks_unreachable(str(exc.orig))
    return False


def is_stale_plan(exc: BaseException) -> bool:
    """True when PostgreSQL refused a prepared statement whose table another process altered meanwhile (a
    migration run beside live workers): the transaction was rolled back whole, and psycopg dropped the
    statement, so running the work again prepares it anew (db/engine.py: statements are prepared)."""
    if not isinstance(exc, DBAPIError):
        return False
    orig = exc.orig
    return getattr(orig, "sqlstate", None) == "0A000" and "cached plan must not change result type" in str(orig)


def _looks_unreachable(text: str) -> bool:
    text = text.lower()
    markers = ("connect", "shutting down", "starting up", "in recovery", "timeout", "unable to open")
    return any(marker in text for marker in markers)


def outage(where: str, exc: BaseException) -> None:
    """Record a failure to reach the database from ``where``: one warning when an outage begins."""
    global _down_since
    with _lock:
        if _down_since is not None:
            return
        _down_since = time.monotonic()
    first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0].removeprefix(
        "the database is unreachable: "
    )
    log.warning("database unreachable (seen by the %s): %s; retrying quietly until it is back", where, first_line)


def reachable() -> None:
    """Record a success: one line when an outage ends."""
    global _down_since, _up_since
    if _down_since is None:  # the common case, without the lock
        return
    with _lock:
        if _down_since is None:
            return
        lasted = time.monotonic() - _down_since
        _down_since, _up_since = None, time.monotonic()
    log.info("database reachable again after %.1fs", lasted)


def up_for_s() -> float:
    """Seconds since the database was last seen coming back (0 while it is down, infinite if never down)."""
    if _down_since is not None:
        return 0.0
    return time.monotonic() - _up_since


def through_outages(where: str, work: Callable[[], T], *, give_up: Callable[[], bool] = lambda: False) -> T:
    """Run ``work`` (a whole transaction), again and again while the database is unreachable.

    Waits 0.1 s, doubling to 1 s, between tries, so that a result is stored within about a second of the
    database coming back (before the sweeper's hold-off ends). Gives up, re-raising the last error, after
    ``Settings.outage_retry_s`` or as soon as ``give_up()`` is true. A stale prepared statement
    (``is_stale_plan``) is run again at once, quietly, up to ``STALE_PLAN_RETRIES`` times (each pooled
    connection refuses each altered statement once). Any other error is raised at once.
    """
    stop_at = time.monotonic() + get_settings().outage_retry_s
    delay_s = 0.1
    stale_retries = 0
    while True:
        try:
            result = work()
        except Exception as exc:
            if is_stale_plan(exc) and stale_retries < STALE_PLAN_RETRIES:
                stale_retries += 1
                continue
            if not is_outage(exc) or give_up() or time.monotonic() + delay_s > stop_at:
                raise
            outage(where, exc)
            time.sleep(delay_s)
            delay_s = min(1.0, delay_s * 2)
            continue
        reachable()
        return result

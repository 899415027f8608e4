"""The only ui module that touches ``jobs``: it starts runtimes for the human interfaces.

- ``connect()``: make this process able to hand work to workers (Redis: send messages; embedded: none
  needed, the workers' sweeper reads the database queue).
- ``start_embedded()``: worker threads in this process (the console, ``submit --wait``, ``worker``
  without Redis).
- ``run_worker_processes()``: Dramatiq's worker processes for ``opsconductor worker`` on Redis, in this process.
- ``broker_ping()``: the broker probe of the GO/NO-GO check (core/ops/readiness.py must not import jobs).
"""

from __future__ import annotations

import threading
from urllib.parse import urlsplit

import core


def connect() -> None:
    """Register the broker dispatcher when a Redis broker is configured (no-op on the embedded default)."""
    if core.get_settings().redis_url:
        # Not jobs.actors (the broker, Dramatiq, Redis): the dispatcher imports it with the first message
        # it sends, so a command that queues nothing does not pay for it.
        from core import set_dispatcher
        from jobs.dispatch import BrokerDispatcher

        set_dispatcher(BrokerDispatcher())


def ensure_console_runtime() -> str:
    """What the console needs to get work done: the Redis dispatcher, or embedded worker threads.

    Returns a one-line description for the sidebar.
    """
    settings = core.get_settings()
    core.configure_logging(settings.log_format)  # OPSC_LOG_FORMAT, and the masking filter on every handler
    if settings.redis_url:
        connect()
        return "workers on Redis"
    if not settings.console_worker:
        return "no worker in this process (OPSC_CONSOLE_WORKER=0)"
    start_embedded(serve_metrics=True)
    return "embedded worker"


def start_embedded(threads: int = 4, *, serve_metrics: bool = False) -> None:
    """Start the in-process worker threads (once per process); ``serve_metrics``: on ``OPSC_METRICS_PORT``."""
    from jobs.runtime import start_embedded as start

    start(threads, serve_metrics=serve_metrics)


def stop_embedded() -> None:
    """Stop the in-process worker threads, gracefully."""
    from jobs.runtime import stop_embedded as stop

    stop()


def run_worker_processes(processes: int, threads: int) -> int:
    """Supervise Dramatiq worker processes on Redis from this process until stopped; the exit code."""
    from jobs.processes import run_worker_processes as run

    return run(processes, threads)


def broker_ping(timeout_s: float = 3.0) -> str:
    """Ask the broker to answer; return what answered. Raises ConnectionError when it does not in time.

    The embedded broker lives in each process and needs no answer. Redis is pinged from a daemon thread
    because the broker's client has no socket timeout: a black-holed host must not hang the check.
    """
    url = core.get_settings().redis_url
    if not url:
        return "embedded broker (in-process; workers are fed from the database queue)"
    from jobs.broker import broker

    outcome: list[BaseException | None] = []

    def ping() -> None:
        try:
            broker.client.ping()  # type: ignore[attr-defined]
            outcome.append(None)
        except Exception as exc:  # noqa: BLE001  reported to the caller below
            outcome.append(exc)

    where = f"Redis at {urlsplit(url).hostname}:{urlsplit(url).port or 6379}"  # never the URL: it may hold a password
    thread = threading.Thread(target=ping, daemon=True, name="opsc-broker-ping")
    thread.start()
    thread.join(timeout_s)
    if not outcome:
        raise ConnectionError(f"{where} did not answer within {timeout_s:g}s")
    if outcome[0] is not None:
        raise ConnectionError(f"{where} is unreachable ({type(outcome[0]).__name__})")
    return f"{where} answers"

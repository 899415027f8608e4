"""The only ui module that touches ``jobs``: it starts runtimes for the human interfaces.

- ``connect()``: make this process able to hand work to workers (Redis: send messages; embedded: none
  needed, the workers' sweeper reads the database queue).
- ``start_embedded()``: worker threads in this process (the console, ``submit --wait``, ``worker``
  without Redis).
- ``worker_argv()``: the Dramatiq command line for ``opsconductor worker`` on Redis.
"""

from __future__ import annotations

import sys

from core import get_settings, install_log_masking


def connect() -> None:
    """Register the broker dispatcher when a Redis broker is configured (no-op on the embedded default)."""
    if get_settings().redis_url:
        import jobs.actors  # noqa: F401  (declares the actor the dispatcher sends to)
        from core.ports import set_dispatcher
        from jobs.dispatch import BrokerDispatcher

        set_dispatcher(BrokerDispatcher())


def ensure_console_runtime() -> str:
    """What the console needs to get work done: the Redis dispatcher, or embedded worker threads.

    Returns a one-line description for the sidebar.
    """
    install_log_masking()
    settings = get_settings()
    if settings.redis_url:
        connect()
        return "workers on Redis"
    if not settings.console_worker:
        return "no worker in this process (OPSC_CONSOLE_WORKER=0)"
    start_embedded()
    return "embedded worker"


def start_embedded(threads: int = 4) -> None:
    """Start the in-process worker threads (once per process)."""
    from jobs.runtime import start_embedded as start

    start(threads)


def stop_embedded() -> None:
    """Stop the in-process worker threads, gracefully."""
    from jobs.runtime import stop_embedded as stop

    stop()


def worker_argv(processes: int, threads: int) -> list[str]:
    """The dramatiq CLI invocation for worker processes on Redis."""
    return [sys.executable, "-m", "dramatiq", "jobs.actors", "--processes", str(processes), "--threads", str(threads)]

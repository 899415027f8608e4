"""The embedded runtime: Dramatiq worker threads in this process, on the in-process broker.

Used by the console (``opsconductor up``), ``opsconductor worker`` without Redis, and ``submit --wait``.
The same engine code runs as in a Redis worker process; the sweeper feeds the in-memory broker from
the database queue, so work submitted by another process (or before a restart) is picked up too.
"""

from __future__ import annotations

import logging
import threading

import dramatiq

from core import get_settings, metrics
from jobs import actors  # noqa: F401  (declares the actors on the broker)
from jobs.broker import broker, is_embedded
from jobs.processes import take_no_more_than_threads

log = logging.getLogger(__name__)

_lock = threading.Lock()
_running: EmbeddedRuntime | None = None


class EmbeddedRuntime:
    """Worker threads consuming the in-process broker. ``stop()`` is graceful."""

    def __init__(self, threads: int) -> None:
        # Dramatiq's TimeLimit middleware (and ours) only arm in a booted process; in-process we boot it.
        broker.emit_after("process_boot")
        take_no_more_than_threads(threads)  # one message per thread (jobs/processes.py says why)
        self.worker = dramatiq.Worker(broker, worker_threads=threads, worker_timeout=100)
        self.worker.start()

    def stop(self, timeout_ms: int = 30_000) -> None:
        """Stop consuming, let running steps end (retryable ones hand their work back), stop the threads."""
        self.worker.stop(timeout=timeout_ms)


def start_embedded(threads: int = 4, *, serve_metrics: bool = False) -> EmbeddedRuntime:
    """Start (once per process) and return the embedded runtime.

    Args:
        serve_metrics: also serve Prometheus metrics on ``OPSC_METRICS_PORT`` (when set). The console and
            ``opsconductor worker`` ask for it; a one-off command (``submit --wait``) does not.

    Raises:
        RuntimeError: ``OPSC_REDIS_URL`` is set: run ``opsconductor worker`` processes instead.
    """
    global _running
    if not is_embedded():
        raise RuntimeError("OPSC_REDIS_URL is set: start workers with `opsconductor worker`, not the embedded runtime")
    with _lock:
        if _running is None:
            _running = EmbeddedRuntime(threads)
        settings = get_settings()
        if serve_metrics and settings.metrics_port is not None:
            metrics.serve(settings.metrics_port, settings.metrics_addr)
        return _running


def stop_embedded() -> None:
    """Stop the embedded runtime if it runs."""
    global _running
    with _lock:
        if _running is not None:
            _running.stop()
            _running = None
        metrics.stop_serving()

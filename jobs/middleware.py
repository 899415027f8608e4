"""Dramatiq middleware that turns a worker process into an OpsConductor worker.

After the process boots: register it in the workers table, start its heartbeat and sweeper threads,
and register the dispatcher with core. Before it shuts down: ask running retryable steps to hand their
work back, stop the threads, release leftover leases, mark the worker stopped.
"""

from __future__ import annotations

import logging
import threading

import dramatiq
from dramatiq.middleware import Middleware

from core import engine, recovery, sweeper, workers
from core.ports import set_dispatcher
from core.safety.masking import install_log_masking
from db.engine import dispose_engines
from db.settings import get_settings

log = logging.getLogger(__name__)


class OpsMiddleware(Middleware):
    """Worker lifecycle hooks (see the module docstring). One instance per broker."""

    def __init__(self) -> None:
        self.worker_id: str | None = None
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def after_process_boot(self, broker: dramatiq.Broker) -> None:
        from jobs.dispatch import BrokerDispatcher

        dispose_engines()  # a forked process must not share its parent's connections
        install_log_masking()
        set_dispatcher(BrokerDispatcher())
        engine.reset_shutdown()
        self._stop.clear()

    def after_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        install_log_masking()  # again: the dramatiq CLI sets up its handlers before the workers boot
        self.worker_id = engine.worker_identity("worker")
        workers.register_worker(self.worker_id, kind=type(broker).__name__, threads=worker.worker_threads)
        current_worker_id.set(self.worker_id)
        settings = get_settings()
        self._threads = [
            threading.Thread(
                target=self._loop, args=(settings.worker_heartbeat_s, self._beat), daemon=True, name="opsc-heartbeat"
            ),
            threading.Thread(
                target=self._loop, args=(settings.sweep_interval_s, sweeper.sweep), daemon=True, name="opsc-sweeper"
            ),
        ]
        for thread in self._threads:
            thread.start()
        log.info("worker %s started with %d threads", self.worker_id, worker.worker_threads)

    def before_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        engine.request_shutdown()

    def after_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)
        set_dispatcher(None)  # nothing consumes this broker any more: the sweeper of a live worker re-sends
        engine.reset_shutdown()  # the running steps have ended; inline runs in this process may go on
        if self.worker_id is not None:
            recovery.release_worker_leases(self.worker_id)
            workers.mark_stopped(self.worker_id)
            log.info("worker %s stopped", self.worker_id)

    def _beat(self) -> None:
        if self.worker_id is not None:
            workers.heartbeat(self.worker_id)

    def _loop(self, interval_s: float, work: object) -> None:
        while not self._stop.wait(interval_s):
            try:
                work()  # type: ignore[operator]
            except Exception:
                log.warning("periodic task %s failed", getattr(work, "__name__", work), exc_info=True)


class _CurrentWorker:
    """The id of this process's worker, for the actors (set once the worker has booted)."""

    def __init__(self) -> None:
        self._value: str | None = None

    def set(self, value: str) -> None:
        self._value = value

    def get(self) -> str:
        if self._value is None:
            self._value = engine.worker_identity("worker")
        return self._value


current_worker_id = _CurrentWorker()

"""Dramatiq middleware that turns a worker process into an OpsConductor worker.

After the process boots: treat a burst of TERMs as one graceful stop (jobs/signals.py), apply the log
format (``OPSC_LOG_FORMAT``) and the masking filter, serve metrics (``OPSC_METRICS_PORT``: a dramatiq CLI
worker process N serves base+N), register it in the workers table, start its heartbeat, sweeper and
notification delivery threads, and register the dispatcher with core. Around each message: bind its id as
the trace id of the thread's log records. Before it shuts down: ask running retryable steps to hand their
work back, stop the threads, release leftover leases, mark the worker stopped.
"""

from __future__ import annotations

import logging
import multiprocessing
import threading
from contextvars import ContextVar
from typing import Any

import dramatiq
from dramatiq.broker import MessageProxy
from dramatiq.middleware import Middleware

from core import engine, get_settings, metrics
from core.engine import reachability, recovery, sweeper, workers
from core.logs import bind_process, configure_logging, set_trace_id
from core.notify import delivery as notify_delivery
from core.ports import set_dispatcher
from core.transactions import dispose_engines
from jobs.signals import coalesce_termination

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
        settings = get_settings()
        configure_logging(settings.log_format)
        index = dramatiq_process_index()
        if settings.metrics_port is not None and index is not None:
            metrics.serve(settings.metrics_port + index, settings.metrics_addr)
        if index is not None:  # a dramatiq CLI worker process: a group TERM must not become "kill now"
            coalesce_termination()
        set_dispatcher(BrokerDispatcher())
        engine.reset_shutdown()
        self._stop.clear()

    def after_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        configure_logging(get_settings().log_format)  # again: in case handlers were added since process boot
        self.worker_id = engine.worker_identity("worker")
        bind_process(worker=self.worker_id)
        workers.register_worker(self.worker_id, kind=broker_kind(broker), threads=worker.worker_threads)
        current_worker_id.set(self.worker_id)
        settings = get_settings()
        self._threads = [
            threading.Thread(
                target=self._loop, args=(settings.worker_heartbeat_s, self._beat), daemon=True, name="opsc-heartbeat"
            ),
            threading.Thread(
                target=self._loop, args=(settings.sweep_interval_s, sweeper.sweep), daemon=True, name="opsc-sweeper"
            ),
            # Notifications go out from their own thread: a slow receiver never delays a sweep or a step.
            threading.Thread(target=notify_delivery.run_until, args=(self._stop,), daemon=True, name="opsc-notify"),
        ]
        for thread in self._threads:
            thread.start()
        log.info("worker %s started with %d threads", self.worker_id, worker.worker_threads)

    def before_process_message(self, broker: dramatiq.Broker, message: MessageProxy) -> None:
        set_trace_id(message.message_id)  # the engine's records (and dramatiq's own about it) share this id
        current_message_id.set(message.message_id)  # the token the claim spends (core/priority.py)

    def after_process_message(
        self,
        broker: dramatiq.Broker,
        message: MessageProxy,
        *,
        result: Any = None,
        exception: BaseException | None = None,
    ) -> None:
        set_trace_id(None)
        current_message_id.set(None)

    def after_skip_message(self, broker: dramatiq.Broker, message: MessageProxy) -> None:
        set_trace_id(None)
        current_message_id.set(None)

    def before_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        engine.request_shutdown()

    def after_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        self._stop.set()
        notify_delivery.wake()  # wake the delivery thread so it sees the stop at once
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
            name = getattr(work, "__name__", str(work))
            try:
                work()  # type: ignore[operator]
            except Exception as exc:
                if reachability.is_outage(exc):
                    reachability.outage(name, exc)  # one line per outage, not a traceback per tick
                else:
                    log.warning("periodic task %s failed", name, exc_info=True)
            else:
                reachability.reachable()


def dramatiq_process_index() -> int | None:
    """Which worker process of the dramatiq CLI this is (0 … K-1), or None outside one (embedded runtime).

    The CLI hands the index to its process target only, ``dramatiq.cli.worker_process(args, worker_id, …)``,
    so it is read from the running ``multiprocessing.Process`` (fork and spawn both keep its arguments).
    """
    process = multiprocessing.current_process()
    target = getattr(process, "_target", None)
    args: tuple[Any, ...] = getattr(process, "_args", ())
    if getattr(target, "__module__", None) != "dramatiq.cli" or getattr(target, "__name__", None) != "worker_process":
        return None
    return args[1] if len(args) > 1 and isinstance(args[1], int) else None


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
# The message the worker thread is processing (set before, cleared after): the actor hands it to the claim.
current_message_id: ContextVar[str | None] = ContextVar("opsc_current_message_id", default=None)


def broker_kind(broker: dramatiq.Broker) -> str:
    """The broker's kind as the workers table shows it: Dramatiq's class (``RedisBroker``, ``StubBroker``), also
    for our subclass of one (jobs/consumer.py); the column holds 16 characters."""
    dramatiq_class = next((c for c in type(broker).__mro__ if c.__module__.startswith("dramatiq.")), type(broker))
    return dramatiq_class.__name__

"""The Dispatcher core uses to send work: one Dramatiq message per step, carrying the execution id only."""

from __future__ import annotations


class BrokerDispatcher:
    """Implements core.ports.Dispatcher on the current broker."""

    def dispatch(self, execution_id: str, delay_s: float = 0.0) -> None:
        from jobs.actors import run_step

        if delay_s > 0:
            run_step.send_with_options(args=(execution_id,), delay=int(delay_s * 1000))
        else:
            run_step.send(execution_id)

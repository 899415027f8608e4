"""What a worker did with a message (``core.engine.steps.process``'s result), shared by the step and fan-out runs."""

from __future__ import annotations

from enum import StrEnum


class Outcome(StrEnum):
    """What ``process`` did with a message."""

    NOOP = "noop"  # nothing to do: duplicate, late, early, or already ended
    ADVANCED = "advanced"  # a step finished and the next one was queued
    RETRY = "retry"  # the step failed and will be retried after a backoff
    RELEASED = "released"  # the worker is shutting down; the step was handed back untouched
    FINISHED = "finished"  # the execution ended
    STALE = "stale"  # the lease was lost while the step ran; its result was refused

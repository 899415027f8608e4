"""Dramatiq worker processes on Redis, supervised from this process (``opsconductor worker``).

Dramatiq's own CLI (``python -m dramatiq jobs.actors``) is run in-process rather than exec'd: the actors
are imported once, here, before the supervisor forks, and every worker process starts with them loaded.
Exec'ing it made each start pay twice (the CLI's imports, then the new interpreter's), and each forked
worker process import everything again; a worker's boot is what crash recovery waits on (issue 14).
Everything after the fork is Dramatiq's: its supervisor, signal handling, worker processes and exit code.
"""

from __future__ import annotations

import logging
import os

log = logging.getLogger(__name__)

# Dramatiq's idle consumers back off up to this many ms between polls (default 1000): a plan's next step
# would wait that long whenever the queue runs dry, so keep it short.
WORKER_TIMEOUT_ENV = "dramatiq_worker_timeout"
WORKER_TIMEOUT_MS = "100"


def take_no_more_than_threads(threads: int) -> None:
    """Have each worker process hold at most ``threads`` messages: one per thread, none waiting behind a busy one.

    Dramatiq prefetches twice its threads by default. A message taken while every thread runs a step waits in
    that process until a thread is free, though another process may be idle; and if the process dies it is
    stuck in the dead consumer's ack set until the sweeper finds it lost (jobs/held.py), seconds a reclaimed
    read step's retry does not have inside its execution limit (the chaos test saw two such retries time out).
    Worker reads the module's value when it is built, so setting it before the fork covers every process.
    """
    import dramatiq.worker

    dramatiq.worker.QUEUE_PREFETCH = threads


def run_worker_processes(processes: int, threads: int) -> int:
    """Run ``processes`` Dramatiq worker processes of ``threads`` threads until stopped; Dramatiq's exit code.

    Call it from the main thread of a process that has started no threads (the supervisor forks).
    """
    # Read once, when dramatiq.worker is first imported (a default argument of Worker): set it before.
    os.environ.setdefault(WORKER_TIMEOUT_ENV, WORKER_TIMEOUT_MS)
    import dramatiq.worker
    from dramatiq import cli

    import jobs.actors  # noqa: F401  before the fork: the worker processes inherit it instead of importing it

    take_no_more_than_threads(threads)

    if str(dramatiq.worker.WORKER_TIMEOUT) != os.environ[WORKER_TIMEOUT_ENV]:
        log.warning("dramatiq was imported before %s was set: idle workers poll every %d ms",
                    WORKER_TIMEOUT_ENV, dramatiq.worker.WORKER_TIMEOUT)  # fmt: skip
    args = cli.make_argument_parser().parse_args(  # type: ignore[no-untyped-call]
        ["jobs.actors", "--processes", str(processes), "--threads", str(threads)]
    )
    return int(cli.main(args) or 0)  # type: ignore[no-untyped-call]

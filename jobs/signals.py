"""One graceful stop per burst of termination signals, in a dramatiq CLI worker process.

``kill -TERM -PGID`` (systemd's default, and what a container runtime or an operator's Ctrl-C on a group
sends) reaches dramatiq's supervisor and its worker processes at once. The supervisor then forwards a TERM
of its own to each worker process, and dramatiq's worker handler reads a second TERM as "kill now": the
process exits before its graceful shutdown ran (no lease released, a running step's result never stored,
the execution left ``running`` until its lease expired). Here a TERM arriving within ``window_s`` of the
first counts as the same request; a TERM after that still means "kill now", as dramatiq intends.
"""

from __future__ import annotations

import signal
import threading
import time
from types import FrameType
from typing import Any

COALESCE_WINDOW_S = 5.0  # the supervisor's forwarded TERM follows the group's by milliseconds


def coalesce_termination(window_s: float = COALESCE_WINDOW_S) -> bool:
    """Wrap this process's SIGTERM and SIGHUP handlers so that a repeat within ``window_s`` of the first
    signal is ignored. Returns False (and changes nothing) off the main thread or with no Python handler.
    """
    if threading.current_thread() is not threading.main_thread():
        return False
    wrapped = False
    first: dict[str, float] = {}
    for sig in (signal.SIGTERM, signal.SIGHUP):
        original = signal.getsignal(sig)
        if not callable(original):
            continue

        def handler(signum: int, frame: FrameType | None, original: Any = original) -> Any:
            now = time.monotonic()
            started = first.setdefault("at", now)
            if started != now and now - started < window_s:
                return None  # the same stop request, delivered twice (group signal + forwarded)
            return original(signum, frame)

        signal.signal(sig, handler)
        wrapped = True
    return wrapped

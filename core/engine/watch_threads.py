"""Threads that watch running steps, kept between steps (core/engine/watch.py runs one beside every step).

Starting a thread and joining it cost ~190 µs of CPU here, more than a noop step's own work, and a worker
starts one per step. A watcher thread that finished its step waits, idle, for the next one; a step finds an
idle one or starts a new one, so every running step always has its own watcher (a bounded pool could leave a
step without heartbeats, and its lease would expire under it). At most ``MAX_IDLE`` wait; more end.

A forked child (Dramatiq's worker processes) inherits the list but not the threads: the list is emptied in
the child, and a thread found dead is skipped anyway.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable
from typing import Any

MAX_IDLE = 32  # more than a worker process's threads, so a busy worker starts none


class Watching:
    """One step's watch, running on a watcher thread: ``join`` waits for it to return."""

    def __init__(self) -> None:
        self._finished = threading.Event()

    def join(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the watch to return; whether it did."""
        return self._finished.wait(timeout)


class _Thread:
    def __init__(self, name: str) -> None:
        self.jobs: queue.SimpleQueue[tuple[Callable[[], Any], Watching]] = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._serve, daemon=True, name=name)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            job, watching = self.jobs.get()
            try:
                job()
            finally:
                watching._finished.set()
                del job, watching  # the finished step's plan (its secrets) must not outlive it here
            if not _rest(self):
                return


_lock = threading.Lock()
_idle: list[_Thread] = []


def start(job: Callable[[], Any], *, name: str) -> Watching:
    """Run ``job`` on an idle watcher thread, or a new one named ``name``."""
    watching = Watching()
    with _lock:
        thread = None
        while _idle and thread is None:
            found = _idle.pop()
            thread = found if found.thread.is_alive() else None
    if thread is None:
        thread = _Thread(name)
    thread.jobs.put((job, watching))
    return watching


def idle_count() -> int:
    """How many watcher threads wait for a step (tests; the workers page could show it)."""
    with _lock:
        return len(_idle)


def _rest(thread: _Thread) -> bool:
    """Put a thread that finished its step back among the idle ones; False if enough wait already."""
    with _lock:
        if len(_idle) >= MAX_IDLE:
            return False
        _idle.append(thread)
        return True


def _forget_in_child() -> None:
    global _lock
    _lock = threading.Lock()  # a parent's thread may have held it at the fork
    _idle.clear()


os.register_at_fork(after_in_child=_forget_in_child)

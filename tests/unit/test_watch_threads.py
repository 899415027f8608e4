"""core/engine/watch_threads.py: every running step has a watcher of its own, threads are reused between steps,
and a forked worker process starts its own."""

from __future__ import annotations

import os
import threading

import pytest

from core.engine import watch_threads
from tests.engine_support import wait_until


def test_a_finished_watcher_thread_watches_the_next_step() -> None:
    seen: list[int] = []
    first = watch_threads.start(lambda: seen.append(threading.get_ident()), name="opsc-watch")
    assert first.join(5)
    _wait_until_idle(1)
    second = watch_threads.start(lambda: seen.append(threading.get_ident()), name="opsc-watch")
    assert second.join(5)
    assert seen[0] == seen[1] != threading.get_ident()


def test_every_running_step_gets_its_own_watcher_however_many_run() -> None:
    """More steps at once than threads kept idle: none waits for another's watcher to finish."""
    count = watch_threads.MAX_IDLE + 8
    everyone_in = threading.Barrier(count + 1, timeout=30)
    names: list[str] = []
    watching = [
        watch_threads.start(lambda: (names.append(threading.current_thread().name), everyone_in.wait()), name="w")
        for _ in range(count)
    ]
    everyone_in.wait()  # would time out (BrokenBarrierError) if one watch waited for a thread
    assert all(w.join(5) for w in watching)
    assert len(names) == count
    _wait_until_idle(watch_threads.MAX_IDLE)
    assert watch_threads.idle_count() == watch_threads.MAX_IDLE  # the rest ended


def test_a_watch_that_raises_still_lets_the_step_end() -> None:
    def broken() -> None:
        raise RuntimeError("watcher bug")

    previous = threading.excepthook
    threading.excepthook = lambda args: None  # the thread's own report, expected here
    try:
        assert watch_threads.start(broken, name="opsc-watch").join(5)
    finally:
        threading.excepthook = previous


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork")
def test_a_forked_process_watches_with_threads_of_its_own() -> None:
    """Dramatiq forks its worker processes: the parent's idle threads do not exist in the child."""
    assert watch_threads.start(lambda: None, name="opsc-watch").join(5)
    _wait_until_idle(1)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report whether a step's watch ran, then leave without pytest's teardown
        ok = watch_threads.idle_count() == 0 and watch_threads.start(lambda: None, name="opsc-watch").join(5)
        os.write(write, b"1" if ok else b"0")
        os._exit(0)
    os.close(write)
    try:
        assert os.read(read, 1) == b"1"
    finally:
        os.close(read)
        os.waitpid(pid, 0)


def _wait_until_idle(count: int) -> None:
    """A watcher thread goes back to the idle list just after its watch returns."""
    wait_until(lambda: watch_threads.idle_count() >= count, 30, f"{count} idle watcher threads")

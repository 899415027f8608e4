"""Helpers for driving the engine in tests without a broker: a recording dispatcher and a drive loop."""

from __future__ import annotations

import os
import secrets
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine

from core import engine, ports
from core.engine.steps import Outcome


class RecordingDispatcher:
    """Collects dispatched ids (with their delays) instead of sending them anywhere."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, float]] = []
        self._lock = threading.Lock()

    def dispatch(self, execution_id: str, delay_s: float = 0.0, *, message_id: str | None = None) -> None:
        with self._lock:
            self.sent.append((execution_id, delay_s))


@contextmanager
def recording_dispatcher() -> Iterator[RecordingDispatcher]:
    recorder = RecordingDispatcher()
    ports.set_dispatcher(recorder)
    try:
        yield recorder
    finally:
        ports.set_dispatcher(None)


def drive(
    execution_id: str, *, worker_id: str = "test-worker", limit: int = 50, timeout_s: float = 30
) -> list[Outcome]:
    """Process the execution's messages until it finishes (waiting out retry backoffs)."""
    outcomes: list[Outcome] = []
    deadline = time.monotonic() + timeout_s
    while len(outcomes) < limit and time.monotonic() < deadline:
        outcome = engine.process(execution_id, worker_id=worker_id)
        outcomes.append(outcome)
        if outcome in {Outcome.FINISHED, Outcome.STALE}:
            return outcomes
        if outcome is Outcome.NOOP:
            time.sleep(0.02)  # a retry not yet due
    return outcomes


def tee_step(name: str, log: Path, marker: str, *, action_class: str = "read") -> str:
    """A plan step (YAML flow mapping) that appends ``marker`` to ``log``: a countable side effect."""
    return (
        f"  - {{name: {name}, action: shell, target: localhost, action_class: {action_class}, "
        f"params: {{command: [tee, -a, '{log}'], stdin: \"{marker}\\n\"}}}}\n"
    )


def unique_seconds(whole: int) -> str:
    """A ``sleep`` duration no other test run on this machine uses (CI shares the machine): ``whole`` s + a
    random fraction, so a test that looks for its process by command line never finds someone else's."""
    return f"{whole}.{secrets.randbelow(10**6):06d}"


def alive(pid: int) -> bool:
    """Whether process ``pid`` is live (a zombie is dead: it only waits to be reaped)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2 :].split()[0] != "Z"  # after the name, which may hold ")"


def processes_matching(pattern: str) -> list[int]:
    """Pids of live processes whose command line contains ``pattern`` (zombies excluded)."""
    out = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True, check=False).stdout  # noqa: S607
    return [pid for pid in (int(p) for p in out.split()) if pid != os.getpid() and alive(pid)]


def cancel_in_flight(
    execution_id: str, *, running: Callable[[], bool] | None = None, join_s: float = 10, as_user: str = "alice"
) -> float:
    """Run the execution's step in a worker thread, cancel it once ``running()`` holds (or after 0.5 s), wait
    up to ``join_s`` for the worker to end (failing if it does not) and return the seconds that took.

    Callers prove the abort by making the peer hold the call until after this returns: a worker that
    ended while its peer was still holding can only have aborted (no wall-clock threshold, so load-proof)."""
    from core import cancel, principal

    worker = threading.Thread(target=lambda: engine.process(execution_id, worker_id="w"))
    worker.start()
    if running is None:
        time.sleep(0.5)
    else:
        deadline = time.monotonic() + 3
        while not running():
            assert time.monotonic() < deadline, "the step did not start in time"
            time.sleep(0.02)
    asked = time.monotonic()
    cancel(principal(as_user, "demo"), execution_id)
    worker.join(timeout=join_s)
    assert not worker.is_alive(), f"the worker was still running {join_s} s after the cancel"
    return time.monotonic() - asked


def delete_namespace(redis_url: str, namespace: str) -> int:
    """Delete every Redis key of ``namespace`` (and nothing else: the server is shared); how many there were."""
    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(match=f"{namespace}:*"))
        return int(client.delete(*keys)) if keys else 0
    finally:
        client.close()


def python_plan(
    code: str, *, env: dict[str, str] | None = None, timeout_s: int | None = None, name: str = "live"
) -> str:
    """A one-step plan (JSON) whose ``shell`` step runs ``python3 -u -c code`` (unbuffered: each print is
    output at once); ``modify``, as any ``python3 -c`` is."""
    import json

    params: dict[str, object] = {"command": ["python3", "-u", "-c", code]}
    if env:
        params["env"] = env
    step: dict[str, object] = {"name": "talk", "action": "shell", "target": "localhost", "params": params}
    if timeout_s is not None:
        step["timeout_s"] = timeout_s
    return json.dumps({"name": name, "steps": [step]})


def approved(plan: str) -> str:
    """alice submits ``plan`` in the background and bob approves it: the id, ready to drive."""
    from core import approve, principal, submit

    execution_id = submit(principal("alice", "demo"), plan, background=True).execution.execution_id
    approve(principal("bob", "demo"), execution_id)
    return execution_id


class Drivers:
    """Drives executions in background threads, as a worker would (``drive``); ``join`` waits for them all."""

    def __init__(self) -> None:
        self.threads: list[threading.Thread] = []

    def __call__(self, execution_id: str) -> threading.Thread:
        thread = threading.Thread(target=drive, args=(execution_id,), kwargs={"timeout_s": 60}, daemon=True)
        thread.start()
        self.threads.append(thread)
        return thread

    def join(self) -> None:
        for thread in self.threads:
            thread.join(timeout=60)


def wait_until(condition: Callable[[], bool], timeout_s: float = 30.0, what: str = "the condition") -> None:
    """Poll ``condition`` every 50 ms until it holds; fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def link_statements(run: Callable[[], object]) -> list[str]:
    """The statements about the tenant's audit head that ``run()`` sent, in order: "locked" (the head read
    under its lock), "tried" (onto the head this process remembers: events inserted and the head moved if it
    still is that one, else the head locked and read) or "linked" (events inserted and the head moved;
    core/audit_links.py)."""
    sent: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if "audit_heads" in statement:
            head = statement.lstrip()
            sent.append(
                "locked" if head.startswith("SELECT") else "tried" if head.startswith("WITH head ") else "linked"
            )

    event.listen(Engine, "before_cursor_execute", seen)
    try:
        run()
    finally:
        event.remove(Engine, "before_cursor_execute", seen)
    return sent

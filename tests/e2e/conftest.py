"""Real processes: worker process trees started with the `opsconductor worker` command, on the real
PostgreSQL and Redis, and a client process that submits through the public API."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.engine_support import delete_namespace

ROOT = Path(__file__).resolve().parents[2]


class Cluster:
    """Worker process groups sharing one PostgreSQL database and one Redis namespace."""

    def __init__(self, env: dict[str, str], log_dir: Path) -> None:
        self.env = env
        self.log_dir = log_dir
        self.groups: list[subprocess.Popen[bytes]] = []
        self._client: subprocess.Popen[bytes] | None = None  # tests/e2e/client.py serve, started on first use
        self._client_env: dict[str, str] = {}  # the environment it was started with
        self._client_log = log_dir / "client.log"

    def start_worker(self, *, processes: int = 1, threads: int = 4) -> subprocess.Popen[bytes]:
        """Start one `opsconductor worker` process tree (its own process group)."""
        log = open(self.log_dir / f"worker-{len(self.groups)}.log", "wb")  # noqa: SIM115  closed with the process
        proc = subprocess.Popen(
            [sys.executable, "-m", "ui.cli", "worker", "--processes", str(processes), "--threads", str(threads)],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.groups.append(proc)
        return proc

    def wait_for_workers(self, count: int, timeout_s: float = 30) -> None:
        """Block until ``count`` live workers have registered their heartbeat.

        One client process polls (a process per poll cost a Python start-up each, longer than a worker's boot).
        """
        if self.client("workers", str(count), str(timeout_s))["live"] < count:
            raise AssertionError(f"{count} workers did not start; logs in {self.log_dir}")

    def client(self, *args: str, timeout_s: float = 300) -> dict:  # type: ignore[type-arg]
        """Run one tests/e2e/client.py command with the cluster's environment and return its JSON answer.

        The commands go to one long-lived ``client.py serve`` process: a process per command paid a Python
        start-up and the imports each time, seconds on a loaded machine. It is started again when a test
        changed ``env`` since, so every command runs with the environment as it is now.
        """
        proc = self._serving()
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(json.dumps(list(args)).encode() + b"\n")
        proc.stdin.flush()
        line, deadline, fd = b"", time.monotonic() + timeout_s, proc.stdout.fileno()
        while not line.endswith(b"\n"):  # raw reads: a buffered readline cannot be bounded in time
            remaining = deadline - time.monotonic()
            ready, _, _ = select.select([fd], [], [], max(0.0, remaining))
            chunk = os.read(fd, 1 << 20) if ready else b""
            if not chunk:
                self._stop_client()
                why = "timed out" if remaining <= 0 or not ready else "exited"
                raise AssertionError(f"client {why} on {args}: {self._client_log.read_text(errors='replace')[-3000:]}")
            line += chunk
        reply = json.loads(line)
        assert "answer" in reply, f"client {args}: {reply['error'][-3000:]}"
        return reply["answer"]  # type: ignore[no-any-return]

    def _serving(self) -> subprocess.Popen[bytes]:
        if self._client is not None and (self._client.poll() is not None or self._client_env != self.env):
            self._stop_client()
        if self._client is None:
            self._client_env = dict(self.env)
            with self._client_log.open("ab") as log:
                self._client = subprocess.Popen(
                    [sys.executable, str(ROOT / "tests" / "e2e" / "client.py"), "serve"],
                    cwd=ROOT,
                    env=self._client_env,
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=log,
                )
        return self._client

    def _stop_client(self) -> None:
        """End the client process: its stdin closed, it finishes the command at hand and leaves."""
        proc, self._client = self._client, None
        if proc is None:
            return
        for pipe in (proc.stdin, proc.stdout):
            if pipe is not None:
                pipe.close()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def stop(self, proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
        """Signal ``proc``'s process group with ``sig`` and wait for it (SIGKILL after 30 s)."""
        self._stop_groups([proc], sig)

    def stop_all(self) -> None:
        """Stop every worker process group still running, and the client process."""
        self._stop_client()
        self._stop_groups([proc for proc in self.groups if proc.poll() is None], signal.SIGTERM)

    @staticmethod
    def _stop_groups(procs: list[subprocess.Popen[bytes]], sig: int) -> None:
        """Signal all, then wait for all: a graceful stop takes seconds, and they take them side by side."""
        signalled = []
        for proc in procs:
            if proc.poll() is None:
                os.killpg(os.getpgid(proc.pid), sig)
                signalled.append(proc)
        deadline = time.monotonic() + 30
        for proc in signalled:
            try:
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def cluster_env(database_url: str, redis_url: str) -> dict[str, str]:
    """The environment of a cluster's processes: ``database_url``, a fresh Redis namespace, fast sweeper settings."""
    return {
        **os.environ,
        "OPSC_DATABASE_URL": database_url,
        "OPSC_REDIS_URL": redis_url,
        "OPSC_REDIS_NAMESPACE": f"opsc-test-{uuid.uuid4().hex[:8]}",
        "OPSC_SWEEP_INTERVAL_S": "0.5",
        "OPSC_REDISPATCH_AFTER_S": "3",
        "OPSC_RETRY_BACKOFF_S": "0.05",
        "OPSC_WORKER_HEARTBEAT_S": "0.5",
        "PYTHONUNBUFFERED": "1",
    }


@contextmanager
def open_cluster(database_url: str, redis_url: str, log_dir: Path) -> Iterator[Cluster]:
    """A cluster on ``database_url``; afterwards its workers are stopped and its Redis namespace deleted."""
    env = cluster_env(database_url, redis_url)
    cluster = Cluster(env, log_dir)
    try:
        yield cluster
    finally:
        cluster.stop_all()
        delete_namespace(redis_url, env["OPSC_REDIS_NAMESPACE"])  # leave the shared Redis as it was found


@pytest.fixture
def cluster(postgres_db: str, redis_url: str, tmp_path: Path) -> Iterator[Cluster]:
    """A clean PostgreSQL database with demo data, a fresh Redis namespace, fast sweeper settings."""
    with open_cluster(postgres_db, redis_url, tmp_path) as cluster:
        yield cluster

"""Real processes: worker process trees started with the `opsconductor worker` command, on the real
PostgreSQL and Redis, and a client process that submits through the public API."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
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

    def client(self, *args: str) -> dict:  # type: ignore[type-arg]
        """Run tests/e2e/client.py with the cluster's environment and return its JSON answer."""
        out = subprocess.run(
            [sys.executable, str(ROOT / "tests" / "e2e" / "client.py"), *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert out.returncode == 0, out.stderr[-3000:]
        return json.loads(out.stdout.strip().splitlines()[-1])

    def stop(self, proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
        with_pg = os.getpgid(proc.pid) if proc.poll() is None else None
        if with_pg is not None:
            os.killpg(with_pg, sig)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    def stop_all(self) -> None:
        for proc in self.groups:
            if proc.poll() is None:
                self.stop(proc)


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

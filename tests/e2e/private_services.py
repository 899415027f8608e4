"""A PostgreSQL server of the test's own, which the test may stop, start and restart (fault injection).

The shared server (127.0.0.1:5432) belongs to everyone on the machine: a test that restarts it breaks every
other test and engineer. ``PrivatePostgres`` runs ``initdb`` into a temporary directory and ``pg_ctl`` on a
free port (unix socket in that directory, TCP on 127.0.0.1 only), and removes all of it afterwards, also when
the test fails. As root, the server runs as ``postgres`` (``initdb`` refuses root).
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from db import migrate
from tests.conftest import REQUIRE_SERVICES, reset_database


def _pg_bin_dir() -> Path | None:
    """The newest installed PostgreSQL's bin directory (Debian layout), or None."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(Path(p).parts[-3]))
    return Path(found[-1]).parent if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PrivatePostgres:
    """One PostgreSQL server in ``root`` (data, socket, log), listening on 127.0.0.1:``port``."""

    def __init__(self, bin_dir: Path, root: Path) -> None:
        self.bin_dir = bin_dir
        self.root = root
        self.data = root / "data"
        self.log = root / "server.log"
        self.port = _free_port()
        self._as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, *argv: str, timeout_s: float = 60) -> None:
        out = subprocess.run(
            [*self._as_postgres, *argv], capture_output=True, text=True, timeout=timeout_s, check=False
        )
        if out.returncode != 0:
            log = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise RuntimeError(f"{argv[0]} failed ({out.returncode}): {out.stderr[-2000:]}\n{log}")

    def init(self) -> None:
        """``initdb`` with trust authentication for local connections (like the shared test server)."""
        self._run(
            str(self.bin_dir / "initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8",
            "--locale=C", "--no-sync",
        )  # fmt: skip

    def start(self) -> float:
        """Start the server and wait until it accepts connections; returns how long that took (s)."""
        began = time.monotonic()
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )  # a test server: durability across an OS crash is not what is tested
        self._run(str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "start")
        return time.monotonic() - began

    def stop(self, mode: str = "fast") -> float:
        """Stop the server (``fast``: disconnect every client, like a restart by an operator); how long it took."""
        began = time.monotonic()
        self._run(str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")
        return time.monotonic() - began

    def restart(self) -> tuple[float, float]:
        """Stop, then start again on the same port; returns (stop seconds, start seconds)."""
        return self.stop(), self.start()

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def create_database(self, name: str) -> str:
        """Create database ``name``; returns its URL."""
        engine = create_engine(self.url(), isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
        finally:
            engine.dispose()
        return self.url(name)


@contextlib.contextmanager
def private_postgres() -> Iterator[PrivatePostgres]:
    """A running private server; stopped and its directory removed on the way out, whatever happened."""
    bin_dir = _pg_bin_dir()
    if bin_dir is None:
        message = "no PostgreSQL server binaries under /usr/lib/postgresql/*/bin"
        if REQUIRE_SERVICES:
            pytest.fail(f"{message} (OPSC_REQUIRE_SERVICES=1)", pytrace=False)
        pytest.skip(message)
    root = Path(tempfile.mkdtemp(prefix="opsc-pg-"))
    try:
        if os.geteuid() == 0:
            shutil.chown(root, "postgres", "postgres")
        server = PrivatePostgres(bin_dir, root)
        server.init()
        server.start()
        try:
            yield server
        finally:
            if server.running():
                with contextlib.suppress(Exception):
                    server.stop("immediate")
    finally:
        shutil.rmtree(root, ignore_errors=True)


@contextlib.contextmanager
def demo_database(server: PrivatePostgres, name: str = "opsc") -> Iterator[str]:
    """A migrated database with policies and demo data on ``server``; yields its URL.

    Built as the shared ``postgres_db`` is (``migrate.upgrade`` + ``reset_database``, which also points this
    process at it); afterwards this process's settings point back at what they were.
    """
    from db.engine import dispose_engines
    from db.settings import get_settings

    before = os.environ.get("OPSC_DATABASE_URL")
    url = server.create_database(name)
    try:
        migrate.upgrade(url)
        reset_database(url)
        yield url
    finally:
        if before is None:
            os.environ.pop("OPSC_DATABASE_URL", None)
        else:
            os.environ["OPSC_DATABASE_URL"] = before
        get_settings.cache_clear()
        dispose_engines()

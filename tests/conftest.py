"""Shared fixtures: databases (SQLite file and a real PostgreSQL database per test session), demo data.

DESIGN §12: PostgreSQL comes from OPSC_TEST_DATABASE_URL (default: the local server); each test session
creates its own database and drops it after. An unreachable service skips its tests with one clear line,
except with OPSC_REQUIRE_SERVICES=1 (set by .ci/run), where it fails the run.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import Connection, Table, create_engine, text
from sqlalchemy.engine import make_url
from sqlmodel import SQLModel, select

import db.tables
from db import migrate
from db.engine import dispose_engines, get_engine, session_scope
from db.settings import get_settings
from tests.engine_support import Drivers
from tests.maskers import close_tracked

PG_ADMIN_URL = os.environ.get("OPSC_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("OPSC_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
REQUIRE_SERVICES = os.environ.get("OPSC_REQUIRE_SERVICES") == "1"

# One key for the whole run: PostgreSQL mode requires OPSC_SECRET_KEY (no key file next to a SQLite DB).
os.environ.setdefault("OPSC_SECRET_KEY", Fernet.generate_key().decode())


def pytest_sessionstart(session: pytest.Session) -> None:
    """With OPSC_REQUIRE_SERVICES=1, stop at once, loudly, if PostgreSQL or Redis cannot be reached."""
    if not REQUIRE_SERVICES:
        return
    import redis

    problems = []
    engine = create_engine(make_url(PG_ADMIN_URL), connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:
        problems.append(f"PostgreSQL ({make_url(PG_ADMIN_URL).render_as_string(hide_password=True)}): {exc}")
    finally:
        engine.dispose()
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3)
    try:
        client.ping()
    except Exception as exc:
        problems.append(f"Redis ({REDIS_URL}): {exc}")
    finally:
        client.close()
    if problems:
        pytest.exit("OPSC_REQUIRE_SERVICES=1 but services are unreachable:\n  " + "\n  ".join(problems), returncode=3)


def service_unavailable(what: str, error: Exception) -> None:
    """Skip (or, with OPSC_REQUIRE_SERVICES=1, fail) because a required service cannot be reached."""
    message = f"{what} unreachable: {type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
    if REQUIRE_SERVICES:
        pytest.fail(f"{message} (OPSC_REQUIRE_SERVICES=1)", pytrace=False)
    pytest.skip(message)


def use_database(url: str) -> None:
    """Point the process (settings, engines) at ``url``."""
    os.environ["OPSC_DATABASE_URL"] = url
    get_settings.cache_clear()
    dispose_engines()


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'opsc.db'}"
    migrate.upgrade(url)
    return url


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    admin = make_url(PG_ADMIN_URL)
    name = f"opsc_test_{uuid.uuid4().hex[:12]}"
    engine = create_engine(admin, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
            # A commit need not wait for the disk in a database dropped at the end (0.6 -> 0.3 ms a commit).
            conn.execute(text(f'ALTER DATABASE "{name}" SET synchronous_commit = off'))
    except Exception as exc:
        engine.dispose()
        service_unavailable(f"PostgreSQL at {admin.render_as_string(hide_password=True)}", exc)
    url = admin.set(database=name).render_as_string(hide_password=False)
    migrate.upgrade(url)
    yield url
    dispose_engines()
    with engine.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    engine.dispose()


# DESIGN §13: a `shell` step is `modify` unless an admin declared its argv prefix read-only. The suite's
# level-0 plans (tests/factories.py echoes, engine_support tees; failing, listing and sleeping read steps)
# run under these declarations, made for both demo tenants as an admin would; tests about the rule itself
# (tests/integration/test_risk.py) use other commands.
TEST_READ_ONLY: list[list[str]] = [["echo"], ["tee", "-a"], ["false"], ["ls"], ["sleep"]]


# The seeded rows of each database, read back once after its first seeding: later resets write them again
# in one multi-row INSERT per table instead of seeding through the ORM (0.23 s -> ~0.03 s on PostgreSQL, paid by
# ~1,400 tests). Seeding happens once per database and session, so a change to the seed code shows at once.
_SEEDED: dict[str, list[tuple[Table, list[dict[str, Any]]]]] = {}


def reset_database(url: str) -> None:
    """Empty every table, then seed the policies, the demo data and the suite's read-only prefixes."""
    from core.change_window_store import clear_cache

    use_database(url)
    clear_cache()  # the rows go behind the cache's back: no test sees the windows of the one before
    tables = SQLModel.metadata.sorted_tables
    with get_engine().begin() as conn:
        # DELETE, children first: on these few rows 4x faster than TRUNCATE (which rewrites every table's files).
        # execution_counts last: deleting executions fires the triggers that keep it (migration 0013).
        for table in sorted(reversed(tables), key=lambda t: t.name == "execution_counts"):
            conn.execute(table.delete())
        seeded = _SEEDED.get(url)
        if seeded is not None:
            for table, rows in seeded:
                conn.execute(table.insert(), rows)
            _restart_sequences(conn, url)
    if seeded is None:
        _seed(url)
        with get_engine().connect() as conn:
            _SEEDED[url] = [(t, rows) for t in tables if (rows := [dict(r._mapping) for r in conn.execute(t.select())])]


def _seed(url: str) -> None:
    from core.inventory.trust import add_command
    from core.ops.setup import seed_demo
    from core.policies import seed_policies
    from db.tables import Tenant

    if url.startswith("postgresql"):
        with get_engine().begin() as conn:
            _restart_sequences(conn, url)
    with session_scope() as session:
        seed_policies(session)
        seed_demo(session)
        for tenant in session.exec(select(Tenant)).all():
            for argv in TEST_READ_ONLY:
                add_command(session, tenant.id, argv, actor="tests")


def _restart_sequences(conn: Connection, url: str) -> None:
    """Each integer key's sequence continues after the table's highest id (1 for an empty table), as after
    TRUNCATE ... RESTART IDENTITY and a fresh seeding. SQLite's rowids follow the rows by themselves."""
    if not url.startswith("postgresql"):
        return
    for table in SQLModel.metadata.sorted_tables:
        for column in table.primary_key.columns:
            if column.autoincrement is True:
                conn.execute(
                    text(
                        f"SELECT setval(pg_get_serial_sequence('{table.name}', '{column.name}'), "
                        f"COALESCE((SELECT MAX({column.name}) FROM {table.name}), 0) + 1, false)"
                    )
                )


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def db(request: pytest.FixtureRequest) -> str:
    """A clean database with policies and demo data, on SQLite and on PostgreSQL. Yields its URL."""
    url = request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")
    reset_database(url)
    return url


@pytest.fixture
def sqlite_db(sqlite_url: str) -> str:
    """A clean SQLite database with policies and demo data (for tests that need no PostgreSQL)."""
    reset_database(sqlite_url)
    return sqlite_url


@pytest.fixture
def postgres_db(pg_url: str) -> str:
    """A clean PostgreSQL database with policies and demo data."""
    reset_database(pg_url)
    return pg_url


@pytest.fixture
def redis_url() -> str:
    """A reachable Redis URL (skips, or fails under OPSC_REQUIRE_SERVICES=1, when it is down)."""
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        client.ping()
    except Exception as exc:
        service_unavailable(f"Redis at {REDIS_URL}", exc)
    finally:
        client.close()
    return REDIS_URL


@pytest.fixture(scope="session")
def _step_tmp_root() -> Iterator[Path]:
    """The parent of every test's ``tmp_path``: traversable (0711) by the runner user, removed at the end."""
    root = Path(tempfile.mkdtemp(prefix="opsc-tests-"))
    root.chmod(0o711)
    yield root
    if os.environ.get("OPSC_KEEP_TEST_TMP") != "1":  # set it to read a failed test's logs afterwards
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def tmp_path(request: pytest.FixtureRequest, _step_tmp_root: Path) -> Path:
    """pytest's ``tmp_path``, reachable by local steps: as root they run as the runner user (DESIGN §13).

    pytest's own base temp dir is 0700, and every pytest session on this machine (CI shares it) resets it
    to 0700 when it starts, so a step could not write its countable side effect under it. Each test gets
    a sticky, world-writable directory like /tmp instead, under a root of this session's.
    """
    name = "".join(c if c.isalnum() else "_" for c in request.node.name)[:40]
    path = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=_step_tmp_root))
    path.chmod(0o1777)
    return path


@pytest.fixture
def driving() -> Iterator[Drivers]:
    """Start driving an execution in a background thread (``driving(execution_id)``); joined after the test."""
    drivers = Drivers()
    yield drivers
    drivers.join()


@pytest.fixture(autouse=True)
def _close_tracked_maskers() -> Iterator[None]:
    """What tests/maskers.py made during the test leaves the process's live values with it."""
    yield
    close_tracked()

"""A PostgreSQL database of a benchmark's own: created for the run, dropped after it (the server is shared)."""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL, make_url

PG_ADMIN = os.environ.get("OPSC_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


@contextmanager
def scratch_postgres(prefix: str = "opsc_bench") -> Iterator[URL]:
    """Create a database named ``prefix_<random>`` on ``OPSC_TEST_DATABASE_URL``'s server, yield its URL, and
    drop it afterwards (``WITH (FORCE)``: connections a benchmark left open do not keep it alive)."""
    admin = create_engine(make_url(PG_ADMIN), isolation_level="AUTOCOMMIT")
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(PG_ADMIN).set(database=name)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


DATABASES = ("sqlite", "postgresql")


def chosen(choice: str) -> list[str]:
    """The databases a ``--database sqlite|postgresql|both`` option names, SQLite first."""
    return [name for name in DATABASES if choice in {name, "both"}]


@contextmanager
def scratch_database(kind: str) -> Iterator[str]:
    """A database of a run's own, by kind: a SQLite file in a temporary directory, or ``scratch_postgres``'s;
    yields its URL (with its password, for the run's own processes)."""
    if kind == "sqlite":
        with tempfile.TemporaryDirectory() as tmp:
            yield f"sqlite:///{tmp}/bench.db"
    else:
        with scratch_postgres() as url:
            yield url.render_as_string(hide_password=False)

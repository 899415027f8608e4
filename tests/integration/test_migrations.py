"""Migrations (DESIGN §3.1): up, down and up again on both databases, with no drift from the models."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url

from db import migrate
from db.engine import dispose_engines
from tests.conftest import PG_ADMIN_URL, service_unavailable

NOW = datetime(2026, 12, 1, tzinfo=UTC)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def empty_db(request: pytest.FixtureRequest, tmp_path) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """A brand-new, empty database (not the shared test one: migrations are destructive)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'mig.db'}"
        return
    admin = create_engine(make_url(PG_ADMIN_URL), isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3})
    name = f"opsc_mig_{uuid.uuid4().hex[:10]}"
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        service_unavailable("PostgreSQL", exc)
    yield make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    dispose_engines()
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _tables(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        return set(inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


def test_upgrade_downgrade_upgrade_round_trip(empty_db: str) -> None:
    """head creates every table, base removes them all, head again restores them, with no drift."""
    migrate.upgrade(empty_db)
    assert migrate.current_revision(empty_db) == migrate.head_revision()
    created = _tables(empty_db)
    assert {"executions", "execution_steps", "approvals", "execution_events", "execution_queue", "execution_dlq",
            "execution_locks", "timeout_policies", "tenant_settings", "tenants", "users", "memberships", "assets",
            "secrets"} <= created  # fmt: skip
    assert migrate.schema_drift(empty_db) == []
    migrate.downgrade(empty_db)
    assert migrate.current_revision(empty_db) is None
    assert _tables(empty_db) == set()
    migrate.upgrade(empty_db)
    assert _tables(empty_db) == created
    assert migrate.schema_drift(empty_db) == []


def test_upgrade_at_head_is_a_no_op(empty_db: str) -> None:
    """Running the upgrade twice changes nothing (opsconductor init is idempotent)."""
    migrate.upgrade(empty_db)
    before = _tables(empty_db)
    migrate.upgrade(empty_db)
    assert _tables(empty_db) == before and migrate.current_revision(empty_db) == migrate.head_revision()


def test_sqlite_runs_in_wal_with_foreign_keys(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The embedded engine turns on WAL and foreign keys on every connection."""
    from db.engine import get_engine

    engine = get_engine(f"sqlite:///{tmp_path / 'wal.db'}")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1


def test_runbooks_from_before_ownership_get_no_owner_and_their_text_as_version_1(empty_db: str) -> None:
    """0009 (issue 13 item 5): nobody can tell who wrote an existing runbook, so only admins may change it."""
    migrate.upgrade(empty_db, "0007")
    engine = create_engine(empty_db)
    try:
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO tenants (id, name, created_at) VALUES ('t1', 'acme', :now)"), {"now": NOW})
            conn.execute(
                text(
                    "INSERT INTO runbooks (id, tenant_id, name, description, plan_text, updated_by, updated_at) "
                    "VALUES ('r1', 't1', 'shared', 'd', 'name: x', 'alice', :now)"
                ),
                {"now": NOW},
            )
        migrate.upgrade(empty_db)
        with engine.connect() as conn:
            assert conn.execute(text("SELECT owner, version FROM runbooks")).one() == (None, 1)
            row = conn.execute(text("SELECT name, version, plan_text, created_by, owner FROM runbook_versions")).one()
        assert tuple(row) == ("shared", 1, "name: x", "alice", None)
    finally:
        engine.dispose()

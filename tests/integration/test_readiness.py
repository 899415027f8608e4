"""The GO/NO-GO check (core/ops/readiness.py) on SQLite and PostgreSQL: a healthy installation is all GO, and
each item turns NO-GO, with a reason, when what it watches is broken."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import delete, text, update
from sqlmodel import col, select

from core import CheckItem, CheckThresholds, MaskingSink, check_readiness, default_masking_sinks
from core.engine.workers import register_worker
from core.identity.installation import set_claimed_identity
from db import migrate
from db.clock import utcnow
from db.engine import dispose_engines, session_scope
from db.enums import ExecutionStatus
from db.settings import get_settings
from db.tables import Asset, DlqEntry, Execution, ExecutionLock, Secret, TimeoutPolicy, Worker
from tests.factories import raw_execution

ITEMS = [
    *("database", "schema", "policies", "broker", "workers", "clock", "locks", "dlq", "masking", "secrets"),
    *("step isolation", "identity", "notifications"),
]


def _probe() -> str:
    return "test broker answers"


def _check(**kwargs: Any) -> dict[str, CheckItem]:
    kwargs.setdefault("broker_probe", _probe)
    return {item.name: item for item in check_readiness(**kwargs)}


def _no_go(items: dict[str, CheckItem]) -> set[str]:
    return {name for name, item in items.items() if not item.ok}


@pytest.fixture
def healthy(db: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A clean database with one worker whose heartbeat is fresh, set up for production (no claimed names).

    The rollout gates require no executions here (OPSC_CHECK_MIN_EXECUTIONS=0): a fresh database has none,
    and by default that is NO-GO, which the rollout tests check with their own thresholds."""
    monkeypatch.setenv("OPSC_CHECK_MIN_EXECUTIONS", "0")
    get_settings.cache_clear()
    register_worker("w-test", kind="test", threads=1)
    with session_scope() as session:
        set_claimed_identity(session, False)
    yield db


def _thresholds(**changes: Any) -> CheckThresholds:
    base = CheckThresholds.from_settings()
    return CheckThresholds(**{**base.__dict__, **changes})


def _seen_at(worker_id: str, when: Any) -> None:
    with session_scope() as session:
        session.execute(update(Worker).where(col(Worker.id) == worker_id).values(last_seen_at=when))


def test_a_healthy_system_is_all_go(healthy: str) -> None:
    """Fresh worker, head schema, 9 policies, reachable broker, masking and secrets working: every item GO
    (no rollout evidence required here: see ``healthy``; the rollout tests below require some)."""
    items = _check()
    assert [name for name in items if not name.startswith("rollout:")] == ITEMS
    assert {"rollout:demo", "rollout:globex"} <= set(items)
    assert _no_go(items) == set(), {n: i.reason for n, i in items.items() if not i.ok}
    assert "test broker answers" in items["broker"].reason
    assert "4 sinks" in items["masking"].reason


def test_no_worker_or_a_stale_heartbeat_is_no_go(healthy: str) -> None:
    """A heartbeat three beats old, a stopped worker, or none at all: the workers item is NO-GO."""
    _seen_at("w-test", utcnow() - timedelta(hours=1))
    items = _check()
    assert _no_go(items) == {"workers"} and "w-test" in items["workers"].reason
    with session_scope() as session:
        session.execute(update(Worker).values(stopped_at=utcnow(), last_seen_at=utcnow()))
    assert "no worker is running" in _check()["workers"].reason
    with session_scope() as session:
        session.execute(delete(Worker))
    assert _no_go(_check()) == {"workers"}


def test_a_worker_clock_ahead_is_no_go(healthy: str) -> None:
    """A heartbeat stamped in the future means that worker's clock runs ahead."""
    _seen_at("w-test", utcnow() + timedelta(minutes=5))
    items = _check()
    assert _no_go(items) == {"clock"} and "w-test" in items["clock"].reason


def test_a_stale_lock_is_no_go(healthy: str) -> None:
    """An asset lock that expired long ago (its sweeper is gone) is NO-GO."""
    with session_scope() as session:
        execution = raw_execution(session, ExecutionStatus.RUNNING)
        asset_id = session.exec(
            select(Asset.id).where(Asset.tenant_id == execution.tenant_id, Asset.name == "localhost")
        ).one()
        session.add(
            ExecutionLock(
                tenant_id=execution.tenant_id,
                asset_id=asset_id,
                execution_id=execution.id,
                fencing_token=1,
                expires_at=utcnow() - timedelta(hours=1),
            )
        )
    items = _check()
    assert _no_go(items) == {"locks"} and "1 stale" in items["locks"].reason


def test_a_broken_masking_sink_is_no_go(healthy: str) -> None:
    """A sink that stores text unmasked (a test double) leaks the canary: NO-GO naming that sink."""
    leaky = MaskingSink("leaky sink", lambda _masker, text: text)
    items = _check(sinks=[*default_masking_sinks(), leaky])
    assert _no_go(items) == {"masking"}
    assert "leaky sink" in items["masking"].reason and "step output" not in items["masking"].reason


def test_dlq_over_the_threshold_is_no_go(healthy: str) -> None:
    """Open DLQ entries at the limit are NO-GO; resolved entries do not count."""
    with session_scope() as session:
        for resolved in (None, None, utcnow()):
            row = raw_execution(session, ExecutionStatus.FAILED)
            session.add(DlqEntry(execution_id=row.id, tenant_id=row.tenant_id, reason="x", resolved_at=resolved))
    assert _check(thresholds=_thresholds(dlq_limit=3))["dlq"].ok
    items = _check(thresholds=_thresholds(dlq_limit=2))
    assert _no_go(items) == {"dlq"} and "2 open" in items["dlq"].reason


def test_a_missing_or_invalid_policy_is_no_go(healthy: str) -> None:
    """A missing policy row, or one with a lease shorter than its step, is NO-GO naming the row."""
    with session_scope() as session:
        session.execute(
            delete(TimeoutPolicy).where(
                col(TimeoutPolicy.sla_class) == "fast", col(TimeoutPolicy.action_class) == "read"
            )
        )
        session.execute(
            update(TimeoutPolicy)
            .where(col(TimeoutPolicy.sla_class) == "medium", col(TimeoutPolicy.action_class) == "modify")
            .values(lease_s=1)
        )
    items = _check()
    assert _no_go(items) == {"policies"}
    assert "fast/read missing" in items["policies"].reason and "medium/modify invalid" in items["policies"].reason


def test_high_error_rate_or_low_sla_attainment_is_no_go(healthy: str) -> None:
    """The rollout gate of a tenant with too many failures, or too many slow runs, is NO-GO; others stay GO."""
    now = utcnow()
    with session_scope() as session:
        for status, run_s in [("failed", 1), ("completed", 1), ("completed", 1), ("completed", 1)]:
            row = raw_execution(session, ExecutionStatus(status))
            row.started_at, row.finished_at = now - timedelta(seconds=run_s), now
            session.add(row)
    limits = _thresholds(min_executions=4)
    items = _check(thresholds=limits)
    assert _no_go(items) == {"rollout:demo", "rollout:globex"} and "error rate 25.0%" in items["rollout:demo"].reason
    assert "not enough executions to judge: 0 of 4" in items["rollout:globex"].reason
    assert not items["rollout:globex"].ok
    short = _check(thresholds=_thresholds(min_executions=5))["rollout:demo"]
    assert not short.ok and "not enough executions to judge: 4 of 5 ended in 24h" in short.reason
    with session_scope() as session:  # the failure becomes a slow success: fast/read allows 10 s
        session.execute(
            update(Execution)
            .where(col(Execution.status) == "failed")
            .values(status="completed", started_at=now - timedelta(seconds=60))
        )
    items = _check(thresholds=limits)
    assert _no_go(items) == {"rollout:demo", "rollout:globex"} and "SLA attainment" in items["rollout:demo"].reason


def test_an_unreachable_broker_is_no_go(healthy: str) -> None:
    """A broker probe that raises is NO-GO with its reason, not a crash."""

    def down() -> str:
        raise ConnectionError("Redis at 127.0.0.1:1 is unreachable")

    items = _check(broker_probe=down)
    assert _no_go(items) == {"broker"} and "unreachable" in items["broker"].reason


def test_an_undecryptable_secret_is_no_go(healthy: str) -> None:
    """A secret the current key cannot decrypt (a rotated or lost key) is NO-GO naming it, never its value."""
    with session_scope() as session:
        session.execute(update(Secret).values(ciphertext="gAAAAA-not-a-token"))
    items = _check()
    assert _no_go(items) == {"secrets"} and "demo_token" in items["secrets"].reason


def test_a_schema_behind_the_head_is_no_go(healthy: str) -> None:
    """A database one migration behind is NO-GO and says to run init."""
    head = migrate.head_revision()
    with session_scope() as session:
        session.execute(text("UPDATE alembic_version SET version_num = '0001'"))
    try:
        items = _check()
    finally:
        with session_scope() as session:
            session.execute(text("UPDATE alembic_version SET version_num = :head"), {"head": head})
    assert _no_go(items) == {"schema"} and "opsconductor init" in items["schema"].reason


def test_an_unreachable_database_is_no_go_without_a_crash(monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing listens at the database URL: database NO-GO, the items that need it not checked, the rest run."""
    monkeypatch.setenv("OPSC_DATABASE_URL", "postgresql+psycopg2://postgres@127.0.0.1:1/none")
    get_settings.cache_clear()
    try:
        items = _check()
    finally:
        get_settings.cache_clear()
        dispose_engines()
    assert items["database"].ok is False and "unreachable" in items["database"].reason
    assert items["workers"].reason == "not checked: the database is unreachable"
    assert items["masking"].ok and items["broker"].ok


def test_the_lab_switch_for_unconfined_steps_is_no_go(healthy: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """OPSC_ALLOW_UNCONFINED_STEPS=1 lets steps run as the worker: `check` says NO-GO, naming the switch."""
    monkeypatch.setenv("OPSC_ALLOW_UNCONFINED_STEPS", "1")
    get_settings.cache_clear()
    try:
        items = _check()
    finally:
        monkeypatch.delenv("OPSC_ALLOW_UNCONFINED_STEPS")
        get_settings.cache_clear()
    assert _no_go(items) == {"step isolation"}
    assert "OPSC_ALLOW_UNCONFINED_STEPS" in items["step isolation"].reason


def test_a_box_that_accepts_claimed_names_is_no_go(healthy: str) -> None:
    """DESIGN §13: demo data (or init --single-operator) accepts --as USER: identity is NO-GO for production."""
    with session_scope() as session:
        set_claimed_identity(session, True)
    items = _check()
    assert _no_go(items) == {"identity"}
    assert "claimed names" in items["identity"].reason and "--no-single-operator" in items["identity"].reason

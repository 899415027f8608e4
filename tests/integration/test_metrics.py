"""Prometheus metrics (core/metrics.py) moved by real executions through the engine, on SQLite and PostgreSQL.

Counters and histograms are process-wide and other tests move them too: every assertion compares a sample
before and after. The database gauges are compared with what the database holds.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from prometheus_client import REGISTRY, CollectorRegistry
from sqlalchemy import func, update
from sqlmodel import col, select

from core import PermissionDenied, Role, approve, engine, principal, set_member, submit
from core import metrics as m
from core.engine import sweeper
from core.engine.claim import claim_step
from core.engine.steps import Outcome
from core.safety.masking import Masker, mask_data, mask_text
from core.usecases.dlq import list_dlq
from db.clock import utcnow
from db.engine import session_scope
from db.settings import get_settings
from db.tables import Execution, QueueItem, Tenant
from tests.conftest import use_database
from tests.engine_support import drive, recording_dispatcher, tee_step

NOOP = "  - {{name: {name}, action: noop, target: localhost}}\n"
FAILING_READ = "name: flaky\nsteps:\n  - {name: f, action: shell, target: localhost, params: {command: 'false'}}\n"
MODIFY = "name: m\nsteps:\n  - {name: a, action: noop, target: localhost, action_class: modify}\n"


@pytest.fixture
def fast(db: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Small backoffs, a quick watcher, one step per process() call."""
    monkeypatch.setenv("OPSC_RETRY_BACKOFF_S", "0.01")
    monkeypatch.setenv("OPSC_WATCH_INTERVAL_S", "0.05")
    monkeypatch.setenv("OPSC_CHAIN_STEPS", "0")
    get_settings.cache_clear()
    yield db
    get_settings.cache_clear()


def sample(name: str, labels: dict[str, str] | None = None) -> float:
    return REGISTRY.get_sample_value(name, labels or {}) or 0.0


def delta(name: str, labels: dict[str, str] | None = None) -> Callable[[], float]:
    """How much the sample moved since this call."""
    before = sample(name, labels)
    return lambda: sample(name, labels) - before


def _bg(plan: str, who: str = "alice") -> str:
    return submit(principal(who, "demo"), plan, background=True).execution.execution_id


def _scrape() -> CollectorRegistry:
    """A registry holding only the database collector, as a scrape would run it."""
    registry = CollectorRegistry()
    registry.register(m.DatabaseCollector())
    return registry


def test_steps_are_timed_by_action_and_sla_class_and_the_queue_wait_once(fast: str) -> None:
    """Three noop steps: three step durations (read, fast) and one queued→started wait."""
    steps = delta("opsc_step_duration_seconds_count", {"action_class": "read", "sla_class": "fast"})
    waited = delta("opsc_queue_wait_seconds_count", {"sla_class": "fast"})
    execution_id = _bg("name: three\nsteps:\n" + "".join(NOOP.format(name=f"s{i}") for i in range(3)))
    with recording_dispatcher():
        assert drive(execution_id)[-1] is Outcome.FINISHED
    assert steps() == 3
    assert waited() == 1


def test_a_retried_read_step_counts_its_retries(fast: str) -> None:
    """A read step failing three times: two retries counted, three attempts timed."""
    retries = delta("opsc_step_retries_total", {"action_class": "read"})
    timed = delta("opsc_step_duration_seconds_count", {"action_class": "read", "sla_class": "fast"})
    with recording_dispatcher():
        drive(_bg(FAILING_READ))
    assert retries() == 2
    assert timed() == 3


def _crash_mid_step(execution_id: str) -> None:
    """A worker claims the step and dies: its lease runs out."""
    assert claim_step(execution_id, "doomed-worker") is not None
    with session_scope() as session:
        session.execute(
            update(QueueItem).where(col(QueueItem.execution_id) == execution_id).values(lease_expires_at=utcnow())
        )


def test_lease_expirations_are_counted_by_outcome(fast: str, tmp_path: Path) -> None:
    """A dead worker's read step is retried; its modify step becomes unknown: one count each."""
    retry = delta("opsc_lease_expirations_total", {"outcome": "retry"})
    unknown = delta("opsc_lease_expirations_total", {"outcome": "unknown"})
    read_id = _bg("name: r\nsteps:\n" + tee_step("s", tmp_path / "log", "ran"))
    modify_id = submit(
        principal("alice", "demo"), "name: m\nsteps:\n" + tee_step("s", tmp_path / "log", "m", action_class="modify")
    ).execution.execution_id  # a shell step: not idempotent
    approve(principal("bob", "demo"), modify_id)
    with recording_dispatcher():
        for execution_id in (read_id, modify_id):  # one asset: one after the other
            _crash_mid_step(execution_id)
            assert sweeper.sweep(redispatch_after_s=3600).reclaimed == 1
            drive(execution_id)
    assert (retry(), unknown()) == (1, 1)


def test_waiting_for_a_busy_asset_is_timed_when_the_lock_comes(fast: str) -> None:
    """B queues behind A on the same asset; when A ends and B gets the lock, its wait is observed once."""
    waits = delta("opsc_lock_wait_seconds_count")
    a = _bg("name: a\nsteps:\n" + NOOP.format(name="a1") + NOOP.format(name="a2"))
    b = _bg("name: b\nsteps:\n" + NOOP.format(name="b1"))
    with recording_dispatcher():
        assert engine.process(a, worker_id="w") is Outcome.ADVANCED  # A holds localhost
        assert engine.process(b, worker_id="w") is Outcome.NOOP  # B parks in the asset's line
        assert waits() == 0
        assert drive(a)[-1] is Outcome.FINISHED  # releasing wakes B
        assert drive(b)[-1] is Outcome.FINISHED
    assert waits() == 1


def test_permission_denials_are_counted_at_request_and_at_run_time(fast: str, tmp_path: Path) -> None:
    """A viewer's submit is refused (request); a requester demoted after approval is refused by the worker (run)."""
    at_submit = delta("opsc_permission_denials_total", {"permission": "submit", "stage": "request"})
    at_run = delta("opsc_permission_denials_total", {"permission": "run_modify", "stage": "run"})
    with pytest.raises(PermissionDenied):
        submit(principal("dave", "demo"), "name: x\nsteps:\n" + NOOP.format(name="a"))
    assert at_submit() == 1
    execution_id = submit(
        principal("alice", "demo"), "name: m\nsteps:\n" + tee_step("s", tmp_path / "log", "x", action_class="modify")
    ).execution.execution_id
    approve(principal("bob", "demo"), execution_id)
    set_member(principal("admin", "demo"), "alice", Role.VIEWER)
    with recording_dispatcher():
        drive(execution_id)
    assert at_run() == 1


def test_masking_counts_what_it_replaces() -> None:
    """Each replaced secret occurrence and each credential-shaped match is counted; clean text counts nothing."""
    secrets = delta("opsc_masked_secrets_total", {"kind": "secret"})
    patterns = delta("opsc_masked_secrets_total", {"kind": "pattern"})
    masker = Masker()
    masker.register("hunter2-XyZ")
    try:
        assert masker.mask("a hunter2-XyZ b hunter2-XyZ") == "a *** b ***"
        assert mask_text("nothing to hide here") == "nothing to hide here"
        assert (secrets(), patterns()) == (2, 0)
        assert mask_data({"note": "Authorization: Bearer abcdefghijklmnopqrstuvwxyz0123"})["note"].endswith("***")
        assert patterns() == 1
    finally:
        masker.close()


def test_scrape_reports_executions_dlq_and_pending_approvals_as_the_database_holds_them(fast: str) -> None:
    """Executions by tenant/status/run mode, open DLQ entries and pending approvals (with the oldest's age)."""
    with recording_dispatcher():
        drive(_bg("name: ok\nsteps:\n" + NOOP.format(name="a")))
        drive(_bg(FAILING_READ))  # failed, with a DLQ entry
    submit(principal("alice", "demo"), MODIFY)  # waits for approval
    submit(principal("alice", "demo"), MODIFY.replace("name: m", "name: m2"))  # another plan: not a duplicate
    registry = _scrape()
    with session_scope() as session:
        counts = session.execute(
            select(col(Tenant.name), col(Execution.status), col(Execution.run_mode), func.count())
            .join(Tenant, col(Tenant.id) == col(Execution.tenant_id))
            .group_by(col(Tenant.name), col(Execution.status), col(Execution.run_mode))
        ).all()
    assert {s for _, s, _, _ in counts} >= {"completed", "failed", "pending_approval"}
    for tenant, status, run_mode, count in counts:
        labels = {"tenant": tenant, "status": status, "run_mode": run_mode}
        assert registry.get_sample_value("opsc_executions", labels) == count
    assert registry.get_sample_value("opsc_metrics_database_up") == 1
    assert registry.get_sample_value("opsc_dlq_depth", {"tenant": "demo"}) == len(list_dlq(principal("admin", "demo")))
    assert registry.get_sample_value("opsc_dlq_depth", {"tenant": "demo"}) == 1
    assert registry.get_sample_value("opsc_approvals_pending", {"tenant": "demo"}) == 2
    assert 0 <= (registry.get_sample_value("opsc_approval_oldest_age_seconds", {"tenant": "demo"}) or -1) < 60
    # A tenant with nothing waiting reports zeros, not a missing series.
    assert registry.get_sample_value("opsc_approvals_pending", {"tenant": "globex"}) == 0
    assert registry.get_sample_value("opsc_dlq_depth", {"tenant": "globex"}) == 0


def test_a_scrape_without_the_database_still_answers(fast: str, tmp_path: Path) -> None:
    """No schema (or no database): the gauges are left out and opsc_metrics_database_up says 0."""
    use_database(f"sqlite:///{tmp_path / 'empty.db'}")
    try:
        registry = _scrape()
        assert registry.get_sample_value("opsc_metrics_database_up") == 0
        assert registry.get_sample_value("opsc_dlq_depth", {"tenant": "demo"}) is None
    finally:
        use_database(fast)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_serve_exposes_every_metric_once_per_process(fast: str) -> None:
    """The endpoint answers with opsc_ metrics and the database gauges; a second serve is a no-op;
    a taken port is reported, not raised."""
    port = _free_port()
    try:
        assert m.serve(port, "127.0.0.1")
        assert m.serve(port + 1, "127.0.0.1")  # already serving: the first endpoint stays
        body = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
        for name in (
            "opsc_step_duration_seconds",
            "opsc_queue_wait_seconds",
            "opsc_lock_wait_seconds",
            "opsc_lease_expirations_total",
            "opsc_step_retries_total",
            "opsc_permission_denials_total",
            "opsc_masked_secrets_total",
            "opsc_metrics_database_up 1.0",
            'opsc_approvals_pending{tenant="demo"}',
            'opsc_dlq_depth{tenant="demo"}',
        ):
            assert name in body, name
    finally:
        m.stop_serving()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        try:
            assert m.serve(taken.getsockname()[1], "127.0.0.1") is False
        finally:
            m.stop_serving()

"""Change windows (DESIGN §14), through the public API and the engine, on SQLite and PostgreSQL: a ``modify``
plan outside its windows is refused at submit or waits (bounded, shown) and starts when the window opens; an
admin override needs two admins, neither of them the requester."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

import pytest
from sqlmodel import select

from core import (
    TERMINAL_STATUSES,
    ExecutionStatus,
    ExecutionView,
    InvalidInput,
    PermissionDenied,
    Role,
    SafetyRefused,
    approve,
    cancel,
    engine,
    get_change_windows,
    get_execution,
    list_dlq,
    list_events,
    list_window_overrides,
    override_change_window,
    principal,
    set_change_windows,
    set_member,
    submit,
)
from core.engine.steps import Outcome
from db.clock import utcnow
from db.engine import session_scope
from db.settings import get_settings
from db.tables import QueueItem
from tests.engine_support import drive, tee_step

ADMIN = ("admin", "demo")


@pytest.fixture
def fast(db: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Small backoffs, one step per process() call."""
    monkeypatch.setenv("OPSC_RETRY_BACKOFF_S", "0.01")
    monkeypatch.setenv("OPSC_CHAIN_STEPS", "0")
    get_settings.cache_clear()
    yield db
    get_settings.cache_clear()


def _iso(delta_s: float) -> str:
    return (utcnow() + timedelta(seconds=delta_s)).isoformat()


def _blackout_for_an_hour(mode: str, **extra: object) -> None:
    set_change_windows(
        principal(*ADMIN),
        {"mode": mode, "blackouts": [{"from": _iso(-60), "to": _iso(3600)}], **extra},
    )


def _modify_plan(log: Path) -> str:
    return "name: change\nsteps:\n" + tee_step("write", log, "changed", action_class="modify")


def _queued(log: Path, who: str = "alice") -> str:
    """A modify plan submitted by ``who`` and approved by bob: queued for a worker."""
    execution_id = submit(principal(who, "demo"), _modify_plan(log), background=True).execution.execution_id
    approve(principal("bob", "demo"), execution_id)
    return execution_id


def _process_until_ended(execution_id: str, timeout_s: float = 20) -> ExecutionView:
    """Deliver the execution's message until it has ended (a parked row is a no-op until it is due)."""
    deadline = time.monotonic() + timeout_s
    while True:
        engine.process(execution_id, worker_id="w1")
        view = get_execution(principal("alice", "demo"), execution_id)
        if view.status in TERMINAL_STATUSES or time.monotonic() > deadline:
            return view
        time.sleep(0.02)  # the row is not due yet: ask again shortly, as a delayed message would arrive


def _waiting_events(execution_id: str) -> list[str]:
    return [e.message for e in list_events(principal(*ADMIN), execution_id) if e.kind == "window_waiting"]


def test_refuse_mode_refuses_a_modify_plan_in_a_blackout_naming_the_next_opening(fast: str, tmp_path: Path) -> None:
    """Tenant mode refuse: the submit fails with ``change_window`` and the opening; a read plan still runs."""
    _blackout_for_an_hour("refuse")
    with pytest.raises(SafetyRefused) as refused:
        submit(principal("alice", "demo"), _modify_plan(tmp_path / "log"), background=True)
    assert refused.value.reason == "change_window"
    assert "in a blackout period" in refused.value.message and "next change window opens at" in refused.value.message
    read = submit(principal("alice", "demo"), "name: r\nsteps:\n" + tee_step("look", tmp_path / "r", "x"))
    assert read.execution.status == ExecutionStatus.COMPLETED


def test_a_rule_for_another_tag_holds_nothing(fast: str, tmp_path: Path) -> None:
    """A blackout tagged ``db`` does not hold a plan on the (untagged) localhost asset."""
    set_change_windows(
        principal(*ADMIN), {"mode": "refuse", "blackouts": [{"from": _iso(-60), "to": _iso(3600), "tags": ["db"]}]}
    )
    assert submit(principal("alice", "demo"), _modify_plan(tmp_path / "log")).created


def test_wait_mode_parks_the_plan_and_starts_it_when_the_window_opens(fast: str, tmp_path: Path) -> None:
    """Tenant mode wait: outside the window the execution stays queued, says until when, takes no lock, and
    runs once the window (opening a few seconds ahead) opens."""
    opens = utcnow() + timedelta(seconds=3)
    set_change_windows(principal(*ADMIN), {"mode": "wait", "windows": [{"from": opens.isoformat(), "to": _iso(3600)}]})
    log = tmp_path / "log"
    execution_id = _queued(log)
    assert engine.process(execution_id, worker_id="w1") is Outcome.NOOP
    view = get_execution(principal("alice", "demo"), execution_id)
    assert view.status == ExecutionStatus.QUEUED and view.started_at is None and not log.exists()
    [message] = _waiting_events(execution_id)
    assert message.startswith("waiting for change window until ") and "outside its change windows" in message
    with session_scope() as session:
        item = session.exec(select(QueueItem).where(QueueItem.execution_id == execution_id)).one()
        assert item.lease_token is None and abs((item.available_at - opens).total_seconds()) < 1
    outcomes = drive(execution_id, limit=5000, timeout_s=20)  # a claim before the opening finds the row not due
    assert outcomes[-1] is Outcome.FINISHED
    done = get_execution(principal("alice", "demo"), execution_id)
    assert done.status == ExecutionStatus.COMPLETED and done.started_at is not None
    assert done.started_at >= opens - timedelta(milliseconds=5)
    assert log.read_text() == "changed\n"
    assert len(_waiting_events(execution_id)) == 1  # parked once, not re-parked by every early claim


def test_a_wait_past_its_bound_ends_timeout_in_the_dlq(fast: str, tmp_path: Path) -> None:
    """No window within ``max_wait_s``: the execution ends ``timeout`` with DLQ reason ``change_window``."""
    _blackout_for_an_hour("wait", max_wait_s=1)
    execution_id = _queued(tmp_path / "log")
    assert engine.process(execution_id, worker_id="w1") is Outcome.NOOP
    [message] = _waiting_events(execution_id)
    assert "the wait's bound" in message and "in a blackout period" in message
    view = _process_until_ended(execution_id)
    assert view.status == ExecutionStatus.TIMEOUT and "no change window opened within 1s" in (view.error or "")
    [entry] = [d for d in list_dlq(principal(*ADMIN)) if d.execution_id == execution_id]
    assert entry.reason == "change_window"
    assert not (tmp_path / "log").exists()


def test_read_plans_are_never_held(fast: str, tmp_path: Path) -> None:
    """A read plan in a wait-mode blackout runs at once."""
    _blackout_for_an_hour("wait")
    result = submit(principal("alice", "demo"), "name: r\nsteps:\n" + tee_step("look", tmp_path / "r", "x"))
    assert result.execution.status == ExecutionStatus.COMPLETED


def test_an_override_needs_a_second_admin_who_is_not_the_requester(fast: str, tmp_path: Path) -> None:
    """The requester may not override their own plan; the admin who asked may not confirm; a second admin's
    confirmation starts the held execution at once."""
    admin = principal(*ADMIN)
    set_member(admin, "bob", Role.ADMIN)
    set_member(admin, "carol", Role.ADMIN)
    _blackout_for_an_hour("wait")
    log = tmp_path / "log"
    execution_id = _queued(log, who="admin")  # requested by an admin
    assert engine.process(execution_id, worker_id="w1") is Outcome.NOOP
    with pytest.raises(PermissionDenied, match="their own request"):
        override_change_window(principal(*ADMIN), execution_id, "urgent fix")
    with pytest.raises(PermissionDenied):
        override_change_window(principal("alice", "demo"), execution_id, "not an admin")
    with pytest.raises(InvalidInput, match="reason"):
        override_change_window(principal("bob", "demo"), execution_id, "  ")
    asked = override_change_window(principal("bob", "demo"), execution_id, "incident 42: the fix cannot wait")
    assert not asked.active and asked.requested_by == "bob"
    with pytest.raises(PermissionDenied, match="second admin"):
        override_change_window(principal("bob", "demo"), execution_id, "again")
    assert engine.process(execution_id, worker_id="w1") is Outcome.NOOP  # one admin is not enough
    assert not log.exists()
    given = override_change_window(principal("carol", "demo"), execution_id, "agreed")
    assert given.active and given.confirmed_by == "carol"
    assert [o.execution_id for o in list_window_overrides(admin)] == [execution_id]
    assert drive(execution_id)[-1] is Outcome.FINISHED
    assert log.read_text() == "changed\n"
    kinds = [e.kind for e in list_events(admin, execution_id)]
    assert kinds.index("window_override_requested") < kinds.index("window_overridden") < kinds.index("step_started")


def test_setting_windows_is_for_admins_and_errors_name_their_path(fast: str) -> None:
    """An operator may read the windows, not set them; YAML with a bad time names ``windows[0].start``."""
    with pytest.raises(PermissionDenied):
        set_change_windows(principal("alice", "demo"), {"windows": []})
    bad = 'windows:\n  - {days: [mon..fri], start: "22h", end: "04:00", tz: Europe/Paris}\n'
    with pytest.raises(InvalidInput) as caught:
        set_change_windows(principal(*ADMIN), bad)
    assert caught.value.issues == [("windows[0].start", 'must be HH:MM (quote it in YAML: "22:00")')]
    good = 'mode: refuse\nwindows:\n  - {days: [mon..fri], start: "22:00", end: "04:00", tz: Europe/Paris}\n'
    set_change_windows(principal(*ADMIN), good)
    view = get_change_windows(principal("dave", "demo"))
    assert view.mode == "refuse" and view.windows[0]["days"] == ["mon", "tue", "wed", "thu", "fri"]
    assert view.updated_by == "admin" and view.next_opening is not None


def test_a_held_execution_cancels_at_once(fast: str, tmp_path: Path) -> None:
    """Held for its window (queued, no lock), a cancel ends it ``cancelled`` without waiting for the opening."""
    _blackout_for_an_hour("wait")
    execution_id = _queued(tmp_path / "log")
    assert engine.process(execution_id, worker_id="w1") is Outcome.NOOP
    assert cancel(principal("alice", "demo"), execution_id, reason="not tonight").status == ExecutionStatus.CANCELLED
    with session_scope() as session:
        assert session.exec(select(QueueItem).where(QueueItem.execution_id == execution_id)).first() is None


def test_an_override_counts_only_while_both_admins_are_admins(fast: str, tmp_path: Path) -> None:
    """The confirming admin demoted before the execution starts: the override no longer lets it start."""
    admin = principal(*ADMIN)
    set_member(admin, "carol", Role.ADMIN)
    _blackout_for_an_hour("wait")
    execution_id = _queued(tmp_path / "log")
    override_change_window(admin, execution_id, "incident 43")
    assert override_change_window(principal("carol", "demo"), execution_id, "agreed").active
    set_member(admin, "carol", Role.APPROVER)
    assert engine.process(execution_id, worker_id="w1") is Outcome.NOOP
    assert get_execution(admin, execution_id).status == ExecutionStatus.QUEUED and not (tmp_path / "log").exists()

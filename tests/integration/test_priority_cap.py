"""The tenant's priority cap (issue 17 item 5, core.set_priority_cap): a tenant admin sets the highest
``priority:`` a plan may request, submissions are judged against the new cap at once, nobody else can change
it, and the admin trail records each change with the old and the new cap."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import text

from core import (
    MAX_PRIORITY,
    InvalidInput,
    PermissionDenied,
    TenantMode,
    get_execution,
    get_tenant_settings,
    list_admin_events,
    principal,
    set_priority_cap,
    set_tenant_mode,
    submit,
)
from db.engine import get_engine, session_scope

JOIN_S = 60.0


def _plan(name: str, priority: int) -> str:
    return f"name: {name}\npriority: {priority}\nsteps:\n  - {{name: s, action: noop, target: localhost}}\n"


def _cap_entries(tenant: str = "demo") -> list[dict[str, object]]:
    return [e.data for e in list_admin_events(principal("admin", tenant)) if e.action == "priority_cap"]


def test_a_plan_above_the_new_cap_is_refused_and_one_at_it_is_accepted(db: str) -> None:
    admin, alice = principal("admin", "demo"), principal("alice", "demo")
    assert get_tenant_settings(alice).max_priority == 3  # the default
    assert set_priority_cap(admin, 5).max_priority == 5
    at_cap = submit(alice, _plan("at-five", 5), background=True).execution
    assert at_cap.priority == 2 + 5  # fast's base plus the request
    with pytest.raises(InvalidInput) as refused:
        submit(alice, _plan("above-five", 6), background=True)
    assert refused.value.issues == [("priority", "priority 6 is above this tenant's cap of 5")]
    set_priority_cap(admin, 1)  # lowered: judged at submit, so what is already in keeps its priority
    with pytest.raises(InvalidInput) as lowered:
        submit(alice, _plan("above-one", 2), background=True)
    assert lowered.value.issues == [("priority", "priority 2 is above this tenant's cap of 1")]
    assert submit(alice, _plan("at-one", 1), background=True).execution.priority == 3
    assert get_execution(alice, at_cap.execution_id).priority == 7


def test_the_cap_is_the_tenants_own(db: str) -> None:
    """demo's cap of 0 leaves globex at its default."""
    set_priority_cap(principal("admin", "demo"), 0)
    with pytest.raises(InvalidInput):
        submit(principal("alice", "demo"), _plan("demo-asks", 1), background=True)
    assert submit(principal("mallory", "globex"), _plan("globex-asks", 3), background=True).execution.priority == 5
    assert get_tenant_settings(principal("mallory", "globex")).max_priority == 3


@pytest.mark.parametrize("user", ["alice", "bob", "dave"])
def test_only_a_tenant_admin_changes_the_cap(db: str, user: str) -> None:
    """An operator, an approver and a viewer are refused; the cap and the trail stay as they were."""
    with pytest.raises(PermissionDenied):
        set_priority_cap(principal(user, "demo"), 9)
    assert get_tenant_settings(principal("admin", "demo")).max_priority == 3
    assert _cap_entries() == []


@pytest.mark.parametrize("cap", [-1, MAX_PRIORITY + 1, 100, True])
def test_a_cap_out_of_range_is_invalid_input_at_max_priority(db: str, cap: int) -> None:
    with pytest.raises(InvalidInput) as refused:
        set_priority_cap(principal("admin", "demo"), cap)
    assert refused.value.issues == [("max_priority", f"must be a whole number from 0 to {MAX_PRIORITY}")]
    assert get_tenant_settings(principal("admin", "demo")).max_priority == 3
    assert _cap_entries() == []


def test_the_trail_records_each_change_with_the_old_and_new_cap(db: str) -> None:
    admin = principal("admin", "demo")
    set_priority_cap(admin, MAX_PRIORITY)
    set_tenant_mode(admin, TenantMode.DRY_RUN)  # its own entry, which says nothing about the cap
    set_priority_cap(admin, 0)
    events = list_admin_events(admin)
    assert [(e.actor, e.action, e.subject) for e in events] == [
        ("admin", "priority_cap", "demo"),
        ("admin", "tenant_mode", "demo"),
        ("admin", "priority_cap", "demo"),
    ]
    assert [events[0].data, events[2].data] == [{"old": MAX_PRIORITY, "new": 0}, {"old": 3, "new": MAX_PRIORITY}]
    assert "max_priority" not in events[1].data
    assert get_tenant_settings(admin).mode == "dry_run"  # the cap change left the mode alone, and back
    assert get_tenant_settings(admin).max_priority == 0


def _lock_waiters() -> int:
    with session_scope() as session:
        return int(
            session.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
            ).scalar_one()
        )


@pytest.mark.integration
def test_the_old_cap_in_the_trail_is_the_one_the_change_replaced(postgres_db: str) -> None:
    """Another transaction holds the settings row and changes the cap to 7: a concurrent change waits for it
    and records 7 as the old cap, not the 3 it would have read before that commit."""
    errors: list[BaseException] = []

    def change() -> None:
        try:
            set_priority_cap(principal("admin", "demo"), 4)
        except BaseException as exc:
            errors.append(exc)

    with get_engine().connect() as holder:
        tenant_id = holder.execute(text("SELECT id FROM tenants WHERE name = 'demo'")).scalar_one()
        holder.execute(
            text("SELECT max_priority FROM tenant_settings WHERE tenant_id = :t FOR UPDATE"), {"t": tenant_id}
        )
        thread = threading.Thread(target=change, name="second-admin")
        thread.start()
        while _lock_waiters() == 0:  # the change is blocked on the row (or, unlocked, would already be done)
            assert thread.is_alive(), "the change did not wait for the row"
            thread.join(timeout=0.01)
        holder.execute(text("UPDATE tenant_settings SET max_priority = 7 WHERE tenant_id = :t"), {"t": tenant_id})
        holder.commit()
    thread.join(timeout=JOIN_S)
    assert not thread.is_alive() and errors == []
    assert _cap_entries() == [{"old": 7, "new": 4}]
    assert get_tenant_settings(principal("admin", "demo")).max_priority == 4

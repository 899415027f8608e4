"""The tenant's administration trail: each admin change is recorded with who and what (never a secret
value), in the same transaction as the change, visible to the tenant's admins only."""

from __future__ import annotations

import pytest

from core import (
    ActionClass,
    Connection,
    InvalidInput,
    PermissionDenied,
    PolicyValues,
    Role,
    SlaClass,
    TenantMode,
    add_asset,
    list_admin_events,
    principal,
    set_member,
    set_password,
    set_secret,
    set_tenant_mode,
    update_policy,
)


def test_each_admin_change_is_recorded_newest_first(db: str) -> None:
    admin = principal("admin", "demo")
    set_tenant_mode(admin, TenantMode.LIVE, max_live_level=1)
    set_member(admin, "erin", Role.OPERATOR, max_action_class=ActionClass.READ)
    set_password(admin, "erin", "erins-password-1")
    set_secret(admin, "api_token", "value-that-must-not-appear-7731")
    add_asset(admin, "web-01", Connection.SSH, host="10.0.0.5")
    update_policy(admin, SlaClass.FAST, ActionClass.READ, PolicyValues(6, 12, 18, 300, 3))
    events = list_admin_events(admin)
    assert [(e.actor, e.action, e.subject) for e in events] == [
        ("admin", "policy_updated", "fast/read"),
        ("admin", "asset_added", "web-01"),
        ("admin", "secret_set", "api_token"),
        ("admin", "password_set", "erin"),
        ("admin", "member_set", "erin"),
        ("admin", "tenant_mode", "demo"),
    ]
    assert events[-1].data == {"mode": "live", "max_live_level": 1, "over_level": "dry_run"}
    assert events[2].data == {"version": 1}
    assert "value-that-must-not-appear-7731" not in repr(events)


def test_a_refused_change_leaves_no_trail(db: str) -> None:
    admin = principal("admin", "demo")
    with pytest.raises(InvalidInput):
        update_policy(admin, SlaClass.FAST, ActionClass.READ, PolicyValues(10, 5, 5, 300, 3))
    assert list_admin_events(admin) == []


def test_the_trail_is_for_the_tenants_admins_only(db: str) -> None:
    set_member(principal("admin", "demo"), "erin", Role.OPERATOR)
    with pytest.raises(PermissionDenied):
        list_admin_events(principal("alice", "demo"))
    assert list_admin_events(principal("admin", "globex")) == []

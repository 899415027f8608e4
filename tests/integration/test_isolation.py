"""RBAC and tenant isolation (DESIGN §3.7, §9): a principal of one tenant can do nothing with another's execution."""

from __future__ import annotations

import pytest

from core import (
    InvalidInput,
    NotFound,
    PermissionDenied,
    approve,
    cancel,
    get_execution,
    list_events,
    list_executions,
    principal,
    principal_for,
    reject,
    remove_member,
    set_member,
    submit,
)
from db.enums import ActionClass, Role
from tests.factories import noop_plan, plan_text


@pytest.fixture
def demo_execution(db: str) -> str:
    """A pending (level 1) execution of tenant demo, requested by alice."""
    return submit(principal("alice", "demo"), plan_text(action_class="modify")).execution.execution_id


def test_other_tenant_cannot_get_list_approve_reject_or_cancel(demo_execution: str) -> None:
    """globex's admin and operator see nothing of demo: every call is NotFound, lists are empty."""
    for who in (principal("mallory", "globex"), principal("admin", "globex")):
        with pytest.raises(NotFound):
            get_execution(who, demo_execution)
        with pytest.raises(NotFound):
            list_events(who, demo_execution)
        with pytest.raises(NotFound):
            approve(who, demo_execution)
        with pytest.raises(NotFound):
            reject(who, demo_execution)
        with pytest.raises(NotFound):
            cancel(who, demo_execution)
        assert list_executions(who) == []
    assert get_execution(principal("alice", "demo"), demo_execution).status == "pending_approval"


def test_principal_for_an_execution_searches_only_the_users_tenants(demo_execution: str) -> None:
    """Resolving mallory for demo's execution id finds nothing, as for an unknown id."""
    with pytest.raises(NotFound):
        principal_for("mallory", demo_execution)
    assert principal_for("bob", demo_execution).tenant == "demo"
    assert principal_for("admin", demo_execution).tenant == "demo"  # admin is in two tenants


def test_user_in_two_tenants_must_name_one(db: str) -> None:
    """admin belongs to demo and globex: resolving without a tenant asks for one."""
    with pytest.raises(InvalidInput, match="several tenants"):
        principal("admin")
    assert principal("admin", "globex").tenant == "globex"


def test_viewer_reads_but_cannot_submit_or_cancel(demo_execution: str) -> None:
    """dave (viewer) can read, not submit, not cancel."""
    dave = principal("dave", "demo")
    assert get_execution(dave, demo_execution).execution_id == demo_execution
    with pytest.raises(PermissionDenied):
        submit(dave, noop_plan())
    with pytest.raises(PermissionDenied):
        cancel(dave, demo_execution)


def test_operator_cancels_only_own_admin_any(demo_execution: str) -> None:
    """carol (approver, not the requester) may not cancel alice's execution; the admin may."""
    with pytest.raises(PermissionDenied, match="only their own"):
        cancel(principal("carol", "demo"), demo_execution)
    assert cancel(principal("admin", "demo"), demo_execution).status == "cancelled"


def test_operator_limited_to_read(db: str) -> None:
    """An operator limited to read may submit read plans but not modify plans."""
    set_member(principal("admin", "demo"), "alice", Role.OPERATOR, max_action_class=ActionClass.READ)
    alice = principal("alice", "demo")
    assert submit(alice, noop_plan()).created
    with pytest.raises(PermissionDenied, match="limited to read"):
        submit(alice, plan_text(action_class="modify"))


def test_revoked_role_takes_effect_at_once(demo_execution: str) -> None:
    """A principal resolved before its role was removed is refused on the next call."""
    bob = principal("bob", "demo")
    remove_member(principal("admin", "demo"), "bob")
    with pytest.raises(PermissionDenied):
        approve(bob, demo_execution)
    with pytest.raises(NotFound):
        principal("bob", "demo")


def test_unknown_ids_are_not_found(db: str) -> None:
    """Unknown execution ids are NotFound for get, approve and cancel."""
    alice = principal("alice", "demo")
    for call in (get_execution, approve, cancel):
        with pytest.raises(NotFound):
            call(alice if call is not approve else principal("bob", "demo"), "0" * 32)

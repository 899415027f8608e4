"""Runbooks are owned and versioned (issue 13 item 5), on both databases: only the owner or a tenant admin
changes one, each change is a new version in the admin trail, the level shown is the one the server derives
from the steps, and a change to a published runbook is unpublished until an admin publishes it again."""

from __future__ import annotations

from typing import Any

import pytest
from sqlmodel import select

from core import (
    Conflict,
    NotFound,
    PermissionDenied,
    Role,
    delete_runbook,
    list_admin_events,
    list_runbook_versions,
    list_runbooks,
    principal,
    publish_runbook,
    save_runbook,
    set_member,
    submit,
)
from db.engine import session_scope
from db.tables import Runbook, RunbookVersion, Tenant

ADMIN = ("admin", "demo")
NOOP = "name: mine\nsteps:\n  - {name: a, action: noop, target: localhost}\n"
NOOP_2 = "name: mine\nsteps:\n  - {name: b, action: noop, target: localhost}\n"
RM = "name: cleanup\nsteps:\n  - {name: wipe, action: shell, target: localhost, params: {command: [rm, -rf, /tmp/x]}}\n"
PS = "name: ps\nsteps:\n  - {name: ps, action: shell, target: localhost, params: {command: [ps, -e, -o, comm]}}\n"
PS_2 = PS.replace("-o, comm]", "-o, args]")


@pytest.fixture
def erin(db: str) -> Any:
    """A second operator of the demo tenant."""
    set_member(principal(*ADMIN), "erin", Role.OPERATOR)
    return principal("erin", "demo")


def _runbook(name: str, who: tuple[str, str] = ADMIN) -> Any:
    return next(r for r in list_runbooks(principal(*who)) if r.name == name)


def _trail(name: str) -> list[tuple[str, str, dict[str, Any]]]:
    """(action, actor, data) of the runbook's admin trail entries, oldest first."""
    events = [e for e in list_admin_events(principal(*ADMIN), limit=500) if e.subject == name]
    return [(e.action, e.actor, e.data) for e in reversed(events)]


def test_another_operator_can_neither_overwrite_nor_delete_a_runbook(erin: Any) -> None:
    save_runbook(principal("alice", "demo"), "mine", NOOP, description="harmless")
    with pytest.raises(PermissionDenied, match="belongs to alice"):
        save_runbook(erin, "mine", RM, description="read, no approval")
    with pytest.raises(PermissionDenied, match="belongs to alice"):
        delete_runbook(erin, "mine")
    kept = _runbook("mine")
    assert (kept.plan_text, kept.description, kept.owner, kept.version) == (NOOP, "harmless", "alice", 1)
    assert [v.version for v in list_runbook_versions(erin, "mine")] == [1]  # nothing was written
    assert [a for a, _who, _d in _trail("mine")] == ["runbook_saved"]


def test_the_seeded_shared_runbooks_belong_to_no_operator(db: str) -> None:
    """The demo library (and every runbook from before ownership) is the admins' to change."""
    assert _runbook("Failing check").owner is None
    with pytest.raises(PermissionDenied, match="has no owner"):
        save_runbook(principal("alice", "demo"), "Failing check", RM)
    with pytest.raises(PermissionDenied):
        delete_runbook(principal("alice", "demo"), "Failing check")
    changed = save_runbook(principal(*ADMIN), "Failing check", RM)
    assert (changed.version, changed.owner) == (2, None)


def test_the_owner_and_an_admin_change_it_and_every_version_is_kept(db: str) -> None:
    alice = principal("alice", "demo")
    save_runbook(alice, "mine", NOOP, description="one")
    assert save_runbook(alice, "mine", NOOP_2, description="two").version == 2
    by_admin = save_runbook(principal(*ADMIN), "mine", NOOP_2, description="three")
    assert (by_admin.version, by_admin.owner, by_admin.updated_by) == (3, "alice", "admin")  # the owner stays
    versions = list_runbook_versions(principal("dave", "demo"), "mine")  # any role reads the history
    assert [(v.version, v.created_by, v.description) for v in versions] == [
        (3, "admin", "three"),
        (2, "alice", "two"),
        (1, "alice", "one"),
    ]
    assert [v.plan_text for v in versions] == [NOOP_2, NOOP_2, NOOP]
    assert versions[0].created_at >= versions[1].created_at >= versions[2].created_at


def test_saving_the_same_text_again_adds_no_version(db: str) -> None:
    alice = principal("alice", "demo")
    save_runbook(alice, "mine", NOOP, description="d")
    assert save_runbook(alice, "mine", NOOP, description="d").version == 1
    assert len(list_runbook_versions(alice, "mine")) == 1
    assert len(_trail("mine")) == 1


def test_the_admin_trail_has_each_change_with_its_version(db: str) -> None:
    alice = principal("alice", "demo")
    save_runbook(alice, "mine", NOOP)
    save_runbook(alice, "mine", NOOP_2)
    save_runbook(principal(*ADMIN), "mine", NOOP)
    delete_runbook(alice, "mine")
    trail = _trail("mine")
    assert [(a, who, d["version"]) for a, who, d in trail] == [
        ("runbook_saved", "alice", 1),
        ("runbook_saved", "alice", 2),
        ("runbook_saved", "admin", 3),
        ("runbook_deleted", "alice", 3),
    ]
    assert [d.get("created") for _a, _w, d in trail[:3]] == [True, False, False]


def test_a_deleted_runbooks_history_stays_and_a_new_one_continues_it(erin: Any) -> None:
    save_runbook(principal("alice", "demo"), "mine", NOOP)
    delete_runbook(principal(*ADMIN), "mine")
    assert "mine" not in [r.name for r in list_runbooks(erin)]
    assert [v.version for v in list_runbook_versions(erin, "mine")] == [1]
    again = save_runbook(erin, "mine", NOOP_2)
    assert (again.version, again.owner) == (2, "erin")
    assert [(v.version, v.created_by) for v in list_runbook_versions(erin, "mine")] == [(2, "erin"), (1, "alice")]
    with pytest.raises(NotFound):
        list_runbook_versions(erin, "never-was")


def test_the_level_shown_is_derived_from_the_steps_never_the_description(db: str) -> None:
    """A runbook calling itself "read, no approval" with an `rm` step shows what a submit of it derives."""
    alice = principal("alice", "demo")
    save_runbook(alice, "cleanup", RM, description="Approval level: 0 (safe) - read, no approval")
    shown = _runbook("cleanup", ("alice", "demo"))
    assert (shown.action_class, shown.approval_level) == ("modify", 1)
    submitted = submit(alice, RM, background=True).execution
    assert (submitted.action_class, submitted.approval_level) == (shown.action_class, shown.approval_level)
    assert (_runbook("Disk usage").action_class, _runbook("Disk usage").approval_level) == ("read", 0)  # published


def test_a_change_to_a_published_runbook_is_unpublished_until_an_admin_publishes_it_again(db: str) -> None:
    alice, admin = principal("alice", "demo"), principal(*ADMIN)
    save_runbook(alice, "ps", PS)
    assert _runbook("ps").approval_level == 1  # `ps` is no declared prefix
    publish_runbook(admin, "ps", reviewed_hash=_runbook("ps").text_hash)
    assert (_runbook("ps").published, _runbook("ps").approval_level) == (True, 0)
    with pytest.raises(PermissionDenied, match="published"):  # its owner too: its steps run as read
        save_runbook(alice, "ps", PS_2)
    with pytest.raises(PermissionDenied, match="published"):
        delete_runbook(alice, "ps")
    changed = save_runbook(admin, "ps", PS_2)
    assert (changed.version, changed.published, changed.approval_level) == (2, False, 1)
    with session_scope() as session:  # the binding is gone from the row, not just out of date
        assert session.exec(select(Runbook.published_hash).where(Runbook.name == "ps")).one() is None
    assert _trail("ps")[-1][2]["unpublished"] is True
    assert submit(alice, PS, background=True).execution.approval_level == 1  # the old text is vouched for no more
    publish_runbook(admin, "ps")
    assert _runbook("ps").approval_level == 0
    assert [a for a, _w, _d in _trail("ps")] == ["runbook_saved", "runbook_published", "runbook_saved",
                                                 "runbook_published"]  # fmt: skip


def test_two_saves_of_the_same_version_do_not_both_win(db: str) -> None:
    """A concurrent writer that took the next version first (simulated by its row) makes this save a Conflict."""
    alice = principal("alice", "demo")
    save_runbook(alice, "mine", NOOP)
    with session_scope() as session:
        tenant_id = session.exec(select(Tenant.id).where(Tenant.name == "demo")).one()
        session.add(
            RunbookVersion(
                tenant_id=tenant_id, name="mine", version=2, plan_text=NOOP_2, text_hash="x", created_by="other"
            )
        )
    with pytest.raises(Conflict):
        save_runbook(alice, "mine", RM)
    assert _runbook("mine").version == 1

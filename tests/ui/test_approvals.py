"""The Approvals page: others' pending executions, approve and reject bound to the reviewed plan hash."""

from __future__ import annotations

import core
from tests.ui.conftest import MODIFY_PLAN, OpenConsole, button, submit
from ui import state

PAGE = "ui/pages/approvals.py"


def test_bob_sees_alices_pending_execution_and_approving_queues_it(console: OpenConsole) -> None:
    pending = submit("alice", "rotate-logs", MODIFY_PLAN)
    assert pending.status == "pending_approval"
    at = console("bob", page=PAGE)
    assert pending.execution_id in at.dataframe[0].value["execution_id"].tolist()

    at.selectbox(key=state.APPROVAL_PICK).select(pending.execution_id).run()
    assert not at.exception
    at.text_area(key=f"{state.APPROVAL_COMMENT}.{pending.execution_id}").input("looks safe")
    button(at, "Approve").click().run()
    assert not at.exception

    after = core.get_execution(core.principal("bob", "demo"), pending.execution_id)
    assert after.status == "queued"
    assert [(a.approver, a.decision, a.comment) for a in after.approvals] == [("bob", "approved", "looks safe")]
    assert any("Approved" in s.value and "queued" in s.value for s in at.success)
    assert not at.dataframe or pending.execution_id not in at.dataframe[0].value.get("execution_id", []).tolist()


def test_rejecting_ends_the_execution(console: OpenConsole) -> None:
    pending = submit("alice", "risky", MODIFY_PLAN)
    at = console("carol", page=PAGE)
    at.selectbox(key=state.APPROVAL_PICK).select(pending.execution_id).run()
    button(at, "Reject").click().run()
    assert not at.exception
    assert core.get_execution(core.principal("carol", "demo"), pending.execution_id).status == "rejected"


def test_own_requests_are_not_offered_for_approval(console: OpenConsole) -> None:
    """bob's own pending request is not in his inbox (nobody approves their own)."""
    own = submit("bob", "bobs-change", MODIFY_PLAN)
    at = console("bob", page=PAGE)
    assert not at.exception
    assert own.execution_id not in at.selectbox(key=state.APPROVAL_PICK).options
    assert any("Nothing is waiting" in c.value for c in at.caption)


def test_core_refusal_is_shown_as_an_error_not_a_crash(console: OpenConsole) -> None:
    """bob, demoted to operator after opening the page, gets core's PermissionDenied as a message."""
    pending = submit("alice", "contested", MODIFY_PLAN)
    at = console("bob", page=PAGE)
    at.selectbox(key=state.APPROVAL_PICK).select(pending.execution_id).run()
    core.set_member(core.principal("admin", "demo"), "bob", core.Role.OPERATOR)
    button(at, "Approve").click().run()
    assert not at.exception
    assert any("may not approve" in e.value for e in at.error)
    assert core.get_execution(core.principal("alice", "demo"), pending.execution_id).status == "pending_approval"

"""The Approvals page: others' pending executions, approve and reject bound to the reviewed plan hash."""

from __future__ import annotations

import core
from core.ops.setup import DEMO_PASSWORD
from tests.ui.conftest import MODIFY_PLAN, OpenConsole, button, shown, submit
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
    assert any("Approved" in shown(s.value) and "queued" in shown(s.value) for s in at.success)
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
    submit("bob", "bobs-change", MODIFY_PLAN)
    at = console("bob", page=PAGE)
    assert not at.exception
    assert at.selectbox(key=state.APPROVAL_PICK).options == []
    assert any("Nothing is waiting" in c.value for c in at.caption)


def test_core_refusal_is_shown_as_an_error_not_a_crash(console: OpenConsole) -> None:
    """bob, demoted to operator after opening the page, gets core's PermissionDenied as a message."""
    pending = submit("alice", "contested", MODIFY_PLAN)
    at = console("bob", page=PAGE)
    at.selectbox(key=state.APPROVAL_PICK).select(pending.execution_id).run()
    core.set_member(core.principal("admin", "demo"), "bob", core.Role.OPERATOR)
    button(at, "Approve").click().run()
    assert not at.exception
    assert any("may not approve" in shown(e.value) for e in at.error)
    assert core.get_execution(core.principal("alice", "demo"), pending.execution_id).status == "pending_approval"


DEPLOY_PLAN = MODIFY_PLAN.replace("action_class: modify", "action_class: deploy")


def test_level_2_asks_for_the_password_again_before_approving(console: OpenConsole) -> None:
    pending = submit("alice", "deploy-it", DEPLOY_PLAN)
    assert pending.approval_level == 2
    at = console("bob", page=PAGE)
    at.selectbox(key=state.APPROVAL_PICK).select(pending.execution_id).run()
    password_key = f"{state.REAUTH_PASSWORD}.{pending.execution_id}"

    button(at, "Approve").click().run()
    assert any("Enter your password" in shown(e.value) for e in at.error)
    at.text_input(key=password_key).input("wrong-password")
    button(at, "Approve").click().run()
    assert any("invalid username or password" in shown(e.value) for e in at.error)
    assert core.get_execution(core.principal("bob", "demo"), pending.execution_id).approvals == []

    at.text_input(key=password_key).input(DEMO_PASSWORD)
    button(at, "Approve").click().run()
    assert not at.exception
    after = core.get_execution(core.principal("bob", "demo"), pending.execution_id)
    assert [(a.approver, a.decision) for a in after.approvals] == [("bob", "approved")]


def test_level_1_needs_no_password(console: OpenConsole) -> None:
    pending = submit("alice", "small-change", MODIFY_PLAN)
    at = console("bob", page=PAGE)
    at.selectbox(key=state.APPROVAL_PICK).select(pending.execution_id).run()
    assert not [t for t in at.text_input if t.key.startswith(state.REAUTH_PASSWORD)]


def test_a_level_3_step_gate_is_in_the_inbox_and_its_go_needs_the_password(console: OpenConsole) -> None:
    plan = MODIFY_PLAN.replace("steps:", "approval_level: 3\nsteps:")
    pending = submit("alice", "gated", plan)
    core.approve(core.principal("bob", "demo"), pending.execution_id)
    core.approve(core.principal("carol", "demo"), pending.execution_id)
    assert core.engine.process(pending.execution_id, worker_id="w") is core.engine.Outcome.NOOP  # parked at the gate

    at = console("bob", page=PAGE)
    gate = f"{pending.execution_id}:0"
    assert at.selectbox(key=state.APPROVAL_PICK).options == [f"gated · step 0 · alice · {pending.execution_id[:8]}"]
    at.selectbox(key=state.APPROVAL_PICK).select(gate).run()
    assert "Reject" not in [b.label for b in at.button]
    at.text_input(key=f"{state.REAUTH_PASSWORD}.{pending.execution_id}").input(DEMO_PASSWORD)
    button(at, "Approve").click().run()
    assert not at.exception and not at.error
    approvals = core.get_execution(core.principal("bob", "demo"), pending.execution_id).approvals
    assert [(a.approver, a.step_index) for a in approvals if a.step_index is not None] == [("bob", 0)]
    assert core.engine.process(pending.execution_id, worker_id="w") is core.engine.Outcome.FINISHED

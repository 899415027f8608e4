"""The Approvals page: others' pending executions, approve and reject bound to the reviewed plan hash."""

from __future__ import annotations

import re

import core
from core.ops.setup import DEMO_PASSWORD
from tests.ui.conftest import MODIFY_PLAN, OpenConsole, button, shown, submit, texts
from ui import state

PAGE = "ui/pages/approvals.py"

SECRET_PLAN = """
name: {name}
steps:
  - name: rotate
    action: shell
    target: localhost
    action_class: modify
    params: {{command: [logrotate, --force, /etc/demo.conf], env: {{TOKEN: "{{{{ secret:demo_token }}}}"}}}}
"""


def test_bob_sees_alices_pending_execution_and_approving_queues_it(console: OpenConsole) -> None:
    pending = submit("alice", "rotate-logs", MODIFY_PLAN)
    assert pending.status == "pending_approval"
    at = console("bob", page=PAGE)
    # The most urgent item is open at once: no pick needed before Approve.
    assert at.selectbox(key=state.APPROVAL_PICK).value == pending.execution_id

    at.text_input(key=f"{state.APPROVAL_COMMENT}.{pending.execution_id}").input("looks safe")
    button(at, "Approve").click().run()
    assert not at.exception

    after = core.get_execution(core.principal("bob", "demo"), pending.execution_id)
    assert after.status == "queued"
    assert [(a.approver, a.decision, a.comment) for a in after.approvals] == [("bob", "approved", "looks safe")]
    assert any("Approved" in shown(s.value) and "queued" in shown(s.value) for s in at.success)
    assert any("Nothing is waiting" in c.value for c in at.caption)


def test_the_review_shows_the_commands_that_will_run_with_secret_references(console: OpenConsole) -> None:
    """The approval screen shows each step's command and params from the hashed plan, the secret as a
    reference (never its value), the dry run, who asks, the risk and the time left."""
    pending = submit("alice", "rotate-secretly", SECRET_PLAN)
    at = console("bob", page=PAGE)
    assert not at.exception
    codes = "\n".join(c.value for c in at.code)
    assert '"command": ["logrotate", "--force", "/etc/demo.conf"]' in codes
    assert '"env": {"TOKEN": "{{ secret:demo_token }}"}' in codes
    assert "dry run  would run logrotate --force /etc/demo.conf on localhost" in codes
    assert "0. rotate: shell on localhost (modify" in codes
    assert any(f"rotate-secretly  ·  requested by alice  ·  {pending.execution_id}" in t.value for t in at.text)
    facts = "\n".join(m.value for m in at.markdown)
    assert "**Risk** modify · level 1 (SLA fast, 15 s of running time)" in facts and "**Approvals** 0/1" in facts
    assert re.search(r"\*\*Time left\*\* \d+ min", facts)
    assert "s3cr3t" not in texts(at) + codes


def test_the_review_shows_what_changed_since_the_last_approved_run(console: OpenConsole) -> None:
    """A second run of the same plan name with another command: the diff is on the approval screen."""
    first = submit("alice", "nightly", MODIFY_PLAN)
    core.approve(core.principal("carol", "demo"), first.execution_id)
    submit("alice", "nightly", MODIFY_PLAN.replace('command: "true"', 'command: "false"'))
    at = console("bob", page=PAGE)
    diffs = [c for c in at.code if c.language == "diff"]
    assert len(diffs) == 1
    assert '-     "command": "true",\n+     "command": "false",' in diffs[0].value
    assert any(f"last approved run of this plan ({first.execution_id[:8]})" in c.value for c in at.caption)


def test_an_unchanged_rerun_shows_no_diff(console: OpenConsole) -> None:
    first = submit("alice", "same-again", MODIFY_PLAN)
    core.approve(core.principal("carol", "demo"), first.execution_id)
    core.submit(core.principal("alice", "demo"), MODIFY_PLAN.format(name="same-again"), idempotency_key="again")
    at = console("bob", page=PAGE)
    assert not at.exception and not [c for c in at.code if c.language == "diff"]


def test_rejecting_ends_the_execution(console: OpenConsole) -> None:
    pending = submit("alice", "risky", MODIFY_PLAN)
    at = console("carol", page=PAGE)
    button(at, "Reject").click().run()
    assert not at.exception
    assert core.get_execution(core.principal("carol", "demo"), pending.execution_id).status == "rejected"


def test_own_requests_are_not_offered_for_approval(console: OpenConsole) -> None:
    """bob's own pending request is not in his inbox (nobody approves their own)."""
    submit("bob", "bobs-change", MODIFY_PLAN)
    at = console("bob", page=PAGE)
    assert not at.exception
    assert not at.selectbox
    assert any("Nothing is waiting" in c.value for c in at.caption)


def test_core_refusal_is_shown_as_an_error_not_a_crash(console: OpenConsole) -> None:
    """bob, demoted to operator after opening the page, gets core's PermissionDenied as a message."""
    pending = submit("alice", "contested", MODIFY_PLAN)
    at = console("bob", page=PAGE)
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
    submit("alice", "small-change", MODIFY_PLAN)
    at = console("bob", page=PAGE)
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
    assert at.selectbox(key=state.APPROVAL_PICK).value == gate
    assert "Reject" not in [b.label for b in at.button]
    at.text_input(key=f"{state.REAUTH_PASSWORD}.{pending.execution_id}").input(DEMO_PASSWORD)
    button(at, "Approve").click().run()
    assert not at.exception and not at.error
    approvals = core.get_execution(core.principal("bob", "demo"), pending.execution_id).approvals
    assert [(a.approver, a.step_index) for a in approvals if a.step_index is not None] == [("bob", 0)]
    assert core.engine.process(pending.execution_id, worker_id="w") is core.engine.Outcome.FINISHED


def test_picking_another_item_reviews_that_one(console: OpenConsole) -> None:
    """Two waiting: the most urgent is open; picking the other shows its commands and approves it."""
    first = submit("alice", "first-change", MODIFY_PLAN)
    second = submit("alice", "second-change", MODIFY_PLAN.replace('command: "true"', "command: [uptime]"))
    at = console("bob", page=PAGE)
    assert at.selectbox(key=state.APPROVAL_PICK).value == first.execution_id
    at.selectbox(key=state.APPROVAL_PICK).select(second.execution_id).run()
    assert '"command": ["uptime"]' in "\n".join(c.value for c in at.code)
    button(at, "Approve").click().run()
    assert core.get_execution(core.principal("bob", "demo"), second.execution_id).status == "queued"
    assert core.get_execution(core.principal("bob", "demo"), first.execution_id).status == "pending_approval"


def test_the_review_shows_each_steps_limit_and_the_execution_limit(console: OpenConsole) -> None:
    """The approver sees what the step will run with: the policy's limit where it declares none, its own
    timeout where it does, and the execution's running time (issue 14: limits that are honest)."""
    plan = SECRET_PLAN.replace("action_class: modify", "action_class: modify\n    timeout_s: 12")
    submit("alice", "rotate-with-time", plan)
    at = console("bob", page=PAGE)
    assert not at.exception
    codes = "\n".join(c.value for c in at.code)
    assert "0. rotate: shell on localhost (modify, timeout 12s)" in codes  # medium: 20 s hold 12 s
    assert any("45 s of running time" in m.value for m in at.markdown)

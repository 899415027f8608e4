"""The DLQ page: failed work listed with its reason, requeue only after confirmation, discard with a
comment, several at once; a requeue that needs a new approval says so."""

from __future__ import annotations

import core
from core.ops.setup import DEMO_RUNBOOKS
from tests.engine_support import drive
from tests.ui.conftest import OpenConsole, button, shown, texts
from ui import state

PAGE = "ui/pages/dlq.py"
FAILING = next(plan for name, _d, plan in DEMO_RUNBOOKS if name == "Failing check")


def _failed() -> str:
    """A modify execution that alice submitted, bob approved, and that failed into the DLQ."""
    execution_id = core.submit(core.principal("alice", "demo"), FAILING).execution.execution_id
    core.approve(core.principal("bob", "demo"), execution_id)
    drive(execution_id)
    assert core.get_execution(core.principal("alice", "demo"), execution_id).status == "failed"
    return execution_id


def test_failed_work_is_listed_with_its_reason(console: OpenConsole) -> None:
    execution_id = _failed()
    at = console("alice", page=PAGE)
    assert not at.exception
    table = at.dataframe[0].value
    assert table["execution_id"].tolist() == [execution_id]
    assert table["reason"].tolist() == ["step_failed"]
    assert table["last_error"].tolist() == ["exit code 2"]


def test_requeue_needs_the_confirmation_then_runs_again(console: OpenConsole) -> None:
    execution_id = _failed()
    at = console("alice", page=PAGE)
    at.multiselect(key=state.DLQ_PICK).select(execution_id).run()
    button(at, "Requeue").click().run()
    assert any("confirmation" in shown(w.value) for w in at.warning)
    assert core.get_execution(core.principal("alice", "demo"), execution_id).status == "failed"

    at.checkbox(key=state.DLQ_CONFIRM).check().run()
    button(at, "Requeue").click().run()
    assert not at.exception
    assert core.get_execution(core.principal("alice", "demo"), execution_id).status == "queued"
    assert any("Requeued 1 of 1" in shown(s.value) for s in at.success)
    assert "The dead-letter queue is empty." in texts(at)


def test_discard_needs_a_comment_and_an_admin(console: OpenConsole) -> None:
    first, second = _failed(), _failed()
    at = console("alice", page=PAGE)
    at.multiselect(key=state.DLQ_PICK).select(first).run()
    at.text_area(key=state.DLQ_COMMENT).input("not needed").run()
    button(at, "Discard").click().run()
    assert any("admin" in shown(e.value) for e in at.error)

    at = console("admin", page=PAGE)
    at.multiselect(key=state.DLQ_PICK).select(first).select(second).run()
    button(at, "Discard").click().run()
    assert [shown(e.value) for e in at.error] == ["comment: a comment is required to discard"] * 2
    at.text_area(key=state.DLQ_COMMENT).input("known issue, fixed elsewhere").run()
    button(at, "Discard").click().run()
    assert not at.exception
    assert any("Discarded 2 of 2" in shown(s.value) for s in at.success)
    assert not core.list_dlq(core.principal("admin", "demo"))


def test_a_requeue_whose_approval_no_longer_holds_says_so(console: OpenConsole) -> None:
    execution_id = _failed()
    core.set_member(core.principal("admin", "demo"), "bob", core.Role.VIEWER)  # the approver lost the right
    at = console("alice", page=PAGE)
    at.multiselect(key=state.DLQ_PICK).select(execution_id).run()
    at.checkbox(key=state.DLQ_CONFIRM).check().run()
    button(at, "Requeue").click().run()
    assert not at.exception
    assert any("new approval" in shown(e.value) for e in at.error)


def test_other_tenants_see_nothing(console: OpenConsole) -> None:
    _failed()
    at = console("mallory", tenant="globex", page=PAGE)
    assert "The dead-letter queue is empty." in texts(at)


def test_requeue_with_changes_runs_the_edited_remaining_steps_as_a_new_execution(console: OpenConsole) -> None:
    """Issue 16 item 4: one entry picked, its remaining steps are offered as a plan to edit; submitted, they
    are a new execution (approved afresh) and the entry is closed as superseded."""
    execution_id = _failed()
    at = console("alice", page=PAGE)
    at.multiselect(key=state.DLQ_PICK).select(execution_id).run()
    edit = at.text_area(key=f"{state.DLQ_EDIT_PLAN}.{execution_id}")
    assert "/nonexistent/opsconductor-demo" in edit.value and "target: localhost" in edit.value
    edit.set_value(edit.value.replace("/nonexistent/opsconductor-demo", "/tmp")).run()
    at.text_area(key=state.DLQ_COMMENT).set_value("the path was wrong").run()
    at.button(key=f"{state.DLQ_EDIT_SUBMIT}.{execution_id}").click().run()
    assert not at.exception
    assert any("Requeued with changes as a new execution" in shown(s.value) for s in at.success)
    rows = core.list_executions(core.principal("alice", "demo"))
    new = core.get_execution(core.principal("alice", "demo"), rows[0].execution_id)
    assert new.rerun_of == execution_id and new.status == "pending_approval"
    assert len(new.steps) == 1  # the remaining step only: the failed one, edited
    entry = next(d for d in core.list_dlq(core.principal("alice", "demo"), include_resolved=True))
    assert (entry.resolution, entry.comment) == (
        "superseded",
        f"requeued with changes as {new.execution_id}: the path was wrong",
    )
    assert "The dead-letter queue is empty." in texts(at)


def test_requeue_with_changes_that_do_not_validate_shows_why_and_keeps_the_entry(console: OpenConsole) -> None:
    execution_id = _failed()
    at = console("alice", page=PAGE)
    at.multiselect(key=state.DLQ_PICK).select(execution_id).run()
    at.text_area(key=f"{state.DLQ_EDIT_PLAN}.{execution_id}").set_value("name: x\nsteps: []\n").run()
    at.button(key=f"{state.DLQ_EDIT_SUBMIT}.{execution_id}").click().run()
    assert not at.exception
    assert len(at.error) == 1 and "steps" in shown(at.error[0].value)
    assert core.list_dlq(core.principal("alice", "demo"))[0].execution_id == execution_id  # still open

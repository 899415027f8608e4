"""The Executions page: tenant-scoped list, filters, paging, detail, cancel."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

import core
from tests.ui.conftest import MODIFY_PLAN, OpenConsole, button, submit, texts
from ui import state

PAGE = "ui/pages/executions.py"


def listed(at: AppTest) -> list[str]:
    """The execution ids in the list, in order (the list is the page's first table)."""
    return at.dataframe[0].value["execution_id"].tolist() if at.dataframe else []


def test_list_shows_the_tenants_executions(console: OpenConsole) -> None:
    first = submit("alice", "disk-usage")
    second = submit("alice", "rotate-logs", MODIFY_PLAN)
    at = console("dave", page=PAGE)
    assert not at.exception
    assert listed(at) == [second.execution_id, first.execution_id]


def test_other_tenant_does_not_see_demo_executions(console: OpenConsole) -> None:
    submit("alice", "disk-usage")
    at = console("mallory", tenant="globex", page=PAGE)
    assert not at.exception
    assert listed(at) == []
    assert any("No executions match" in c.value for c in at.caption)


def test_status_and_text_filters_narrow_the_list(console: OpenConsole) -> None:
    read = submit("alice", "disk-usage")
    pending = submit("alice", "rotate-logs", MODIFY_PLAN)
    at = console("alice", page=PAGE)
    at.multiselect(key=state.FILTER_STATUS).select(core.ExecutionStatus.PENDING_APPROVAL).run()
    assert listed(at) == [pending.execution_id]
    at.multiselect(key=state.FILTER_STATUS).unselect(core.ExecutionStatus.PENDING_APPROVAL).run()
    at.text_input(key=state.FILTER_SEARCH).input("disk").run()
    assert listed(at) == [read.execution_id]
    at.text_input(key=state.FILTER_REQUESTER).input("bob").run()
    assert listed(at) == []
    assert not at.exception


def test_list_pages_by_fifty(console: OpenConsole) -> None:
    ids = [submit("alice", f"plan-{i:02d}").execution_id for i in range(51)]
    at = console("alice", page=PAGE)
    assert len(listed(at)) == 50
    button(at, "Next").click().run()
    assert listed(at) == [ids[0]]  # newest first: the oldest is alone on page 2
    assert button(at, "Next").disabled
    button(at, "Previous").click().run()
    assert len(listed(at)) == 50
    assert not at.exception


def test_detail_shows_summary_plan_hash_steps_and_events(console: OpenConsole) -> None:
    pending = submit("alice", "rotate-logs", MODIFY_PLAN)
    at = console("dave", page=PAGE)
    at.selectbox(key=state.EXECUTION_PICK).select(pending.execution_id).run()
    assert not at.exception
    shown = texts(at)
    assert pending.plan_hash in shown
    assert "rotate" in shown  # the step
    assert "pending_approval" in shown
    assert "Cancel execution" not in [b.label for b in at.button]  # a viewer may not cancel


def test_requester_cancels_a_pending_execution(console: OpenConsole) -> None:
    pending = submit("alice", "rotate-logs", MODIFY_PLAN)
    at = console("alice", page=PAGE)
    at.selectbox(key=state.EXECUTION_PICK).select(pending.execution_id).run()
    at.text_input(key=f"{state.CANCEL_REASON}.{pending.execution_id}").input("changed my mind")
    button(at, "Cancel execution").click().run()
    assert not at.exception
    assert core.get_execution(core.principal("alice", "demo"), pending.execution_id).status == "cancelled"
    assert any("cancelled" in s.value for s in at.success)
    assert "Cancel execution" not in [b.label for b in at.button]


def test_cancel_is_offered_to_admins_but_not_to_other_operators(console: OpenConsole) -> None:
    pending = submit("alice", "rotate-logs", MODIFY_PLAN)
    core.set_member(core.principal("admin", "demo"), "erin", core.Role.OPERATOR)
    for username, offered in (("erin", False), ("admin", True)):
        at = console(username, page=PAGE)
        at.selectbox(key=state.EXECUTION_PICK).select(pending.execution_id).run()
        assert not at.exception
        assert ("Cancel execution" in [b.label for b in at.button]) is offered, username

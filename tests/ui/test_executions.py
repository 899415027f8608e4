"""The Executions page: tenant-scoped list, filters, paging, detail, cancel."""

from __future__ import annotations

from datetime import timedelta

from streamlit.testing.v1 import AppTest

import core
from core.ops.setup import DEMO_RUNBOOKS
from tests.engine_support import drive
from tests.ui.conftest import MODIFY_PLAN, READ_PLAN, OpenConsole, button, shown, submit, texts
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
    # What runs, from the hashed plan: the step's command and its dry run.
    assert "0. rotate: shell on localhost (modify, limit 8s (policy))" in shown and '"command": "true"' in shown
    assert "dry run  would run true on localhost" in shown
    assert f"**Priority:** {pending.priority}" in shown and pending.priority == 2  # a fast plan's base
    assert "Cancel execution" not in [b.label for b in at.button]  # a viewer may not cancel


def test_requester_cancels_a_pending_execution(console: OpenConsole) -> None:
    pending = submit("alice", "rotate-logs", MODIFY_PLAN)
    at = console("alice", page=PAGE)
    at.selectbox(key=state.EXECUTION_PICK).select(pending.execution_id).run()
    at.text_input(key=f"{state.CANCEL_REASON}.{pending.execution_id}").input("changed my mind")
    button(at, "Cancel execution").click().run()
    assert not at.exception
    # One click only asks: nothing is cancelled until the operator confirms.
    assert core.get_execution(core.principal("alice", "demo"), pending.execution_id).status == "pending_approval"
    assert any("cannot be undone" in shown(w.value) for w in at.warning)
    button(at, "Keep it").click().run()
    assert core.get_execution(core.principal("alice", "demo"), pending.execution_id).status == "pending_approval"
    button(at, "Cancel execution").click().run()
    button(at, "Yes, cancel it").click().run()
    assert not at.exception
    assert core.get_execution(core.principal("alice", "demo"), pending.execution_id).status == "cancelled"
    assert any("cancelled" in shown(s.value) for s in at.success)
    assert "Cancel execution" not in [b.label for b in at.button]


def test_cancel_is_offered_to_admins_but_not_to_other_operators(console: OpenConsole) -> None:
    pending = submit("alice", "rotate-logs", MODIFY_PLAN)
    core.set_member(core.principal("admin", "demo"), "erin", core.Role.OPERATOR)
    for username, offered in (("erin", False), ("admin", True)):
        at = console(username, page=PAGE)
        at.selectbox(key=state.EXECUTION_PICK).select(pending.execution_id).run()
        assert not at.exception
        assert ("Cancel execution" in [b.label for b in at.button]) is offered, username


def test_asset_and_date_filters_narrow_the_list(console: OpenConsole) -> None:
    on_localhost = submit("alice", "disk-usage")
    core.add_asset(core.principal("admin", "demo"), "other", core.Connection.LOCAL)
    elsewhere = core.submit(core.principal("alice", "demo"), READ_PLAN.format(name="x").replace("localhost", "other"))
    at = console("alice", page=PAGE)
    assert set(listed(at)) == {on_localhost.execution_id, elsewhere.execution.execution_id}
    at.text_input(key=state.FILTER_ASSET).input("other").run()
    assert listed(at) == [elsewhere.execution.execution_id]
    at.text_input(key=state.FILTER_ASSET).input("").run()
    yesterday = on_localhost.created_at.date() - timedelta(days=1)
    at.date_input(key=state.FILTER_DATES).set_value((yesterday, yesterday)).run()
    assert listed(at) == []
    at.date_input(key=state.FILTER_DATES).set_value((yesterday, on_localhost.created_at.date())).run()
    assert len(listed(at)) == 2
    assert not at.exception


def test_the_step_timeline_shows_status_duration_and_output(console: OpenConsole) -> None:
    done = submit("alice", "disk-usage")
    drive(done.execution_id)
    at = console("alice", page=PAGE)
    at.selectbox(key=state.EXECUTION_PICK).select(done.execution_id).run()
    assert not at.exception
    labels = [e.label for e in at.expander]
    assert any("df" in label and "completed" in label and "attempt 1" in label and " s" in label for label in labels)
    assert any("Filesystem" in c.value for c in at.code)  # df's header, in the step output


def test_an_ended_execution_can_be_rerun_and_a_failed_one_links_to_the_dlq(console: OpenConsole) -> None:
    failing = next(plan for name, _d, plan in DEMO_RUNBOOKS if name == "Failing check")
    failed = core.submit(core.principal("alice", "demo"), failing).execution
    core.approve(core.principal("bob", "demo"), failed.execution_id)
    drive(failed.execution_id)
    at = console("alice", page=PAGE)
    at.selectbox(key=state.EXECUTION_PICK).select(failed.execution_id).run()
    assert any(link.label == "Open the dead-letter queue" for link in at.get("page_link"))
    at.button(key=f"{state.RERUN_BUTTON}.{failed.execution_id}").click().run()
    assert not at.exception
    rows = core.list_executions(core.principal("alice", "demo"))
    assert len(rows) == 2 and rows[0].status == "pending_approval"  # a new execution, approved anew
    assert at.selectbox(key=state.EXECUTION_PICK).value == rows[0].execution_id  # and it is opened
    assert at.query_params["execution"] == rows[0].execution_id  # in the address too
    assert f"**Rerun of:** {failed.execution_id}" in texts(at)
    assert any(f"Rerun of {failed.execution_id[:8]} submitted as a new execution" in shown(s.value) for s in at.success)


def test_an_execution_focused_from_another_page_opens(console: OpenConsole) -> None:
    pending = submit("alice", "rotate-logs", MODIFY_PLAN)
    at = console("alice")
    at.session_state[state.FOCUS_EXECUTION] = pending.execution_id
    at.switch_page(PAGE).run()
    assert at.selectbox(key=state.EXECUTION_PICK).value == pending.execution_id
    assert pending.plan_hash in texts(at)


def test_edit_and_rerun_loads_the_plan_into_submit_and_submits_it_linked(console: OpenConsole) -> None:
    """Issue 16 item 4: the ended execution's plan opens in Submit, edited there, and runs as a new execution
    linked to the old one; "Not a rerun" makes it a plain submit again."""
    done = submit("alice", "disk-usage", READ_PLAN)
    drive(done.execution_id)
    at = console("alice", page=PAGE)
    at.selectbox(key=state.EXECUTION_PICK).select(done.execution_id).run()
    at.button(key=f"{state.EDIT_RERUN_BUTTON}.{done.execution_id}").click().run()
    assert not at.exception
    assert any(f"Editing a rerun of execution {done.execution_id[:8]}" in shown(i.value) for i in at.info)
    assert "name: disk-usage" in at.text_area(key=state.PLAN_TEXT).value
    at.switch_page("ui/pages/submit.py").run()  # AppTest's next run starts from its page again: stay on Submit
    text = at.text_area(key=state.PLAN_TEXT)
    assert "name: disk-usage" in text.value and "target: localhost" in text.value  # names, not asset ids
    text.set_value(text.value.replace("name: disk-usage", "name: disk-usage-edited", 1)).run()
    button(at, "Submit").click().run()
    assert not at.exception
    rows = core.list_executions(core.principal("alice", "demo"))
    assert len(rows) == 2
    new = core.get_execution(core.principal("alice", "demo"), rows[0].execution_id)
    assert (new.name, new.rerun_of) == ("disk-usage-edited", done.execution_id)
    assert state.RERUN_OF not in at.session_state  # the next submit is a fresh one


def test_a_status_in_the_address_filters_the_list(console: OpenConsole) -> None:
    """/executions?status=failed (the Dashboard's links) opens the list with that filter set."""
    failing = next(plan for name, _d, plan in DEMO_RUNBOOKS if name == "Failing check")
    failed = core.submit(core.principal("alice", "demo"), failing).execution
    core.approve(core.principal("bob", "demo"), failed.execution_id)
    drive(failed.execution_id)
    drive(submit("alice", "fine", READ_PLAN).execution_id)
    at = console("alice", page=PAGE)
    assert len(at.dataframe[0].value) == 2
    at.query_params["status"] = "failed"
    at.run()
    assert not at.exception
    assert at.multiselect(key=state.FILTER_STATUS).value == ["failed"]
    assert at.dataframe[0].value["execution_id"].tolist() == [failed.execution_id]


def test_tables_have_human_headers_and_empty_text_cells() -> None:
    from ui.components.tables import _cell, header

    assert header("requested_by") == "Requested by" and header("sla_class") == "SLA class"
    assert header("execution_id") == "Execution"
    assert _cell(None, text=True) == "" and _cell(None) is None  # a number column keeps its None

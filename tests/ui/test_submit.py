"""The Submit page: preview, path-precise errors, submit, duplicates."""

from __future__ import annotations

import core
from tests.ui.conftest import MODIFY_PLAN, READ_PLAN, OpenConsole, button, shown, texts
from ui import state

PAGE = "ui/pages/submit.py"
BAD_ACTION = """
name: broken
steps:
  - name: one
    action: teleport
    target: localhost
"""


def test_preview_shows_what_the_server_derives(console: OpenConsole) -> None:
    at = console("alice", page=PAGE)
    at.text_area(key=state.PLAN_TEXT).input(MODIFY_PLAN.format(name="rotate-logs")).run()
    assert not at.exception
    assert not at.error
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Approval level"] == "1"
    assert metrics["Approvals required"] == "1"
    assert metrics["Action class"] == "modify"
    assert metrics["SLA class"] == "fast"
    preview = core.preview(core.principal("alice", "demo"), MODIFY_PLAN.format(name="rotate-logs"))
    assert preview.plan_hash in texts(at)
    assert "background" in texts(at)  # the mode line
    assert core.list_executions(core.principal("alice", "demo")) == []  # a preview writes nothing


def test_invalid_plan_shows_the_path_of_the_error(console: OpenConsole) -> None:
    at = console("alice", page=PAGE)
    at.text_area(key=state.PLAN_TEXT).input(BAD_ACTION).run()  # validated as typed: no button needed
    assert not at.exception
    assert any("steps[0].action" in shown(e.value) and "teleport" in shown(e.value) for e in at.error)
    assert not at.metric


def test_empty_plan_is_an_error_not_an_exception(console: OpenConsole) -> None:
    at = console("alice", page=PAGE)
    button(at, "Submit").click().run()
    assert not at.exception
    assert any("empty" in shown(e.value) for e in at.error)


def test_submit_creates_an_execution(console: OpenConsole) -> None:
    at = console("alice", page=PAGE)
    at.text_area(key=state.PLAN_TEXT).input(READ_PLAN.format(name="disk-usage"))
    button(at, "Submit").click().run()
    assert not at.exception
    rows = core.list_executions(core.principal("alice", "demo"))
    assert [(r.name, r.requested_by) for r in rows] == [("disk-usage", "alice")]
    assert any(rows[0].execution_id in shown(s.value) for s in at.success)


def test_uploaded_file_is_submitted(console: OpenConsole) -> None:
    at = console("alice", page=PAGE)
    plan = READ_PLAN.format(name="from-file").encode()
    at.file_uploader(key=state.PLAN_FILE).set_value(("plan.yaml", plan, "application/yaml")).run()
    button(at, "Submit").click().run()
    assert not at.exception
    assert [r.name for r in core.list_executions(core.principal("alice", "demo"))] == ["from-file"]


def test_duplicate_submit_says_so_and_names_the_existing_execution(console: OpenConsole) -> None:
    at = console("alice", page=PAGE)
    at.text_area(key=state.PLAN_TEXT).input(MODIFY_PLAN.format(name="twice"))
    button(at, "Submit").click().run()
    button(at, "Submit").click().run()
    assert not at.exception
    rows = core.list_executions(core.principal("alice", "demo"))
    assert len(rows) == 1
    assert any("already active" in shown(w.value) and rows[0].execution_id in shown(w.value) for w in at.warning)


def test_a_runbook_from_the_library_loads_into_the_editor_and_submits(console: OpenConsole) -> None:
    at = console("alice", page=PAGE)
    at.selectbox(key=state.RUNBOOK_PICK).select("Disk usage").run()
    assert not at.exception
    assert "df" in at.text_area(key=state.PLAN_TEXT).value
    assert {m.label: m.value for m in at.metric}["Approval level"] == "0"  # validated at once
    button(at, "Submit").click().run()
    assert [r.name for r in core.list_executions(core.principal("alice", "demo"))] == ["disk-usage"]


def test_dry_run_describes_the_steps_and_creates_nothing(console: OpenConsole) -> None:
    at = console("alice", page=PAGE)
    at.text_area(key=state.PLAN_TEXT).input(MODIFY_PLAN.format(name="rotate-logs")).run()
    button(at, "Dry run").click().run()
    assert not at.exception and not at.error
    assert any("nothing was executed" in s.value for s in at.subheader)
    assert any("true" in c.value for c in at.code)
    assert core.list_executions(core.principal("alice", "demo")) == []


def test_a_plan_is_saved_to_the_library_and_a_bad_one_refused(console: OpenConsole) -> None:
    at = console("alice", page=PAGE)
    at.text_area(key=state.PLAN_TEXT).input(MODIFY_PLAN.format(name="rotate-logs")).run()
    at.text_input(key=state.RUNBOOK_NAME).input("Rotate logs")
    button(at, "Save runbook").click().run()
    assert not at.exception
    assert "Rotate logs" in [r.name for r in core.list_runbooks(core.principal("bob", "demo"))]

    at.text_area(key=state.PLAN_TEXT).input(BAD_ACTION).run()
    at.text_input(key=state.RUNBOOK_NAME).input("Broken")
    button(at, "Save runbook").click().run()
    assert "Broken" not in [r.name for r in core.list_runbooks(core.principal("bob", "demo"))]


def test_a_submitted_execution_is_linked_and_focused(console: OpenConsole) -> None:
    at = console("alice", page=PAGE)
    at.text_area(key=state.PLAN_TEXT).input(MODIFY_PLAN.format(name="linked"))
    button(at, "Submit").click().run()
    execution_id = core.list_executions(core.principal("alice", "demo"))[0].execution_id
    assert at.session_state[state.FOCUS_EXECUTION] == execution_id
    assert any(link.label == "Open the execution" for link in at.get("page_link"))


def test_preview_shows_each_steps_limit(console: OpenConsole) -> None:
    """The preview says what the steps will run with and how much running time the execution gets."""
    at = console("alice", page=PAGE)
    at.text_area(key=state.PLAN_TEXT).input(MODIFY_PLAN.format(name="rotate-logs")).run()
    assert not at.exception
    preview = core.preview(core.principal("alice", "demo"), MODIFY_PLAN.format(name="rotate-logs"))
    assert [s["step_limit_s"] for s in preview.steps] == [8]  # fast modify's policy limit: none declared
    assert any(f"the execution gets {preview.execution_limit_s} s of running time" in c.value for c in at.caption)


def test_notify_me_subscribes_an_address_and_asks_for_this_executions_end(console: OpenConsole) -> None:
    """Submit's "Notify me when it finishes": without an address, one is asked for, subscribed "only when asked",
    and the execution is submitted asking; with one, it is named and no field is shown."""
    from db.engine import session_scope
    from db.tables import Execution

    alice = core.principal("alice", "demo")
    at = console("alice", page=PAGE)
    at.text_area(key=state.PLAN_TEXT).input(READ_PLAN.format(name="told")).run()
    at.checkbox(key=state.NOTIFY_ON_FINISH).check().run()
    assert not at.exception
    button(at, "Submit").click().run()
    assert any("email address" in shown(e.value) for e in at.error)  # asked for, nothing submitted
    assert core.list_executions(alice) == []
    at.text_input(key=state.NOTIFY_ADDRESS).input("alice@example.test").run()
    button(at, "Submit").click().run()
    assert not at.exception and not at.error
    [channel] = core.list_channels(alice)
    assert (channel.target, channel.only_when_asked) == ("alice@example.test", True)
    [execution] = core.list_executions(alice)
    with session_scope() as session:
        row = session.get(Execution, execution.execution_id)
        assert row is not None and row.notify_on_finish
    at = console("alice", page=PAGE)
    at.checkbox(key=state.NOTIFY_ON_FINISH).check().run()
    assert state.NOTIFY_ADDRESS not in [t.key for t in at.text_input]  # an address on file: none asked for
    assert any("To alice@example.test" in shown(c.value) for c in at.caption)

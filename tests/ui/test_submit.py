"""The Submit page: preview, path-precise errors, submit, duplicates."""

from __future__ import annotations

import core
from tests.ui.conftest import MODIFY_PLAN, READ_PLAN, OpenConsole, button, texts
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
    at.text_area(key=state.PLAN_TEXT).input(MODIFY_PLAN.format(name="rotate-logs"))
    button(at, "Preview").click().run()
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
    at.text_area(key=state.PLAN_TEXT).input(BAD_ACTION)
    button(at, "Preview").click().run()
    assert not at.exception
    assert any("steps[0].action" in e.value and "teleport" in e.value for e in at.error)
    assert not at.metric


def test_empty_plan_is_an_error_not_an_exception(console: OpenConsole) -> None:
    at = console("alice", page=PAGE)
    button(at, "Submit").click().run()
    assert not at.exception
    assert any("empty" in e.value for e in at.error)


def test_submit_creates_an_execution(console: OpenConsole) -> None:
    at = console("alice", page=PAGE)
    at.text_area(key=state.PLAN_TEXT).input(READ_PLAN.format(name="disk-usage"))
    button(at, "Submit").click().run()
    assert not at.exception
    rows = core.list_executions(core.principal("alice", "demo"))
    assert [(r.name, r.requested_by) for r in rows] == [("disk-usage", "alice")]
    assert any(rows[0].execution_id in s.value for s in at.success)


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
    assert any("already active" in w.value and rows[0].execution_id in w.value for w in at.warning)

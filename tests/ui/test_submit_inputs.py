"""The Submit page's input form (DESIGN §14): a plan or runbook that declares inputs gets one widget per input,
by type; the values reach the preview and the submit; bad values are shown once, with their paths."""

from __future__ import annotations

import core
from tests.ui.conftest import OpenConsole, button, shown, texts
from ui import state

PAGE = "ui/pages/submit.py"
PLAN = """
name: restart {{ input:service }}
inputs:
  - {name: service, type: choice, choices: [nginx, cron], description: The unit}
  - {name: port, type: int, default: 80}
  - {name: verbose, type: bool, default: false}
  - {name: note, type: string, pattern: "[a-z ]*", default: ok}
  - {name: host, type: asset, default: localhost}
steps:
  - name: say
    action: shell
    target: "{{ input:host }}"
    action_class: modify
    params: {command: [echo, "{{ input:service }}:{{ input:port }}", "{{ input:note }}", "v={{ input:verbose }}"]}
"""


def key(name: str) -> str:
    return state.PLAN_INPUT + name


def test_the_form_renders_a_widget_per_input_type(console: OpenConsole) -> None:
    at = console("alice", page=PAGE)
    at.text_area(key=state.PLAN_TEXT).input(PLAN).run()
    assert not at.exception
    assert at.selectbox(key=key("service")).options == ["nginx", "cron"]
    assert at.selectbox(key=key("service")).value is None  # no default: the operator must choose
    assert at.number_input(key=key("port")).value == 80
    assert at.checkbox(key=key("verbose")).value is False
    assert at.text_input(key=key("note")).value == "ok"
    assert at.selectbox(key=key("host")).value == "localhost"  # the tenant's assets, its default chosen
    # Nothing chosen for a required input: the preview says so, once, with the path.
    errors = [shown(e.value) for e in at.error]
    assert len(errors) == 1 and "inputs.service: required" in errors[0]


def test_values_from_the_form_are_previewed_and_submitted(console: OpenConsole) -> None:
    at = console("alice", page=PAGE)
    at.text_area(key=state.PLAN_TEXT).input(PLAN).run()
    at.selectbox(key=key("service")).select("cron")
    at.number_input(key=key("port")).set_value(8080)
    at.checkbox(key=key("verbose")).check().run()
    assert not at.exception and not at.error
    alice = core.principal("alice", "demo")
    expected = core.preview(alice, PLAN, inputs={"service": "cron", "port": 8080, "verbose": True, "note": "ok"})
    assert expected.plan_hash in texts(at)  # the preview covers the values chosen
    assert "cron" in texts(at)  # the bound values are listed
    button(at, "Submit").click().run()
    assert not at.exception
    [row] = core.list_executions(alice)
    assert row.name == "restart cron"
    assert core.get_execution(alice, row.execution_id).plan_hash == expected.plan_hash


def test_a_bad_value_is_shown_once_with_its_path(console: OpenConsole) -> None:
    at = console("alice", page=PAGE)
    at.text_area(key=state.PLAN_TEXT).input(PLAN).run()
    at.selectbox(key=key("service")).select("nginx")
    at.text_input(key=key("note")).input("NOT LOWER").run()
    errors = [shown(e.value) for e in at.error]
    assert len(errors) == 1 and "inputs.note: does not match the pattern" in errors[0]
    button(at, "Submit").click().run()
    errors = [shown(e.value) for e in at.error]
    assert len(errors) == 1 and "inputs.note" in errors[0]
    assert core.list_executions(core.principal("alice", "demo")) == []


def test_the_demo_runbook_with_inputs_loads_its_form_and_submits(console: OpenConsole) -> None:
    at = console("alice", page=PAGE)
    at.selectbox(key=state.RUNBOOK_PICK).select("Restart a service").run()
    assert not at.exception and not at.error
    assert at.selectbox(key=key("service")).value == "nginx"
    at.selectbox(key=key("service")).select("app").run()
    button(at, "Submit").click().run()
    assert not at.exception
    [row] = core.list_executions(core.principal("alice", "demo"))
    assert (row.name, row.status) == ("restart app", "pending_approval")


def test_a_plan_without_inputs_has_no_form(console: OpenConsole) -> None:
    at = console("alice", page=PAGE)
    at.text_area(key=state.PLAN_TEXT).input("name: p\nsteps:\n  - {name: s, action: noop, target: localhost}\n").run()
    assert not at.exception
    assert not any(m.value == "**Inputs**" for m in at.markdown)


def test_a_bad_declaration_is_reported_once_by_the_preview(console: OpenConsole) -> None:
    at = console("alice", page=PAGE)
    bad = "name: p\ninputs:\n  - {name: x, type: float}\nsteps:\n  - {name: s, action: noop, target: localhost}\n"
    at.text_area(key=state.PLAN_TEXT).input(bad).run()
    assert not at.exception
    errors = [shown(e.value) for e in at.error]
    assert len(errors) == 1 and "inputs[0].type" in errors[0]


def test_the_approver_sees_the_values_chosen(console: OpenConsole) -> None:
    """The approval screen's "what will run" lists the inputs beside the concrete steps."""
    core.submit(core.principal("alice", "demo"), PLAN, inputs={"service": "cron", "note": "for bob"})
    at = console("bob", page="ui/pages/approvals.py")
    assert not at.exception
    code = "\n".join(c.value for c in at.code)
    assert '# inputs: host="localhost", note="for bob", port=80, service="cron", verbose=false' in code
    assert '"cron:80", "for bob", "v=false"' in code

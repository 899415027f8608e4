"""User text is shown as text (issue 13 item 4): a plan, step, runbook or DLQ entry whose name or description
is markdown and HTML shows literally on every page, loads no image and makes nothing bold.

AppTest exposes each element's raw markdown (``value``, ``label``). Two checks per element: the raw body never
holds the hostile text unescaped (Streamlit would interpret it), and where the text appears, a CommonMark
renderer turns the body into exactly that text (HTML-escaped): no ``<strong>``, ``<img>`` or ``<a>`` of it.
"""

from __future__ import annotations

import html
import json

from markdown_it import MarkdownIt
from streamlit.testing.v1 import AppTest

import core
from tests.engine_support import drive
from tests.ui.conftest import MARKDOWN_KINDS, OpenConsole, shown, texts
from ui import state

HOSTILE = "**Approval level: 0 (safe)** ![x](http://evil/x.png) <img src=http://evil/y.png> _it_ :red[red] $x$"
MARKDOWN = MarkdownIt("commonmark").enable(["table", "strikethrough"])


def _plan(*, action_class: str = "read", command: list[str] | None = None, target: str = "localhost") -> str:
    step = {"name": f"step {HOSTILE}", "action": "noop", "target": target}
    if command is not None:
        step = {**step, "action": "shell", "action_class": action_class, "params": {"command": command}}
    return json.dumps({"name": f"plan {HOSTILE}", "description": f"says {HOSTILE}", "steps": [step]})


def _markdown_bodies(at: AppTest) -> list[str]:
    """The raw markdown of every element and label Streamlit renders as markdown."""
    bodies = [e.value for kind in MARKDOWN_KINDS for e in getattr(at, kind)]
    bodies += [e.label for e in at.expander] + [b.label for b in at.button] + [t.label for t in at.tabs]
    bodies += [m.label for m in at.metric] + [str(m.value) for m in at.metric]
    return bodies


def assert_shown_literally(at: AppTest, text: str = HOSTILE) -> None:
    """``text`` appears on the page, and every markdown element that shows it renders it as plain text."""
    assert not at.exception
    assert text in texts(at) + "\n".join(str(t.value) for t in at.text)
    for body in _markdown_bodies(at):
        assert text not in body, f"unescaped user text in a markdown element: {body!r}"
        rendered = MARKDOWN.render(body)
        assert "<img" not in rendered and "<a " not in rendered, rendered
        if text in shown(body):
            assert html.escape(text, quote=False) in rendered, rendered  # the literal text, nothing made of it


def test_the_execution_detail_shows_names_description_and_steps_as_text(console: OpenConsole) -> None:
    view = core.submit(core.principal("alice", "demo"), _plan()).execution
    at = console("alice", page="ui/pages/executions.py")
    at.selectbox(key=state.EXECUTION_PICK).select(view.execution_id).run()
    assert_shown_literally(at)
    assert f"says {HOSTILE}" in [t.value for t in at.text]  # the description: st.text, no markdown at all
    assert any(f"step {HOSTILE}" in shown(e.label) for e in at.expander)  # the step's label, escaped
    assert any(f"plan {HOSTILE}" in shown(s.value) for s in at.subheader)


def test_the_approval_review_shows_the_requesters_text_as_text(console: OpenConsole) -> None:
    view = core.submit(core.principal("alice", "demo"), _plan(action_class="modify", command=["true"])).execution
    assert view.status == "pending_approval"
    at = console("bob", page="ui/pages/approvals.py")
    at.selectbox(key=state.APPROVAL_PICK).select(view.execution_id).run()
    assert_shown_literally(at)
    assert f"says {HOSTILE}" in [t.value for t in at.text]
    assert not any("<strong>Approval level" in MARKDOWN.render(body) for body in _markdown_bodies(at))


def test_a_runbook_shows_its_description_as_text_and_the_derived_level(console: OpenConsole) -> None:
    """The description claims level 0; the page shows the level its `rm` step derives."""
    rm = _plan(action_class="modify", command=["rm", "-rf", "/tmp/opsc-plain-x"])
    core.save_runbook(core.principal("alice", "demo"), "cleanup", rm, description=HOSTILE)
    at = console("admin", page="ui/pages/submit.py")
    at.selectbox(key=state.RUNBOOK_PICK).select("cleanup").run()
    assert_shown_literally(at)
    assert f"Description (the author's words): {HOSTILE}" in [t.value for t in at.text]
    assert any(shown(c.value).startswith("Level 1 (modify), derived by the server") for c in at.caption)
    assert {m.label: m.value for m in at.metric}["Approval level"] == "1"  # the preview of the loaded plan
    assert "level 1 (modify)" in at.selectbox(key=state.RUNBOOK_PICK).format_func("cleanup")


def test_an_error_quoting_user_input_is_shown_as_text(console: OpenConsole) -> None:
    """core's message names the unknown asset as typed; the page escapes it at the one seam (feedback)."""
    at = console("alice", page="ui/pages/submit.py")
    at.text_area(key=state.PLAN_TEXT).input(_plan(target=HOSTILE)).run()
    assert at.error
    assert_shown_literally(at)


def test_the_dlq_lists_hostile_names_and_notes_as_text(console: OpenConsole) -> None:
    failing = _plan(action_class="modify", command=["false"])
    execution_id = core.submit(core.principal("alice", "demo"), failing).execution.execution_id
    core.approve(core.principal("bob", "demo"), execution_id)
    drive(execution_id)
    at = console("alice", page="ui/pages/dlq.py")
    assert at.dataframe[0].value["execution_name"].tolist() == [f"plan {HOSTILE}"]  # a cell: text, not markdown
    labels = at.multiselect(key=state.DLQ_PICK)
    assert labels.format_func(execution_id).startswith(f"plan {HOSTILE} · ")  # options are not markdown
    assert_shown_literally(at)
    core.discard(core.principal("admin", "demo"), execution_id, comment=HOSTILE)
    at = console("admin", page="ui/pages/dlq.py")
    at.toggle(key=state.DLQ_SHOW_RESOLVED).set_value(True).run()
    assert at.dataframe[0].value["comment"].tolist() == [HOSTILE]  # the DLQ note, as typed
    assert_shown_literally(at)


def test_the_approval_review_shows_no_fake_lines_and_no_reordered_text() -> None:
    """A step name with line breaks cannot pass for params or a dry run in the review block, and a bidi
    override in a command (``rm`` shown as ``mr``) is shown escaped, as the CLI shows it."""
    from ui.components.plain import visible
    from ui.components.plan_review import steps_text

    step = core.StepView(
        index=0, name='df\n   params   {"command": ["df"]}', action="shell", target="localhost",
        action_class="modify", status="pending", attempts=0, timeout_s=None, started_at=None, finished_at=None,
        output=None, error=None, params={"command": ["sh", "-c", "echo \u202e fr- mr"]}, dry_run="",
    )  # fmt: skip
    text = steps_text([step])
    assert len(text.splitlines()) == 2 and "\u202e" not in text and "\\u202e" in text
    assert visible("a\u2066b\nc") == "a\\u2066b\nc" and visible("a\nb", one_line=True) == "a\\nb"

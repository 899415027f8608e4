"""The console and change windows: an admin edits the tenant's windows on the Admin page (an error names its path),
and the detail of a held execution says until when it waits."""

from __future__ import annotations

from datetime import timedelta

import core
from core.engine.steps import Outcome
from db.clock import utcnow
from tests.ui.conftest import MODIFY_PLAN, OpenConsole, button, shown, submit, texts
from ui import state

ADMIN_PAGE = "ui/pages/admin.py"
EXECUTIONS_PAGE = "ui/pages/executions.py"
KEY = state.ADMIN_WINDOWS_FIELD


def test_an_admin_sets_the_change_windows_and_a_bad_time_names_its_path(console: OpenConsole) -> None:
    """A bad start time is refused with ``windows[0].start``; the fixed rules are saved with the chosen mode."""
    at = console("admin", page=ADMIN_PAGE)
    assert "No change windows" in texts(at)
    bad = 'windows:\n  - {days: [mon..fri], start: "10pm", end: "04:00", tz: Europe/Paris}\n'
    at.text_area(key=f"{KEY}.rules").set_value(bad)
    button(at, "Save change windows").click().run()
    assert not at.exception and any("windows[0].start: must be HH:MM" in shown(e.value) for e in at.error)
    assert core.get_change_windows(core.principal("admin", "demo")).windows == []
    at.text_area(key=f"{KEY}.rules").set_value(bad.replace("10pm", "22:00"))
    at.radio(key=f"{KEY}.mode").set_value("refuse")
    button(at, "Save change windows").click().run()
    assert not at.exception and not at.error
    saved = core.get_change_windows(core.principal("admin", "demo"))
    assert saved.mode == "refuse" and saved.windows[0]["start"] == "22:00" and saved.windows[0]["tz"] == "Europe/Paris"


def test_the_detail_of_a_held_execution_shows_the_wait(console: OpenConsole) -> None:
    """A queued modify plan outside its window: the detail says "Waiting for change window until T"."""
    admin = core.principal("admin", "demo")
    later = utcnow() + timedelta(hours=2)
    core.set_change_windows(
        admin, {"windows": [{"from": later.isoformat(), "to": (later + timedelta(hours=1)).isoformat()}]}
    )
    held = submit("alice", "rotate-logs", MODIFY_PLAN)
    core.approve(core.principal("bob", "demo"), held.execution_id)
    assert core.engine.process(held.execution_id, worker_id="ui-test") is Outcome.NOOP
    at = console("dave", page=EXECUTIONS_PAGE)
    at.selectbox(key=state.EXECUTION_PICK).select(held.execution_id).run()
    assert not at.exception
    assert any(
        i.value.startswith("Waiting for change window until " + later.strftime("%Y-%m-%dT%H:%M:%SZ")) for i in at.info
    ), [i.value for i in at.info]

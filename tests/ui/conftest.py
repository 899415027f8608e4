"""AppTest helpers: open the console as a given user on a given page, against the ``sqlite_db`` demo data."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest
from streamlit.testing.v1.element_tree import Button

import core
from ui import state

APP = Path(__file__).resolve().parents[2] / "streamlit_app.py"

READ_PLAN = """
name: {name}
steps:
  - name: df
    action: shell
    target: localhost
    params: {{command: "df -h"}}
"""
MODIFY_PLAN = """
name: {name}
steps:
  - name: rotate
    action: shell
    target: localhost
    action_class: modify
    params: {{command: "true"}}
"""

OpenConsole = Callable[..., AppTest]


@pytest.fixture(autouse=True)
def no_console_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    """The app under AppTest runs in the test process: keep worker threads out of it (tests drive work)."""
    monkeypatch.setenv("OPSC_CONSOLE_WORKER", "0")
    core.get_settings.cache_clear()


# A ceiling on one script run, not a speed claim: a loaded CI machine can take many seconds for the first run's
# imports, and a run that really hangs still fails.
APP_TIMEOUT_S = 180


@pytest.fixture
def console(sqlite_db: str) -> OpenConsole:
    """Open the console, optionally signed in as ``username`` (in ``tenant``) and switched to ``page``."""

    def open_console(username: str | None = None, tenant: str = "demo", page: str | None = None) -> AppTest:
        at = AppTest.from_file(str(APP), default_timeout=APP_TIMEOUT_S)
        if username is not None:
            at.session_state[state.PRINCIPAL] = core.principal(username, tenant)
        at.run()
        if page is not None:
            at.switch_page(page).run()
        assert not at.exception
        return at

    return open_console


def button(at: AppTest, label: str) -> Button:
    """The one button labelled ``label``."""
    matches = [b for b in at.button if b.label == label]
    assert len(matches) == 1, f"{len(matches)} buttons labelled {label!r}: {[b.label for b in at.button]}"
    return matches[0]


MARKDOWN_KINDS = ("title", "subheader", "markdown", "caption", "success", "info", "warning", "error")
_ESCAPED = re.compile(r"\\([!-/:-@\[-`{-~])")


def shown(markdown: str) -> str:
    """What a markdown body reads as on screen once its backslash escapes and hard line breaks are resolved
    (the console escapes user text: ui/components/plain.py)."""
    return _ESCAPED.sub(r"\1", markdown).replace("  \n", "\n")


def texts(at: AppTest) -> str:
    """Everything the page shows as text (markdown, captions, alerts, text, code, tables), for "never shown"
    checks."""
    parts = [shown(e.value) for kind in MARKDOWN_KINDS for e in getattr(at, kind)]
    parts += [e.value for kind in ("text", "code") for e in getattr(at, kind)]
    parts += [frame.value.to_csv() for frame in at.dataframe]
    parts += [str(m.value) for m in at.metric]
    return "\n".join(str(p) for p in parts)


def submit(username: str, name: str, plan: str = READ_PLAN, tenant: str = "demo") -> core.ExecutionView:
    """Submit a plan through core (setup for page tests)."""
    return core.submit(core.principal(username, tenant), plan.format(name=name)).execution

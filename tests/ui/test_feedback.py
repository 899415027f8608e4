"""Errors reach the page as messages: CoreError as is, anything else as a reference id (logged), never a traceback."""

from __future__ import annotations

import logging

import pytest

import core
from tests.ui.conftest import OpenConsole, shown

PAGE = "ui/pages/executions.py"


def test_unexpected_error_shows_a_reference_and_logs_the_traceback(
    console: OpenConsole, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("database exploded at /secret/path")

    at = console("alice", page=PAGE)
    monkeypatch.setattr(core, "list_executions_page", broken)
    with caplog.at_level(logging.ERROR, logger="ui.components.feedback"):
        at.run()
    assert not at.exception
    [error] = [shown(e.value) for e in at.error]
    assert error.startswith("Something went wrong (ref ")
    assert "exploded" not in error
    ref = error.split("(ref ")[1][:8]
    assert any(ref in r.getMessage() and (r.exc_info or r.exc_text) for r in caplog.records)  # masked traceback


def test_core_error_is_shown_as_its_message(console: OpenConsole) -> None:
    """A principal whose role was removed after sign-in sees core's PermissionDenied, not a crash."""
    at = console("dave", page=PAGE)
    core.remove_member(core.principal("admin", "demo"), "dave")
    at.run()
    assert not at.exception
    assert any("dave" in shown(e.value) and "may not read" in shown(e.value) for e in at.error)

"""The Admin page's Notifications tab: adding a webhook shows the signing secret once and the URL by its host only;
an email channel; a test send; removal. Receivers are real (loopback HTTP, aiosmtpd)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import core
from db.settings import get_settings
from tests.notify_support import Mailbox, Receiver, receiving, smtp_server
from tests.ui.conftest import OpenConsole, button, texts
from ui import state

PAGE = "ui/pages/admin.py"
KEY = state.ADMIN_NOTIFY_FIELD


@pytest.fixture
def mailbox() -> Iterator[tuple[Mailbox, int]]:
    with smtp_server() as served:
        yield served


@pytest.fixture
def local(monkeypatch: pytest.MonkeyPatch, mailbox: tuple[Mailbox, int]) -> Iterator[Mailbox]:
    monkeypatch.setenv("OPSC_NOTIFY_ALLOW_LOCAL", "1")
    monkeypatch.setenv("OPSC_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("OPSC_SMTP_PORT", str(mailbox[1]))
    get_settings.cache_clear()
    yield mailbox[0]
    get_settings.cache_clear()


def test_an_admin_adds_a_webhook_sees_the_secret_once_tests_and_removes_it(
    console: OpenConsole, local: Mailbox
) -> None:
    with receiving(Receiver()) as receiver:
        at = console("admin", page=PAGE)
        at.text_input(key=f"{KEY}.target").set_value(receiver.url)
        button(at, "Add channel").click().run()
        assert not at.exception and not at.error
        [secret] = [c.value for c in at.code if c.value.startswith("whsec_")]
        assert "T0KEN" not in texts(at)  # the URL's path (its token) is never shown
        at.run()  # the next run: the secret is gone for good
        assert secret not in texts(at)
        [channel] = core.list_channels(core.principal("admin", "demo"))
        assert channel.kind == "webhook" and channel.events == ["approval_waiting", "dlq"]
        button(at, "Send a test").click().run()
        assert not at.error and any("Delivered" in s.value for s in at.success)
        assert len(receiver.requests) == 1
        button(at, "Remove channel").click().run()
        assert core.list_channels(core.principal("admin", "demo")) == []


def test_an_email_channel_and_a_refused_address(console: OpenConsole, local: Mailbox) -> None:
    at = console("admin", page=PAGE)
    at.selectbox(key=f"{KEY}.kind").select("email")
    at.text_input(key=f"{KEY}.target").set_value("not an address")
    button(at, "Add channel").click().run()
    assert at.error and core.list_channels(core.principal("admin", "demo")) == []
    at.selectbox(key=f"{KEY}.kind").select("email")
    at.text_input(key=f"{KEY}.target").set_value("ops@example.test")
    button(at, "Add channel").click().run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    [channel] = core.list_channels(core.principal("admin", "demo"))
    assert channel.target == "ops@example.test"

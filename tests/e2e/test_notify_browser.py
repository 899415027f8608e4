"""Issue 16 item 3 in a real browser (Debian's Chromium, Playwright) against `opsconductor up --demo`: alice
submits a runbook that needs approval; the console's embedded worker sends the tenant's webhook (a real HTTP
receiver) and email (a real SMTP server, aiosmtpd); the link they carry, opened signed out, shows the sign-in
form and then that approval, ready to approve."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from email import message_from_bytes
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.test_browser import (
    CHROMIUM,
    FLAGS,
    ROOT,
    TIMEOUT_MS,
    VIEWPORT,
    playwright,
    session_cookie,
    sign_in_as,
    submit_runbook,
)
from tests.notify_support import Mailbox, Receiver, free_port, receiving, smtp_server

pytestmark = pytest.mark.e2e


def _until(done: Callable[[], bool], timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while not done():
        assert time.monotonic() < deadline, "not delivered in time"
        time.sleep(0.05)


@pytest.fixture
def mailbox() -> Iterator[tuple[Mailbox, int]]:
    with smtp_server() as served:
        yield served


@pytest.fixture
def console(tmp_path: Path, mailbox: tuple[Mailbox, int]) -> Iterator[tuple[str, dict[str, str]]]:
    """`opsconductor up --demo` (embedded worker) whose notifications may reach loopback and the local SMTP
    server, linking to itself; yields its URL and the environment a CLI on the same database uses."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if k not in {"OPSC_REDIS_URL", "OPSC_SECRET_KEY"}}
    env |= {
        "OPSC_DATABASE_URL": f"sqlite:///{tmp_path / 'opsc.db'}",
        "OPSC_CONSOLE_WORKER": "1",
        "OPSC_NOTIFY_ALLOW_LOCAL": "1",
        "OPSC_SMTP_HOST": "127.0.0.1",
        "OPSC_SMTP_PORT": str(mailbox[1]),
        "OPSC_CONSOLE_URL": url,
    }
    log = open(tmp_path / "console.log", "wb")  # noqa: SIM115  closed below
    proc = subprocess.Popen(
        [sys.executable, "-m", "ui.cli", "up", "--demo", "--port", str(port)],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{url}/_stcore/health", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError((tmp_path / "console.log").read_text())
        time.sleep(0.3)
    yield url, env
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


def _cli(env: dict[str, str], *args: str) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "ui.cli", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_the_approval_notification_reaches_webhook_and_email_and_its_link_opens_the_approval(
    console: tuple[str, dict[str, str]],
    mailbox: tuple[Mailbox, int],
    tmp_path: Path,
) -> None:
    url, env = console
    box = mailbox[0]
    with receiving(Receiver()) as receiver:
        _cli(env, "notify", "add-webhook", receiver.url, "--as", "admin", "--tenant", "demo")
        _cli(env, "notify", "add-email", "approvers@example.test", "--as", "admin", "--tenant", "demo")
        with playwright.sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
            page: Any = browser.new_context(viewport=VIEWPORT).new_page()
            page.set_default_timeout(TIMEOUT_MS)
            page.goto(url)
            execution_id = submit_runbook(page, "Log rotation", "log-rotation")
            _until(lambda: len(receiver.requests) == 1 and len(box.messages) == 1)
            body = receiver.requests[0].json
            link = f"{url}/approvals?execution={execution_id}"
            assert body["event"] == "approval_waiting" and body["link"] == link
            mail = message_from_bytes(box.messages[0][1])
            assert link in mail.get_payload(decode=True).decode()  # type: ignore[union-attr]
            # The link, opened signed out: the sign-in form in place, then that approval, ready to decide. First
            # the sign-out must have dropped the cookie (a background fetch a navigation would cut short: a
            # cookie left naming the ended session makes the sign-in page refuse the next demo sign-in).
            page.get_by_role("heading", name="Sign in").wait_for()
            _until(lambda: session_cookie(page) is None)
            page.goto(link)
            page.get_by_role("heading", name="Sign in").wait_for()
            sign_in_as(page, "bob · approver")
            page.get_by_text(execution_id).first.wait_for()
            page.get_by_role("button", name="Approve", exact=True).wait_for()
            assert re.search(rf"execution={execution_id}", page.url), page.url
            page.screenshot(path=str(tmp_path / "notified-approval.png"), full_page=True)
            browser.close()

"""``opsconductor notify``: add a webhook and an email address, list them (the URL as its host only), test, opt in,
rotate the signing secret; refusals exit with the contract's codes and a clear line, never a traceback."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest

from core.notify.delivery import deliver_due
from db.settings import get_settings
from tests.cli.support import Cli, PlanFile, ok_json
from tests.factories import noop_plan
from tests.notify_support import Mailbox, Receiver, receiving, smtp_server

ADMIN = ("--as", "admin", "--tenant", "demo")


@pytest.fixture
def mailbox() -> Iterator[tuple[Mailbox, int]]:
    with smtp_server() as served:
        yield served


@pytest.fixture
def local_receivers(monkeypatch: pytest.MonkeyPatch, mailbox: tuple[Mailbox, int]) -> Iterator[Mailbox]:
    monkeypatch.setenv("OPSC_NOTIFY_ALLOW_LOCAL", "1")  # the receiver is on loopback: allowed explicitly
    monkeypatch.setenv("OPSC_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("OPSC_SMTP_PORT", str(mailbox[1]))
    get_settings.cache_clear()
    yield mailbox[0]
    get_settings.cache_clear()


def test_notify_add_list_test_and_rotate(db: str, cli: Cli, local_receivers: Mailbox) -> None:
    with receiving(Receiver()) as receiver:
        added = cli("notify", "add-webhook", receiver.url, "--format", "slack", *ADMIN)
        assert added.exit_code == 0, added.stderr
        secret = added.stdout.strip().splitlines()[-1]
        assert secret.startswith("whsec_") and "shown this once" in added.stderr
        assert "T0KEN" not in added.output  # the URL's path (its token) is never printed
        again = cli("notify", "add-webhook", receiver.url, *ADMIN)
        assert again.exit_code == 0 and "whsec_" not in again.output  # the secret exists: not shown again
        email = ok_json(cli("notify", "add-email", "ops@example.test", "--events", "dlq", *ADMIN, "--json"))
        assert email["events"] == ["dlq"] and email["target"] == "ops@example.test"
        listed = cli("notify", "list", *ADMIN)
        assert listed.exit_code == 0 and "T0KEN" not in listed.output and "127.0.0.1" in listed.stdout
        channels = ok_json(cli("notify", "list", *ADMIN, "--json"))["channels"]
        webhook = next(c for c in channels if c["format"] == "slack")
        tested = cli("notify", "test", webhook["id"][:8], *ADMIN)
        assert tested.exit_code == 0, tested.output
        assert "delivered" in tested.stdout and len(receiver.requests) == 1
        assert set(json.loads(receiver.requests[0].body)) == {"text"}
    assert cli("notify", "test", email["id"], *ADMIN).exit_code == 0 and len(local_receivers.messages) == 1
    rotated = cli("notify", "rotate-secret", *ADMIN)
    assert rotated.exit_code == 0 and rotated.stdout.strip().startswith("whsec_") and rotated.stdout.strip() != secret
    removed = cli("notify", "remove", webhook["id"], *ADMIN)
    assert removed.exit_code == 0 and webhook["id"] not in cli("notify", "list", *ADMIN).stdout


def test_notify_refusals_are_clear_and_use_the_exit_codes(db: str, cli: Cli) -> None:
    refused = cli("notify", "add-webhook", "http://169.254.169.254/latest/meta-data", *ADMIN)
    assert refused.exit_code == 3 and "link-local" in refused.stderr and "Traceback" not in refused.output
    assert cli("notify", "add-webhook", "ftp://example.com/x", *ADMIN).exit_code == 2
    bad_event = cli("notify", "add-email", "ops@example.test", "--events", "everything", *ADMIN)
    assert bad_event.exit_code == 2 and "events" in bad_event.stderr
    assert cli("notify", "add-email", "not-an-address", *ADMIN).exit_code == 2
    assert cli("notify", "add-email", "ops@example.test", "--as", "alice").exit_code == 3  # operators: no
    mine = ok_json(cli("notify", "subscribe", "alice@example.test", "--as", "alice", "--json"))
    assert mine["owner"] == "alice" and mine["events"] == ["finished"]
    assert [c["id"] for c in ok_json(cli("notify", "list", "--as", "alice", "--json"))["channels"]] == [mine["id"]]
    assert cli("notify", "remove", mine["id"], "--as", "dave").exit_code == 4  # not dave's
    assert cli("notify", "remove", mine["id"], "--as", "alice").exit_code == 0


def test_submit_notify_on_finish_emails_the_requester_who_asked(
    db: str, cli: Cli, plan_file: PlanFile, local_receivers: Mailbox
) -> None:
    """``notify subscribe --only-when-asked`` then ``submit --notify-on-finish``: that end is emailed, not another."""
    refused = cli("submit", plan_file(noop_plan("asked")), "--as", "alice", "--notify-on-finish")
    assert refused.exit_code == 2 and "notify subscribe" in refused.stderr  # nowhere to tell: said, not submitted
    channel = ok_json(cli("notify", "subscribe", "alice@example.test", "--only-when-asked", "--as", "alice", "--json"))
    assert channel["only_when_asked"] is True
    asked = ok_json(cli("submit", plan_file(noop_plan("asked")), "--as", "alice", "--notify-on-finish", "--json"))
    quiet = ok_json(cli("submit", plan_file(noop_plan("quiet")), "--as", "alice", "--json"))
    assert asked["status"] == quiet["status"] == "completed"
    deadline = time.monotonic() + 15
    while not local_receivers.messages:
        assert time.monotonic() < deadline, "no email"
        if deliver_due() == 0:
            time.sleep(0.02)
    while deliver_due():
        pass  # anything else due would be the quiet one's
    assert len(local_receivers.messages) == 1
    to, raw = local_receivers.messages[0]
    assert to == ["alice@example.test"] and b"Finished: asked (demo)" in raw

"""Notifications (issue 16 item 3) against a real local HTTP receiver and a real local SMTP server (aiosmtpd), on
SQLite and PostgreSQL: an approval waiting, a DLQ entry and a finish reach the tenant's webhook and email with a
deep link, signed; retries after a receiver comes back; a 4xx is not retried, a 5xx only a bounded number of
times; no secret value or step output in any payload; a tenant's webhook never hears of another tenant."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from email import message_from_bytes

import pytest
from sqlalchemy import update
from sqlmodel import select

from core import (
    CheckItem,
    InvalidInput,
    SafetyRefused,
    add_email,
    add_webhook,
    approve,
    check_readiness,
    get_execution,
    list_channels,
    list_events,
    principal,
    prune,
    remove_channel,
    set_secret,
    submit,
    subscribe_email,
)
from core import (
    test_channel as send_test,
)
from core.errors import NotFound
from core.notify.delivery import deliver_due
from db.clock import utcnow
from db.engine import session_scope
from db.settings import get_settings
from db.tables import AdminEvent, Execution, ExecutionEvent, Notification
from tests.engine_support import drive
from tests.factories import noop_plan
from tests.notify_support import Mailbox, Received, Receiver, free_port, receiving, smtp_server

CONSOLE = "http://console.example.test:8501"


@pytest.fixture
def mailbox() -> Iterator[tuple[Mailbox, int]]:
    with smtp_server() as served:
        yield served


@pytest.fixture
def notify_env(monkeypatch: pytest.MonkeyPatch, mailbox: tuple[Mailbox, int]) -> Iterator[Mailbox]:
    """Loopback receivers allowed (explicitly), small backoffs, 3 attempts, the local SMTP server, a console URL."""
    for name, value in {
        "OPSC_NOTIFY_ALLOW_LOCAL": "1",
        "OPSC_NOTIFY_BACKOFF_S": "0.05",
        "OPSC_NOTIFY_BACKOFF_MAX_S": "0.2",
        "OPSC_NOTIFY_MAX_ATTEMPTS": "3",
        "OPSC_NOTIFY_TIMEOUT_S": "2",
        "OPSC_SMTP_HOST": "127.0.0.1",
        "OPSC_SMTP_PORT": str(mailbox[1]),
        "OPSC_CONSOLE_URL": CONSOLE,
    }.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    yield mailbox[0]
    get_settings.cache_clear()


def deliver_until(done: Callable[[], bool], timeout_s: float = 15) -> None:
    """Run delivery passes until ``done`` (retries come due after their backoff) or fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not done():
        assert time.monotonic() < deadline, "the notifications did not arrive in time"
        if deliver_due() == 0:
            time.sleep(0.02)  # nothing due yet: a retry waits out its backoff


def rows() -> list[Notification]:
    with session_scope() as session:
        return list(session.exec(select(Notification).order_by(Notification.created_at, Notification.id)).all())


def settled() -> bool:
    return all(n.status != "pending" for n in rows())


def verify(received: Received, secret: str) -> bool:
    """What a receiver does (docs/operations.md): HMAC-SHA256 over "<timestamp>.<body>", compared in constant time."""
    timestamp = received.headers["X-OpsConductor-Timestamp"]
    expected = (
        "sha256=" + hmac.new(secret.encode(), timestamp.encode() + b"." + received.body, hashlib.sha256).hexdigest()
    )
    return hmac.compare_digest(expected, received.headers["X-OpsConductor-Signature"])


def test_an_approval_waiting_sends_one_signed_webhook_and_one_email_with_a_working_link(
    db: str, notify_env: Mailbox
) -> None:
    admin, alice = principal("admin", "demo"), principal("alice", "demo")
    with receiving(Receiver()) as receiver:
        channel, signing_secret = add_webhook(admin, receiver.url)
        assert signing_secret and signing_secret.startswith("whsec_")
        add_email(admin, "approvers@example.test")
        execution = submit(alice, noop_plan("needs-eyes", level=1), background=True).execution
        assert execution.status == "pending_approval"
        deliver_until(settled)
        assert len(receiver.requests) == 1
        [hit] = receiver.requests
    body = hit.json
    link = f"{CONSOLE}/approvals?execution={execution.execution_id}"
    assert body["event"] == "approval_waiting" and body["link"] == link
    assert body["execution"] == {
        "id": execution.execution_id,
        "name": "needs-eyes",
        "status": "pending_approval",
        "requested_by": "alice",
    }
    assert body["tenant"] == "demo" and body["actor"] == "alice"
    assert hit.headers["X-OpsConductor-Event"] == "approval_waiting"
    assert verify(hit, signing_secret)
    assert not verify(Received(hit.path, hit.headers, hit.body + b" "), signing_secret)  # a changed body fails
    # The link opens that execution (the id in it is the execution's, readable by an approver of the tenant).
    linked_id = link.rsplit("=", 1)[1]
    assert get_execution(principal("bob", "demo"), linked_id).status == "pending_approval"
    [(to, raw)] = notify_env.messages
    mail = message_from_bytes(raw)
    assert to == ["approvers@example.test"]
    assert "Approval waiting: needs-eyes (demo)" in mail["Subject"]
    assert link in mail.get_payload(decode=True).decode()  # type: ignore[union-attr]
    assert [n.status for n in rows()] == ["delivered", "delivered"] and all(n.attempts == 1 for n in rows())
    # Every attempt is on the execution's audited trail, the URL only as its hint.
    trail = [e for e in list_events(alice, execution.execution_id) if e.kind == "notification"]
    assert len(trail) == 2 and all("delivered" in e.message for e in trail)
    assert not any("T0KEN" in e.message for e in trail)
    assert channel.target.startswith("http://127.0.0.1:") and "T0KEN" not in channel.target


def test_a_receiver_down_then_up_gets_it_after_a_retry(db: str, notify_env: Mailbox) -> None:
    port = free_port()  # nothing listens here yet: the first attempt is refused
    receiver = Receiver()
    add_webhook(principal("admin", "demo"), f"http://127.0.0.1:{port}/down-then-up")
    execution = submit(principal("alice", "demo"), noop_plan("later", level=1), background=True).execution
    deliver_due()
    [first] = rows()
    assert first.status == "pending" and first.attempts == 1 and "could not connect" in (first.last_error or "")
    with receiving(receiver, port):
        deliver_until(lambda: bool(receiver.requests) and settled())
    [row] = rows()
    assert row.status == "delivered" and row.attempts == 2 and len(receiver.requests) == 1
    assert receiver.requests[0].json["execution"]["id"] == execution.execution_id
    outcomes = [e.data.get("outcome") for e in list_events(principal("alice", "demo"), execution.execution_id)
                if e.kind == "notification"]  # fmt: skip
    assert outcomes == ["retry", "delivered"]


def test_a_4xx_is_not_retried_and_a_5xx_stops_after_the_bounded_attempts(db: str, notify_env: Mailbox) -> None:
    admin = principal("admin", "demo")
    with receiving(Receiver(statuses=[404] * 10)) as gone, receiving(Receiver(statuses=[503] * 10)) as sick:
        add_webhook(admin, gone.url)
        add_webhook(admin, sick.url)
        submit(principal("alice", "demo"), noop_plan("nobody-home", level=1), background=True)
        deliver_until(settled)
        assert deliver_due() == 0  # nothing left to try
        assert len(gone.requests) == 1  # 404: the same answer next time, so no next time
        assert len(sick.requests) == 3  # OPSC_NOTIFY_MAX_ATTEMPTS
    by_status = {n.last_error: (n.status, n.attempts) for n in rows()}
    assert by_status == {"HTTP 404: not retried": ("failed", 1), "HTTP 503": ("failed", 3)}


def test_no_secret_value_or_step_output_in_any_payload(db: str, notify_env: Mailbox) -> None:
    """A plan using a secret, printing it and a marker, failing into the DLQ: approval, DLQ and finish
    notifications (webhook JSON, Slack and email) carry neither the value, the output, nor the parameters."""
    canary, marker = "cAnArY-" + secrets.token_hex(8), "OUTPUT-" + secrets.token_hex(6)
    admin, alice = principal("admin", "demo"), principal("alice", "demo")
    set_secret(admin, "canary", canary)
    with receiving(Receiver()) as plain, receiving(Receiver()) as slack:
        add_webhook(admin, plain.url, events=["approval_waiting", "dlq", "finished"])
        add_webhook(admin, slack.url, fmt="slack", events=["approval_waiting", "dlq", "finished"])
        subscribe_email(alice, "alice@example.test")  # alice's own opt-in: her executions' ends
        plan = (
            "name: leaky\nsteps:\n"
            "  - {name: show, action: shell, target: localhost, params: {command: [printenv, T], env: {T: '{{ secret:canary }}'}}}\n"
            f"  - {{name: fail, action: shell, target: localhost, params: {{command: [sh, -c, 'echo {marker}; echo {marker} >&2; exit 3']}}}}\n"
        )  # fmt: skip
        execution_id = submit(alice, plan, background=True).execution.execution_id
        approve(principal("bob", "demo"), execution_id)
        drive(execution_id)
        view = get_execution(alice, execution_id)
        assert view.status == "failed" and marker in (view.steps[1].output or "")  # the output exists ...
        deliver_until(settled)
        bodies = [r.body.decode() for r in plain.requests + slack.requests]
    mails = [raw.decode() for _, raw in notify_env.messages]
    assert sorted(json.loads(b)["event"] for b in bodies if b.startswith('{"actor"')) == [
        "approval_waiting",
        "dlq",
        "finished",
    ]
    assert len(slack.requests) == 3 and all(set(json.loads(r.body)) == {"text"} for r in slack.requests)
    assert len(mails) == 1 and "Finished: leaky (demo)" in mails[0]
    for text in bodies + mails:  # ... but reaches no receiver, nor the secret, nor the parameters
        assert canary not in text and marker not in text
        assert "printenv" not in text and "secret:" not in text and "exit 3" not in text
    assert all(n.status == "delivered" for n in rows())


def test_a_tenants_webhook_never_gets_another_tenants_events(db: str, notify_env: Mailbox) -> None:
    demo_admin = principal("admin", "demo")
    with receiving(Receiver()) as demo_hook, receiving(Receiver()) as globex_hook:
        add_webhook(demo_admin, demo_hook.url)
        mallory = principal("mallory", "globex")
        globex_channel, _ = add_webhook(principal("admin", "globex"), globex_hook.url)
        ours = submit(principal("alice", "demo"), noop_plan("ours", level=1), background=True).execution
        theirs = submit(mallory, noop_plan("theirs", level=1), background=True).execution
        deliver_until(settled)
        assert [r.json["execution"]["id"] for r in demo_hook.requests] == [ours.execution_id]
        assert [r.json["execution"]["id"] for r in globex_hook.requests] == [theirs.execution_id]
    # Nor can one tenant's admin see or remove the other's channel.
    assert globex_channel.id not in {c.id for c in list_channels(demo_admin)}
    with pytest.raises(NotFound):
        remove_channel(demo_admin, globex_channel.id)


def test_loopback_link_local_and_metadata_webhooks_are_refused_unless_allowed(
    db: str, notify_env: Mailbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    admin = principal("admin", "demo")
    with receiving(Receiver()) as receiver:
        channel, _ = add_webhook(admin, receiver.url)  # allowed: OPSC_NOTIFY_ALLOW_LOCAL=1
        monkeypatch.setenv("OPSC_NOTIFY_ALLOW_LOCAL", "0")
        get_settings.cache_clear()
        for url in ("http://127.0.0.1:9/x", "http://localhost/x", "http://169.254.169.254/latest/meta-data",
                    "http://[::1]/x", "http://0.0.0.0/x"):  # fmt: skip
            with pytest.raises(SafetyRefused) as refused:
                add_webhook(admin, url)
            assert refused.value.reason == "notify_target_refused"
        # Stored while allowed, refused at delivery now: checked again before every send, and nothing is sent.
        submit(principal("alice", "demo"), noop_plan("ssrf", level=1), background=True)
        deliver_until(settled)
        assert receiver.requests == []
        [row] = rows()
        assert row.status == "failed" and "loopback" in (row.last_error or "")
        assert send_test(admin, channel.id).delivered is False


def test_notify_test_reaches_the_channel_and_is_on_the_admin_trail(db: str, notify_env: Mailbox) -> None:
    admin = principal("admin", "demo")
    with receiving(Receiver()) as receiver:
        channel, secret = add_webhook(admin, receiver.url, fmt="json")
        result = send_test(admin, channel.id)
        assert result.delivered and len(receiver.requests) == 1
        assert receiver.requests[0].json["event"] == "test" and verify(receiver.requests[0], secret or "")
    email = add_email(admin, "ops@example.test")
    assert send_test(admin, email.id).delivered and len(notify_env.messages) == 1
    with session_scope() as session:
        trail = [e.action for e in session.exec(select(AdminEvent)).all()]
        data = " ".join(e.data_json for e in session.exec(select(AdminEvent)).all())
        assert session.exec(select(ExecutionEvent).where(ExecutionEvent.kind == "notification")).first() is None
    assert trail.count("notify_channel_added") == 2 and trail.count("notify_test") == 2
    assert "T0KEN" not in data  # the URL's token never on the trail
    # A viewer or operator manages only their own opt-ins.
    with pytest.raises(Exception, match="admin"):
        add_webhook(principal("alice", "demo"), "http://127.0.0.1:9/x")
    assert list_channels(principal("alice", "demo")) == []


def test_prune_removes_settled_notifications_with_the_events_of_old_executions(db: str, notify_env: Mailbox) -> None:
    admin, alice = principal("admin", "demo"), principal("alice", "demo")
    subscribe_email(alice, "alice@example.test")
    with receiving(Receiver()) as receiver:
        add_webhook(admin, receiver.url, events=["finished"])
        old = submit(alice, noop_plan("old"), background=True).execution.execution_id
        drive(old)
        deliver_until(lambda: len(receiver.requests) == 1 and settled())
    assert len(rows()) == 2 and len(notify_env.messages) == 1  # the webhook's and alice's email
    with session_scope() as session:
        session.execute(update(Execution).where(Execution.id == old).values(finished_at=utcnow() - timedelta(days=40)))  # type: ignore[arg-type]
    assert prune(admin, timedelta(days=30)).executions == 1
    assert rows() == []


def test_the_webhook_url_is_never_logged_in_full(
    db: str, notify_env: Mailbox, caplog: pytest.LogCaptureFixture
) -> None:
    """httpx logs each request's URL at INFO: not a notification's (its path may carry a token)."""
    caplog.set_level(logging.DEBUG)
    with receiving(Receiver(statuses=[503])) as receiver:
        add_webhook(principal("admin", "demo"), receiver.url)
        submit(principal("alice", "demo"), noop_plan("quiet", level=1), background=True)
        deliver_until(settled)
    assert "HTTP Request: POST (a notification webhook) 503" in caplog.text  # the lines are there ...
    assert "T0KEN" not in caplog.text  # ... without the URL


def test_check_is_no_go_while_local_targets_are_allowed_or_delivery_has_stopped(
    db: str, notify_env: Mailbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    def item() -> CheckItem:
        return next(i for i in check_readiness(broker_probe=lambda: "ok") if i.name == "notifications")

    assert not item().ok and "OPSC_NOTIFY_ALLOW_LOCAL" in item().reason  # the fixture allows loopback
    add_webhook(principal("admin", "demo"), "http://127.0.0.1:9/never-delivered")
    monkeypatch.setenv("OPSC_NOTIFY_ALLOW_LOCAL", "0")
    get_settings.cache_clear()
    submit(principal("alice", "demo"), noop_plan("waits", level=1), background=True)
    assert item().ok and "none overdue" in item().reason  # due now: a worker has time to send it
    with session_scope() as session:
        session.execute(update(Notification).values(next_attempt_at=utcnow() - timedelta(minutes=10)))
    assert not item().ok and "1 notifications overdue" in item().reason  # nobody delivered it for 10 minutes


def test_an_opt_in_only_when_asked_hears_of_the_executions_submitted_asking(db: str, notify_env: Mailbox) -> None:
    """Per-submit opt-in (issue 16 item 3): alice's "only when asked" address gets the end of the execution she
    submitted with ``notify_on_finish``, not of the other; bob's address for all his gets neither of hers."""
    alice, bob = principal("alice", "demo"), principal("bob", "demo")
    subscribe_email(alice, "alice@example.test", only_when_asked=True)
    subscribe_email(bob, "bob@example.test")
    asked = submit(alice, noop_plan("asked"), notify_on_finish=True).execution
    quiet = submit(alice, noop_plan("quiet")).execution
    assert asked.status == quiet.status == "completed"  # fast level 0: run in the caller, so they ended
    deliver_until(lambda: len(notify_env.messages) >= 1 and settled())
    mails = [(to, message_from_bytes(raw)) for to, raw in notify_env.messages]
    assert [(to, mail["Subject"]) for to, mail in mails] == [
        (["alice@example.test"], "[OpsConductor] Finished: asked (demo)")
    ]
    assert asked.execution_id in mails[0][1].get_payload()  # its deep link
    assert [c.only_when_asked for c in list_channels(alice)] == [True]


def test_asking_to_be_notified_without_an_address_is_refused(db: str, notify_env: Mailbox) -> None:
    with pytest.raises(InvalidInput) as refused:
        submit(principal("alice", "demo"), noop_plan("asked"), notify_on_finish=True)
    assert refused.value.issues[0][0] == "notify_on_finish" and "subscribe" in str(refused.value)
    assert rows() == []

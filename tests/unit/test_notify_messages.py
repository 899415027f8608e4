"""Notification rules without services: which addresses a webhook may reach (SSRF), what of a URL is shown,
what a message carries, the signature, the deep links."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json

import pytest

from core.errors import InvalidInput, SafetyRefused
from core.notify import messages, targets
from core.notify.messages import Facts

FACTS = Facts(
    delivery_id="d1",
    event="dlq",
    tenant="demo",
    execution_id="e" * 32,
    execution_name="restart-nginx",
    status="failed",
    requested_by="alice",
    actor="worker-1",
    occurred_at="2026-12-03T17:00:00Z",
    link="https://ops.example.com/dlq?execution=" + "e" * 32,
)


@pytest.mark.parametrize(
    ("address", "why"),
    [
        ("127.0.0.1", "loopback"),
        ("127.8.9.10", "loopback"),
        ("::1", "loopback"),
        ("169.254.169.254", "link-local"),
        ("fe80::1", "link-local"),
        ("::ffff:127.0.0.1", "loopback"),  # an IPv4-mapped loopback is still loopback
        ("0.0.0.0", "unspecified"),  # noqa: S104  an address under test, nothing binds it
        ("224.0.0.1", "multicast"),
        ("100.100.100.200", "cloud metadata"),
        ("fd00:ec2::254", "cloud metadata"),
        ("10.1.2.3", None),  # private ranges: in-house receivers live there
        ("192.168.1.10", None),
        ("93.184.215.14", None),
    ],
)
def test_which_addresses_a_webhook_may_reach(address: str, why: str | None) -> None:
    assert targets.refused_because(ipaddress.ip_address(address)) == why


def test_urls_are_checked_and_shown_by_host_only() -> None:
    for bad in ("ftp://example.com/x", "example.com/x", "http:///x", "https://user:pw@example.com/x", ""):
        with pytest.raises(InvalidInput):
            targets.check_url(bad, allow_local=True)
    with pytest.raises(SafetyRefused):
        targets.check_url("http://127.0.0.1:8080/hook", allow_local=False)
    assert targets.check_url(" http://127.0.0.1:8080/hook ", allow_local=True) == "http://127.0.0.1:8080/hook"
    assert targets.hint("https://hooks.slack.com/services/T0/B1/s3cr3t") == "https://hooks.slack.com/…"
    assert targets.hint("http://10.0.0.5:9000/x?token=abc") == "http://10.0.0.5:9000/…"


def test_email_addresses_are_one_plain_address() -> None:
    assert targets.check_email(" ops@example.com ") == "ops@example.com"
    for bad in ("ops", "a@b\r\nBcc: x@y", "Ops <ops@example.com>", "a@b,c@d", "a@b c"):
        with pytest.raises(InvalidInput):
            targets.check_email(bad)


def test_the_json_body_has_only_the_listed_fields() -> None:
    body = json.loads(messages.webhook_body(FACTS, "json"))
    assert set(body) == {"event", "delivery_id", "tenant", "execution", "actor", "occurred_at", "link"}
    assert set(body["execution"]) == {"id", "name", "status", "requested_by"}
    slack = json.loads(messages.webhook_body(FACTS, "slack"))
    assert set(slack) == {"text"} and f"<{FACTS.link}|" in slack["text"] and "restart-nginx" in slack["text"]


def test_the_signature_is_hmac_sha256_of_timestamp_dot_body() -> None:
    body = messages.webhook_body(FACTS, "json")
    expected = hmac.new(b"whsec_k", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert messages.signature("whsec_k", "1700000000", body) == f"sha256={expected}"
    assert messages.signature("whsec_k", "1700000001", body) != f"sha256={expected}"


def test_deep_links_open_the_screen_of_the_event() -> None:
    base = "https://ops.example.com/"
    assert messages.link(base, "approval_waiting", "abc") == "https://ops.example.com/approvals?execution=abc"
    assert messages.link(base, "dlq", "abc") == "https://ops.example.com/dlq?execution=abc"
    assert messages.link(base, "finished", "abc") == "https://ops.example.com/executions?execution=abc"
    assert messages.link(base, "test", None) == "https://ops.example.com/"


def test_the_email_says_what_and_links_it() -> None:
    mail = messages.email_message(FACTS, sender="opsc@example.com", to="ops@example.com")
    assert mail["Subject"] == "[OpsConductor] In the dead-letter queue: restart-nginx (demo)"
    assert FACTS.link in mail.get_content() and "Requested by: alice" in mail.get_content()

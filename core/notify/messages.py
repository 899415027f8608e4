"""What a notification says, and how a receiver checks it came from us.

Built from a fixed set of fields (``Facts``): ids, names, statuses, who, when, and the console link. Nothing
else of the execution is read, so no parameter, secret value or step output can reach a receiver.

Signature: ``X-OpsConductor-Signature: sha256=<hex>`` is HMAC-SHA256 over ``<timestamp>.<body>`` with the
tenant's signing secret, ``<timestamp>`` being the ``X-OpsConductor-Timestamp`` header (Unix seconds), so a
receiver can refuse replays (docs/operations.md "Notifications" has a receiver's check).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from email.message import EmailMessage

from db.enums import ChannelFormat, NotifyEvent

SIGNATURE_HEADER = "X-OpsConductor-Signature"
TIMESTAMP_HEADER = "X-OpsConductor-Timestamp"
EVENT_HEADER = "X-OpsConductor-Event"
DELIVERY_HEADER = "X-OpsConductor-Delivery"  # the notification id: the same on every retry (receivers dedupe)

_PAGES = {NotifyEvent.APPROVAL_WAITING: "approvals", NotifyEvent.DLQ: "dlq", NotifyEvent.FINISHED: "executions"}
_TITLES = {
    NotifyEvent.APPROVAL_WAITING: "Approval waiting",
    NotifyEvent.DLQ: "In the dead-letter queue",
    NotifyEvent.FINISHED: "Finished",
}
TEST_EVENT = "test"


@dataclass(frozen=True)
class Facts:
    """Everything a notification may carry."""

    delivery_id: str
    event: str
    tenant: str
    execution_id: str | None
    execution_name: str
    status: str
    requested_by: str
    actor: str | None
    occurred_at: str  # ISO 8601 UTC
    link: str


def link(console_url: str, event: str, execution_id: str | None) -> str:
    """The console address that opens the right screen for ``event`` (``/approvals?execution=<id>``, ...)."""
    base = console_url.rstrip("/")
    known = _known(event)
    if execution_id is None:
        return base + "/"
    return f"{base}/{_PAGES[known] if known else 'executions'}?execution={execution_id}"


def title(facts: Facts) -> str:
    """One line: what happened to what (``Approval waiting: restart-nginx (demo)``)."""
    known = _known(facts.event)
    return f"{_TITLES[known] if known else 'Test notification'}: {facts.execution_name} ({facts.tenant})"


def _known(event: str) -> NotifyEvent | None:
    try:
        return NotifyEvent(event)
    except ValueError:
        return None  # the test send of `notify test`


def webhook_body(facts: Facts, fmt: str) -> bytes:
    """The webhook's JSON body: ours, or Slack-compatible (``{"text": ...}``, for an incoming webhook)."""
    if fmt == ChannelFormat.SLACK.value:
        text = (
            f"*{title(facts)}*\nstatus: {facts.status} · requested by {facts.requested_by}"
            + (f" · by {facts.actor}" if facts.actor else "")
            + f"\n<{facts.link}|Open in OpsConductor>"
        )
        body: dict[str, object] = {"text": text}
    else:
        body = {
            "event": facts.event,
            "delivery_id": facts.delivery_id,
            "tenant": facts.tenant,
            "execution": {
                "id": facts.execution_id,
                "name": facts.execution_name,
                "status": facts.status,
                "requested_by": facts.requested_by,
            },
            "actor": facts.actor,
            "occurred_at": facts.occurred_at,
            "link": facts.link,
        }
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """The signature header's value for ``body`` sent at ``timestamp``: ``sha256=<hex>``."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def email_message(facts: Facts, *, sender: str, to: str) -> EmailMessage:
    """The email: the title as subject, the facts and the link as plain text."""
    message = EmailMessage()
    message["Subject"] = f"[OpsConductor] {title(facts)}"
    message["From"] = sender
    message["To"] = to
    lines = [
        title(facts),
        "",
        f"Execution: {facts.execution_name} ({facts.execution_id or '-'})",
        f"Status: {facts.status}",
        f"Requested by: {facts.requested_by}",
    ]
    if facts.actor:
        lines.append(f"By: {facts.actor}")
    lines += [f"When: {facts.occurred_at}", "", f"Open it: {facts.link}", ""]
    message.set_content("\n".join(lines))
    return message

"""Delivering the outbox (core/notify/outbox.py) after commit: take, send, record, retry.

``deliver_due`` takes due rows with a lease (compare-and-set, so two workers never send the same row at once;
``FOR UPDATE SKIP LOCKED`` on PostgreSQL), reads what the message may carry, and commits before sending: no
transaction is held open across the network. Each attempt is then recorded in its own transaction: the row
(attempts, next attempt, status) and a ``notification`` event on the execution's trail (audited, DESIGN §3.1:
the tenant's keyed chain covers it). Outcomes:

- delivered: 2xx from a webhook, or the SMTP server accepted the message;
- retried with exponential backoff (``notify_backoff_s`` doubling, capped): a connection error, a timeout,
  408, 429, 5xx, a 4xx SMTP reply; after ``notify_max_attempts`` it is ``failed``;
- failed at once: any other 3xx/4xx (a redirect is not followed), a permanent (5xx) SMTP reply, a target
  refused (core/notify/targets.py): trying again would get the same answer.

A row whose lease ran out (its worker died mid-send) is taken again: at-least-once, which is why each request
carries the same ``X-OpsConductor-Delivery`` id on every attempt.
"""

from __future__ import annotations

import logging
import smtplib
import threading
import time
from dataclasses import dataclass
from datetime import UTC, timedelta

import httpx
from sqlalchemy import or_, select, update
from sqlmodel import Session

from core.audit import record_event
from core.engine.finish import backoff_s
from core.errors import CoreError
from core.notify import keys, messages, targets
from core.notify.messages import Facts
from core.notify.outbox import written
from core.safety.secret_store import fernet
from core.transactions import session_scope
from db.clock import utcnow
from db.enums import ChannelKind, NotificationStatus
from db.settings import Settings, get_settings
from db.tables import Execution, Notification, NotificationChannel, Tenant, User

log = logging.getLogger(__name__)
BATCH = 20
NOTIFIER = "notifier"  # the actor of the trail's delivery events
_N = Notification.__table__  # type: ignore[attr-defined]
_sending = threading.local()


class _UrlHidden(logging.Filter):
    """httpx logs every request's full URL at INFO; a webhook's may carry a token: while this thread sends one,
    the record keeps only the method and the answer."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(_sending, "webhook", False) and isinstance(record.args, tuple) and len(record.args) >= 5:
            record.msg, record.args = (
                "HTTP Request: %s (a notification webhook) %s %s",
                (
                    record.args[0],
                    record.args[3],
                    record.args[4],
                ),
            )
        return True


logging.getLogger("httpx").addFilter(_UrlHidden())


@dataclass(frozen=True)
class Outcome:
    """What one attempt came to: ``delivered``, ``retry`` or ``failed``, with a detail safe to show."""

    result: str
    detail: str
    http_status: int | None = None


@dataclass(frozen=True)
class _Job:
    notification_id: str
    tenant_id: str
    execution_id: str
    channel_id: str
    kind: str
    target: str  # decrypted: in memory only, never logged or recorded
    hint: str
    fmt: str
    attempt: int
    facts: Facts
    signing_secret: str | None


def deliver_due(*, limit: int = BATCH) -> int:
    """Send the due notifications (a batch); returns how many attempts were made. Safe in many workers at once."""
    settings = get_settings()
    jobs = _take(limit, settings)
    for job in jobs:
        outcome = send(job.kind, job.target, job.fmt, job.facts, job.signing_secret, settings)
        _record(job, outcome, settings)
    return len(jobs)


def run_until(stop: threading.Event) -> None:
    """The delivery thread's loop: a pass when this process committed notifications, else every
    ``notify_interval_s``, until ``stop`` is set. Errors are logged and the loop goes on."""
    interval_s = get_settings().notify_interval_s
    while not stop.is_set():
        written.wait(interval_s)
        written.clear()
        if stop.is_set():
            return
        try:
            while deliver_due() == BATCH and not stop.is_set():
                pass  # a full batch: more may be due
        except Exception:  # a database outage or a bug: the next pass tries again; never kill the thread
            log.warning("notification delivery pass failed", exc_info=True)
            time.sleep(interval_s)


def send(kind: str, target: str, fmt: str, facts: Facts, secret: str | None, settings: Settings) -> Outcome:
    """One attempt to deliver ``facts`` to a channel (``target`` decrypted). Never raises for the receiver's
    faults: they are the outcome."""
    if kind == ChannelKind.WEBHOOK.value:
        return _post(target, fmt, facts, secret, settings)
    return _mail(target, facts, settings)


def _post(url: str, fmt: str, facts: Facts, secret: str | None, settings: Settings) -> Outcome:
    try:
        targets.check_url(url, allow_local=settings.notify_allow_local)
    except CoreError as exc:
        return Outcome("failed", str(exc))
    body = messages.webhook_body(facts, fmt)
    timestamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "OpsConductor-Notify/1",
        messages.EVENT_HEADER: facts.event,
        messages.DELIVERY_HEADER: facts.delivery_id,
        messages.TIMESTAMP_HEADER: timestamp,
    }
    if secret:
        headers[messages.SIGNATURE_HEADER] = messages.signature(secret, timestamp, body)
    _sending.webhook = True
    try:
        response = httpx.post(
            url, content=body, headers=headers, timeout=settings.notify_timeout_s, follow_redirects=False
        )
    except httpx.TimeoutException:
        return Outcome("retry", "timed out")
    except httpx.HTTPError as exc:
        # The exception's text may quote the URL (a token in its path): only its kind is kept.
        return Outcome("retry", f"could not connect ({type(exc).__name__})")
    finally:
        _sending.webhook = False
    code = response.status_code
    if 200 <= code < 300:
        return Outcome("delivered", f"HTTP {code}", code)
    if code in {408, 429} or code >= 500:
        return Outcome("retry", f"HTTP {code}", code)
    return Outcome("failed", f"HTTP {code}: not retried", code)


def _mail(address: str, facts: Facts, settings: Settings) -> Outcome:
    if not settings.smtp_host:
        return Outcome("retry", "OPSC_SMTP_HOST is not set")
    message = messages.email_message(facts, sender=settings.smtp_from, to=address)
    try:
        with smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=settings.notify_timeout_s) as smtp:
            if settings.smtp_starttls:
                smtp.starttls()
            if settings.smtp_user and settings.smtp_password:
                smtp.login(settings.smtp_user, settings.smtp_password)
            smtp.send_message(message)
    except smtplib.SMTPRecipientsRefused as exc:
        codes = [code for code, _ in exc.recipients.values()]
        permanent = all(code >= 500 for code in codes)
        return Outcome("failed" if permanent else "retry", f"recipient refused (SMTP {codes[0] if codes else '?'})")
    except smtplib.SMTPResponseException as exc:
        permanent = exc.smtp_code >= 500
        return Outcome("failed" if permanent else "retry", f"SMTP {exc.smtp_code}")
    except (smtplib.SMTPException, OSError) as exc:
        return Outcome("retry", f"SMTP server unreachable ({type(exc).__name__})")
    return Outcome("delivered", "accepted by the SMTP server")


def _take(limit: int, settings: Settings) -> list[_Job]:
    now = utcnow()
    lease_until = now + timedelta(seconds=3 * settings.notify_timeout_s + 10)
    jobs: list[_Job] = []
    with session_scope() as session:
        due = (
            session.execute(
                select(_N.c.id)
                .where(
                    _N.c.status == NotificationStatus.PENDING.value,
                    _N.c.next_attempt_at <= now,
                    or_(_N.c.lease_expires_at.is_(None), _N.c.lease_expires_at < now),
                )
                .order_by(_N.c.next_attempt_at, _N.c.id)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
            .scalars()
            .all()
        )
        secrets: dict[str, str | None] = {}
        for notification_id in due:
            taken = session.execute(
                update(_N)
                .where(_N.c.id == notification_id, or_(_N.c.lease_expires_at.is_(None), _N.c.lease_expires_at < now))
                .values(lease_expires_at=lease_until)
            )
            if taken.rowcount != 1:  # type: ignore[attr-defined]
                continue  # another worker took it first (SQLite has no SKIP LOCKED)
            job = _job(session, notification_id, secrets, settings)
            if job is not None:
                jobs.append(job)
    return jobs


def _job(session: Session, notification_id: str, secrets: dict[str, str | None], settings: Settings) -> _Job | None:
    note = session.get(Notification, notification_id)
    if note is None:
        return None
    # Each row is read under the notification's own tenant: a row can only ever reach its tenant's channel.
    channel = session.get(NotificationChannel, note.channel_id)
    execution = session.get(Execution, note.execution_id)
    tenant_row = session.get(Tenant, note.tenant_id)
    if channel is None or execution is None or tenant_row is None:
        return None
    if channel.tenant_id != note.tenant_id or execution.tenant_id != note.tenant_id:
        raise AssertionError(f"notification {note.id} crosses tenants")  # a defect: never send it
    requester_row = session.get(User, execution.requested_by)
    name, tenant = execution.name, tenant_row.name
    requester = requester_row.username if requester_row else "?"
    if channel.kind == ChannelKind.WEBHOOK.value and note.tenant_id not in secrets:
        secrets[note.tenant_id] = keys.signing_secret(session, note.tenant_id)
    facts = Facts(
        delivery_id=note.id,
        event=note.event,
        tenant=tenant,
        execution_id=note.execution_id,
        execution_name=name,
        status=note.execution_status,
        requested_by=requester,
        actor=note.actor,
        occurred_at=note.created_at.replace(tzinfo=UTC).isoformat().replace("+00:00", "Z"),
        link=messages.link(settings.console_url, note.event, note.execution_id),
    )
    return _Job(
        notification_id=note.id,
        tenant_id=note.tenant_id,
        execution_id=note.execution_id,
        channel_id=channel.id,
        kind=channel.kind,
        target=fernet().decrypt(channel.target_ciphertext.encode()).decode(),
        hint=channel.target_hint,
        fmt=channel.format,
        attempt=note.attempts + 1,
        facts=facts,
        signing_secret=secrets.get(note.tenant_id),
    )


def _record(job: _Job, outcome: Outcome, settings: Settings) -> None:
    now = utcnow()
    result = outcome.result
    if result == "retry" and job.attempt >= settings.notify_max_attempts:
        result = "failed"
    values: dict[str, object] = {"attempts": job.attempt, "lease_expires_at": None, "last_error": None}
    if result == "delivered":
        values |= {"status": NotificationStatus.DELIVERED.value, "delivered_at": now}
    elif result == "failed":
        values |= {"status": NotificationStatus.FAILED.value, "last_error": outcome.detail[:512]}
    else:
        delay = backoff_s(job.attempt, settings.notify_backoff_s, settings.notify_backoff_max_s)
        values |= {"next_attempt_at": now + timedelta(seconds=delay), "last_error": outcome.detail[:512]}
    verdict = {"delivered": "delivered", "failed": "failed", "retry": "will retry"}[result]
    with session_scope() as session:
        session.execute(update(_N).where(_N.c.id == job.notification_id).values(**values))
        record_event(
            session,
            execution_id=job.execution_id,
            tenant_id=job.tenant_id,
            kind="notification",
            actor=NOTIFIER,
            message=f"{job.facts.event} notification via {job.kind} {job.hint}: {verdict} "
            f"(attempt {job.attempt}; {outcome.detail})",
            data={
                "notification_id": job.notification_id,
                "channel_id": job.channel_id,
                "event": job.facts.event,
                "attempt": job.attempt,
                "outcome": result,
                "http_status": outcome.http_status,
            },
        )
    if result == "failed":
        log.warning("notification %s via %s %s failed: %s", job.notification_id, job.kind, job.hint, outcome.detail)


def wake() -> None:
    """Have this process's delivery thread run a pass now (it also checks whether it was asked to stop)."""
    written.set()

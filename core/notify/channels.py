"""Notification channels, the use cases: an admin sets up the tenant's webhooks and email addresses; any member
opts in to hear when their own executions finish. Every change is on the tenant's admin trail; a URL appears
there (and anywhere else) only as its hint, the signing secret never.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from sqlmodel import Session, col, select

from core.admin_audit import record_admin_event
from core.errors import InvalidInput, NotFound, PermissionDenied
from core.identity import rbac
from core.identity.permissions import Permission
from core.notify import keys, messages, targets
from core.notify.delivery import send
from core.safety.secret_store import fernet
from core.schemas import ChannelView, NotificationTestResult, Principal
from core.transactions import session_scope
from db.clock import utcnow
from db.enums import ChannelFormat, ChannelKind, NotifyEvent, Role
from db.settings import get_settings
from db.tables import NotificationChannel, Tenant, User

DEFAULT_EVENTS = (NotifyEvent.APPROVAL_WAITING, NotifyEvent.DLQ)
MAX_CHANNELS = 50  # per tenant: each event writes a row per channel


def add_webhook(
    principal: Principal, url: str, *, fmt: str = "json", events: Iterable[str] | None = None
) -> tuple[ChannelView, str | None]:
    """Add a tenant webhook (admin). The URL is checked against the SSRF rules and stored encrypted.

    Returns:
        The channel, and the tenant's signing secret when this call made it (the first webhook): show it once.

    Raises:
        InvalidInput: a bad URL, format or event name. SafetyRefused: the URL's host is refused.
    """
    if fmt not in {f.value for f in ChannelFormat}:
        raise InvalidInput("json or slack", path="format")
    url = targets.check_url(url, allow_local=get_settings().notify_allow_local)
    with session_scope() as session:
        rbac.require(session, principal, Permission.ADMIN)
        chosen = _events(events)
        row = _add(session, principal, ChannelKind.WEBHOOK, url, targets.hint(url), fmt, chosen, owner=None)
        made = None
        if keys.signing_secret(session, principal.tenant_id) is None:
            made = keys.new_signing_secret(session, principal.tenant_id, actor_id=principal.user_id)
        return _view(session, row), made


def add_email(principal: Principal, address: str, *, events: Iterable[str] | None = None) -> ChannelView:
    """Add a tenant email address (admin): it gets the events listed (default: approvals waiting, DLQ)."""
    address = targets.check_email(address)
    with session_scope() as session:
        rbac.require(session, principal, Permission.ADMIN)
        row = _add(session, principal, ChannelKind.EMAIL, address, address, "text", _events(events), owner=None)
        return _view(session, row)


def subscribe_email(principal: Principal, address: str, *, only_when_asked: bool = False) -> ChannelView:
    """Opt in (any member): email ``address`` when an execution you requested finishes.

    Args:
        only_when_asked: only the executions you submit asking to be told (``submit(..., notify_on_finish=True)``),
            not every one you request.
    """
    address = targets.check_email(address)
    with session_scope() as session:
        rbac.require(session, principal, Permission.READ)
        row = _add(
            session,
            principal,
            ChannelKind.EMAIL,
            address,
            address,
            "text",
            [NotifyEvent.FINISHED],
            owner=principal,
            only_when_asked=only_when_asked,
        )
        return _view(session, row)


def list_channels(principal: Principal) -> list[ChannelView]:
    """The tenant's channels and everyone's opt-ins (admin), or your own opt-ins (anyone else)."""
    with session_scope() as session:
        role = rbac.require(session, principal, Permission.READ)
        query = select(NotificationChannel).where(NotificationChannel.tenant_id == principal.tenant_id)
        if role is not Role.ADMIN:
            query = query.where(NotificationChannel.owner_user_id == principal.user_id)
        rows = session.exec(query.order_by(col(NotificationChannel.created_at), col(NotificationChannel.id))).all()
        return [_view(session, row) for row in rows]


def remove_channel(principal: Principal, channel_id: str) -> None:
    """Remove a channel (admin; or your own opt-in). Its undelivered notifications go with it."""
    with session_scope() as session:
        row = _channel(session, principal, channel_id)
        session.delete(row)
        record_admin_event(session, principal, "notify_channel_removed", row.target_hint, {"channel_id": row.id})


def rotate_signing_secret(principal: Principal) -> str:
    """Draw a new webhook signing secret for the tenant (admin); returns it, to show once."""
    with session_scope() as session:
        rbac.require(session, principal, Permission.ADMIN)
        value = keys.new_signing_secret(session, principal.tenant_id, actor_id=principal.user_id)
        record_admin_event(session, principal, "notify_signing_secret_rotated")
        return value


def test_channel(principal: Principal, channel_id: str) -> NotificationTestResult:
    """Send a test notification to one channel now (admin; or your own opt-in), and say what came of it.

    No execution is involved; the attempt is on the tenant's admin trail.
    """
    settings = get_settings()
    with session_scope() as session:
        row = _channel(session, principal, channel_id)
        tenant = session.get(Tenant, principal.tenant_id)
        secret = keys.signing_secret(session, principal.tenant_id)
        kind, fmt, hint = row.kind, row.format, row.target_hint
        target = fernet().decrypt(row.target_ciphertext.encode()).decode()
    facts = messages.Facts(
        delivery_id=f"test-{channel_id}",
        event=messages.TEST_EVENT,
        tenant=tenant.name if tenant else principal.tenant_id,
        execution_id=None,
        execution_name="test notification",
        status="-",
        requested_by=principal.username,
        actor=principal.username,
        occurred_at=dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z"),
        link=messages.link(settings.console_url, messages.TEST_EVENT, None),
    )
    outcome = send(kind, target, fmt, facts, secret, settings)
    delivered = outcome.result == "delivered"
    with session_scope() as session:
        record_admin_event(
            session,
            principal,
            "notify_test",
            hint,
            {"channel_id": channel_id, "outcome": outcome.result, "detail": outcome.detail},
        )
    return NotificationTestResult(channel_id=channel_id, delivered=delivered, detail=outcome.detail)


def _events(events: Iterable[str] | None) -> list[NotifyEvent]:
    if events is None:
        return list(DEFAULT_EVENTS)
    chosen: list[NotifyEvent] = []
    for name in events:
        name = name.strip()
        if not name:
            continue
        try:
            chosen.append(NotifyEvent(name))
        except ValueError:
            allowed = ", ".join(e.value for e in NotifyEvent)
            raise InvalidInput(f"unknown event {name!r}; one of {allowed}", path="events") from None
    if not chosen:
        raise InvalidInput("name at least one event", path="events")
    return list(dict.fromkeys(chosen))


def _add(
    session: Session,
    principal: Principal,
    kind: ChannelKind,
    target: str,
    hint: str,
    fmt: str,
    events: list[NotifyEvent],
    *,
    owner: Principal | None,
    only_when_asked: bool = False,
) -> NotificationChannel:
    count = len(
        session.exec(select(NotificationChannel.id).where(NotificationChannel.tenant_id == principal.tenant_id)).all()
    )
    if count >= MAX_CHANNELS:
        raise InvalidInput(f"the tenant has {count} channels already (at most {MAX_CHANNELS})", path="channels")
    row = NotificationChannel(
        tenant_id=principal.tenant_id,
        kind=kind.value,
        target_ciphertext=fernet().encrypt(target.encode()).decode(),
        target_hint=hint,
        format=fmt,
        events=",".join(e.value for e in events),
        owner_user_id=owner.user_id if owner else None,
        only_when_asked=only_when_asked,
        created_by=principal.user_id,
        created_at=utcnow(),
    )
    session.add(row)
    session.flush()
    record_admin_event(
        session,
        principal,
        "notify_channel_added",
        hint,
        {
            "channel_id": row.id,
            "kind": kind.value,
            "format": fmt,
            "events": row.events,
            "own": owner is not None,
            "only_when_asked": only_when_asked,
        },
    )
    return row


def _channel(session: Session, principal: Principal, channel_id: str) -> NotificationChannel:
    """The tenant's channel ``channel_id`` if the principal may change it (admin, or their own opt-in)."""
    role = rbac.require(session, principal, Permission.READ)
    # An id or a unique prefix of at least 6 characters (what the console and `notify list` show suffices).
    match = col(NotificationChannel.id).startswith(channel_id, autoescape=True) if len(channel_id) >= 6 else None
    found = session.exec(
        select(NotificationChannel)
        .where(NotificationChannel.tenant_id == principal.tenant_id)
        .where(match if match is not None else NotificationChannel.id == channel_id)
        .limit(2)
    ).all()
    if len(found) > 1:
        raise InvalidInput(f"{channel_id!r} names more than one channel; give more of the id", path="channel_id")
    row = found[0] if found else None
    if row is None or (role is not Role.ADMIN and row.owner_user_id != principal.user_id):
        if row is not None and row.owner_user_id is None:
            raise PermissionDenied(f"{principal.username} may not change the tenant's channels (admin)")
        raise NotFound("notification channel", channel_id)
    return row


def _view(session: Session, row: NotificationChannel) -> ChannelView:
    owner = session.get(User, row.owner_user_id).username if row.owner_user_id else None  # type: ignore[union-attr]
    return ChannelView(
        id=row.id,
        kind=row.kind,
        target=row.target_hint,
        format=row.format,
        events=row.events.split(","),
        owner=owner,
        only_when_asked=row.only_when_asked,
        created_at=row.created_at,
    )

"""The notifications item of the GO/NO-GO check (core/ops/readiness.py, `opsconductor check`).

NO-GO while webhooks may reach loopback, link-local or metadata addresses (``OPSC_NOTIFY_ALLOW_LOCAL``: a lab
switch, like unconfined steps), or while notifications wait long past their due time: nobody is delivering them
(no worker running, or one stuck). Otherwise GO, with what was delivered and what failed in the check window.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select
from sqlmodel import Session

from db.clock import utcnow
from db.enums import NotificationStatus
from db.settings import get_settings
from db.tables import Notification

OVERDUE_S = 300  # a due notification untouched this long: delivery has stopped
_N = Notification.__table__  # type: ignore[attr-defined]


def notifications_check(session: Session) -> tuple[bool, str]:
    """(ok, reason) of the notifications item."""
    settings = get_settings()
    if settings.notify_allow_local:
        return False, "OPSC_NOTIFY_ALLOW_LOCAL is on: webhooks may reach loopback and metadata addresses (labs only)"
    now = utcnow()
    overdue = session.execute(
        select(func.count())
        .select_from(_N)
        .where(
            _N.c.status == NotificationStatus.PENDING.value,
            _N.c.next_attempt_at < now - timedelta(seconds=OVERDUE_S),
        )
    ).scalar_one()
    if overdue:
        return False, f"{overdue} notifications overdue by more than {OVERDUE_S} s: is a worker running?"
    since = now - timedelta(seconds=settings.check_window_s)
    counts = dict(
        session.execute(select(_N.c.status, func.count()).where(_N.c.created_at >= since).group_by(_N.c.status)).all()
    )
    delivered, failed = counts.get("delivered", 0), counts.get("failed", 0)
    return True, f"{delivered} delivered and {failed} failed in the last {settings.check_window_s} s; none overdue"

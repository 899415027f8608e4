"""Console sessions that survive reload and a second tab (issue 16 item 2): signed, expiring, revocable.

A sign-in (password or single sign-on) starts a row in ``console_sessions``; the browser holds the token
``opsc1.<id>.<mac>`` in an HttpOnly cookie (ui/session_routes.py sets it). ``mac`` is HMAC-SHA256 under the
console's session key (core/identity/session_key.py, never stored, never the secret store's key) over the
session id, user, tenant and start time, so:

- a guessed or altered token, or one signed with another installation's key, is refused;
- a row edited in the database (pointed at another user or tenant) no longer matches its token, and a row
  written there with a one-time code of the writer's choosing trades for nothing (the code's hash is keyed);
- every check re-reads the row: signed out (``revoked_at``), idle longer than ``session_idle_s`` (counted
  from ``last_seen_at``, which each check moves), past ``session_max_s`` since sign-in, a disabled user, a
  password changed since, or no role left in the tenant: refused.

The cookie is set through a one-time code (``handoff``): the page that signed in sends the browser to the
cookie route with it; the route trades it (60 s, once) for the token, so the token itself never appears in
a URL, a page or a script the browser runs.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from datetime import datetime, timedelta

from sqlalchemy import delete, or_, update
from sqlmodel import Session, col, select

from core.errors import PermissionDenied
from core.identity.principals import verify
from core.identity.proofs import PASSWORD, SSO, check_credentials, issue
from core.identity.session_key import session_key
from core.schemas import Principal
from core.transactions import session_scope
from db.clock import utcnow
from db.settings import get_settings
from db.tables import ConsoleSession, Membership, Tenant, User

PREFIX = "opsc1"
HANDOFF_S = 60
# last_seen_at is written at most this often (a write per page view otherwise); the idle limit is minutes.
TOUCH_EVERY_S = 15
SESSION_AUTH = frozenset({PASSWORD, SSO})
IDLE_MESSAGE = "your session expired after a period of inactivity"


def _mac(row: ConsoleSession) -> str:
    # Whole seconds, zone dropped (the column is UTC): what both databases give back exactly.
    started = row.created_at.replace(tzinfo=None).isoformat(timespec="seconds")
    body = f"{PREFIX}\x00{row.id}\x00{row.user_id}\x00{row.tenant_id}\x00{started}".encode()
    digest = hmac.new(session_key(), body, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _token(row: ConsoleSession) -> str:
    return f"{PREFIX}.{row.id}.{_mac(row)}"


def _digest(code: str) -> str:
    # Keyed, not a bare SHA-256: the route signs whatever row the code finds, so with a plain hash, write
    # access to the table alone (a row for the admin, the hash of a code of one's choosing) minted a session.
    return hmac.new(session_key(), b"opsc1-handoff\x00" + code.encode(), hashlib.sha256).hexdigest()


def start_console_session(principal: Principal) -> tuple[str, str]:
    """Start a console session for a principal that just signed in.

    Returns:
        ``(token, code)``: the session's token, for the signing-in tab to keep server side, and the one-time
        code the browser trades for the same token in its cookie (``session_token_for``).

    Raises:
        PermissionDenied: ``principal`` was not issued by a password or single sign-on sign-in just now
            (an API token or a claimed name does not start a console session).
    """
    if principal.auth not in SESSION_AUTH:
        raise PermissionDenied("only a password or single sign-on sign-in starts a console session")
    code = secrets.token_urlsafe(32)
    now = utcnow()
    with session_scope() as session:
        verify(session, principal)
        # The user's ended sessions go as a new one starts (by the user index): the table stays the size of
        # the sessions that can still be used, with no sweep of its own.
        session.execute(
            delete(ConsoleSession).where(
                col(ConsoleSession.user_id) == principal.user_id,
                or_(
                    col(ConsoleSession.expires_at) <= now,
                    col(ConsoleSession.revoked_at).is_not(None),
                    col(ConsoleSession.last_seen_at) < now - timedelta(seconds=get_settings().session_idle_s),
                ),
            )
        )
        row = ConsoleSession(
            user_id=principal.user_id,
            tenant_id=principal.tenant_id,
            auth=principal.auth,
            # The sign-in's own time: a password changed between it and now still signs this session out.
            created_at=principal.authenticated_at or now,
            last_seen_at=now,
            expires_at=now + timedelta(seconds=get_settings().session_max_s),
            handoff_hash=_digest(code),
            handoff_expires_at=now + timedelta(seconds=HANDOFF_S),
        )
        session.add(row)
        session.flush()
        return _token(row), code


def session_token_for(code: str) -> str:
    """Trade a sign-in's one-time code for its session token (once, within ``HANDOFF_S`` seconds).

    Raises:
        PermissionDenied: unknown, used or expired code (alike), or a session since ended.
    """
    if not code or len(code) > 128:
        raise PermissionDenied("this sign-in link is not valid; sign in again")
    now = utcnow()
    with session_scope() as session:
        row = session.exec(select(ConsoleSession).where(ConsoleSession.handoff_hash == _digest(code))).first()
        if row is None or row.handoff_expires_at is None or row.handoff_expires_at <= now or row.revoked_at:
            raise PermissionDenied("this sign-in link is not valid; sign in again")
        # Compare-and-set: of two requests racing with one code, only one gets the token.
        used = session.execute(
            update(ConsoleSession)
            .where(col(ConsoleSession.id) == row.id, col(ConsoleSession.handoff_hash) == row.handoff_hash)
            .values(handoff_hash=None, handoff_expires_at=None)
        )
        if not used.rowcount:  # type: ignore[attr-defined]
            raise PermissionDenied("this sign-in link is not valid; sign in again")
        return _token(row)


def _row_of(session: Session, token: str) -> ConsoleSession:
    """The session row ``token`` names, if its MAC is right. Raises PermissionDenied (one answer for all)."""
    parts = token.split(".") if isinstance(token, str) and len(token) <= 256 else []
    refused = PermissionDenied("this console session is not valid; sign in again")
    if len(parts) != 3 or parts[0] != PREFIX or len(parts[1]) != 32:
        raise refused
    row = session.get(ConsoleSession, parts[1])
    # Bytes, not str: compare_digest raises TypeError on a non-ASCII str (a cookie decodes as latin-1), which
    # made a forged token a 500 instead of a refusal.
    if row is None or not hmac.compare_digest(parts[2].encode("utf-8", "replace"), _mac(row).encode()):
        raise refused
    return row


def console_session_principal(token: str, *, activity: bool = True) -> Principal:
    """The principal of a console session token, checked now.

    ``activity``: the check counts as the user's activity for the idle expiry (a page view does; a live view
    refreshing itself does not, so a screen left open still expires).

    Raises:
        PermissionDenied: forged or altered token, signed out, idle too long (``IDLE_MESSAGE``), past its
            absolute limit, user disabled, password changed since sign-in, or no role left in the tenant.
    """
    settings = get_settings()
    now = utcnow()
    with session_scope() as session:
        row = _row_of(session, token)
        if row.revoked_at is not None:
            raise PermissionDenied("you signed out of this console session; sign in again")
        if now >= row.expires_at:
            raise PermissionDenied("this console session reached its time limit; sign in again")
        if now - row.last_seen_at > timedelta(seconds=settings.session_idle_s):
            raise PermissionDenied(IDLE_MESSAGE)
        user = session.get(User, row.user_id)
        membership = session.get(Membership, (row.tenant_id, row.user_id))
        tenant = session.get(Tenant, row.tenant_id)
        if membership is None or tenant is None:
            raise PermissionDenied("you no longer have a role in this tenant; sign in again")
        issued = issue(user, membership, tenant, auth=row.auth, authenticated_at=row.created_at) if user else None
        if issued is None:
            raise PermissionDenied("this account is disabled or no longer exists")
        check_credentials(issued, user, None, now)  # disabled, or the password changed since this sign-in
        if activity and now - row.last_seen_at >= timedelta(seconds=TOUCH_EVERY_S):
            row.last_seen_at = now
            session.add(row)
        return issued


def end_console_session(token: str) -> bool:
    """Sign a console session out (every tab holding its token); True if it was open. Unknown tokens: False."""
    with session_scope() as session:
        try:
            row = _row_of(session, token)
        except PermissionDenied:
            return False
        if row.revoked_at is not None:
            return False
        row.revoked_at = utcnow()
        session.add(row)
        return True


def console_session_expires(token: str) -> datetime | None:
    """When the session of ``token`` ends at the latest (for the cookie's lifetime), or None if not valid."""
    with session_scope() as session:
        try:
            return _row_of(session, token).expires_at
        except PermissionDenied:
            return None

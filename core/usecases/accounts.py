"""Local accounts: password hashes (argon2id), sign-in with lock-out, and re-authentication.

Passwords are hashed with argon2id (argon2-cffi) and only the hash is stored. After
``login_max_failures`` bad passwords in a row an account is locked for ``login_lockout_s``; a good
password resets the count. Every failure says the same thing ("invalid username or password") so the
answer never tells which usernames exist; only a locked account is named as such, and only after the
right username was tried that many times.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from functools import lru_cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlmodel import Session, select

from core.admin_audit import record_admin_event
from core.errors import InvalidInput, NotFound, PermissionDenied
from core.identity import rbac
from core.identity.principals import resolve_principal
from core.identity.rbac import Permission
from core.schemas import Principal
from core.transactions import session_scope
from db.clock import utcnow
from db.settings import get_settings
from db.tables import Membership, User

MIN_PASSWORD_LENGTH = 8
_HASHER = PasswordHasher()


class AuthenticationFailed(PermissionDenied):
    """Wrong username or password, or a locked account (``locked`` says which)."""

    def __init__(self, message: str = "invalid username or password", *, locked: bool = False) -> None:
        super().__init__(message)
        self.locked = locked


def hash_password(password: str) -> str:
    """An argon2id hash of ``password`` (salted; safe to store)."""
    return _HASHER.hash(password)


@lru_cache(maxsize=8)
def shared_hash(password: str) -> str:
    """One hash of a *public* password reused for many rows (the demo accounts): hashing is slow on purpose."""
    return hash_password(password)


def _verify(stored: str | None, password: str) -> bool:
    if not stored:
        return False
    try:
        return _HASHER.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False


def check_password_strength(password: str) -> None:
    """Raise InvalidInput unless ``password`` is acceptable for a local account."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInput(f"must be at least {MIN_PASSWORD_LENGTH} characters", path="password")


def _check(session: Session, user: User | None, password: str) -> None:
    """Verify ``password`` for ``user``, counting failures and locking; raises AuthenticationFailed."""
    settings = get_settings()
    now = utcnow()
    if user is None or user.disabled:
        _HASHER.verify(shared_hash("timing-equaliser"), "timing-equaliser")  # same cost as a real check
        raise AuthenticationFailed()
    if user.locked_until is not None and user.locked_until > now:
        minutes = max(1, round((user.locked_until - now).total_seconds() / 60))
        raise AuthenticationFailed(
            f"account locked after {settings.login_max_failures} failed sign-ins; try again in {minutes} min "
            "or ask an admin to reset the password",
            locked=True,
        )
    if _verify(user.password_hash, password):
        user.failed_logins = 0
        user.locked_until = None
        session.add(user)
        return
    user.failed_logins += 1
    if user.failed_logins >= settings.login_max_failures:
        user.locked_until = now + timedelta(seconds=settings.login_lockout_s)
        user.failed_logins = 0
    session.add(user)
    raise AuthenticationFailed()


def authenticate(username: str, password: str, tenant: str | None = None) -> Principal:
    """The principal of ``username`` if ``password`` is right (and the account not locked).

    Raises:
        AuthenticationFailed: wrong username or password, disabled or locked account.
        NotFound / InvalidInput: as ``resolve_principal`` (no role in that tenant, several tenants).
    """
    name = username.strip().lower()
    _check_committed(lambda session: session.exec(select(User).where(User.username == name)).first(), password)
    with session_scope() as session:
        return resolve_principal(session, name, tenant)


def reauthenticate(principal: Principal, password: str) -> Principal:
    """Confirm the signed-in user's password again (before a high-risk approval); counts toward lock-out.

    Returns the principal, confirmed. Raises AuthenticationFailed.
    """
    _check_committed(lambda session: session.get(User, principal.user_id), password)
    return principal


def _check_committed(find_user: Callable[[Session], User | None], password: str) -> None:
    """``_check`` in a transaction of its own, which commits the failure count even when the check fails."""
    failure: AuthenticationFailed | None = None
    with session_scope() as session:
        try:
            _check(session, find_user(session), password)
        except AuthenticationFailed as exc:
            failure = exc
    if failure is not None:
        raise failure


def set_password(principal: Principal, username: str, password: str) -> None:
    """Set (or reset) a member's password and clear any lock-out. Admins for members, anyone for themselves."""
    check_password_strength(password)
    with session_scope() as session:
        if username != principal.username:
            rbac.require(session, principal, Permission.ADMIN)
        else:
            rbac.require(session, principal, Permission.READ)
        user = session.exec(
            select(User)
            .join(Membership, Membership.user_id == User.id)  # type: ignore[arg-type]
            .where(User.username == username, Membership.tenant_id == principal.tenant_id)
        ).first()
        if user is None:
            raise NotFound("user", username)
        user.password_hash = hash_password(password)
        user.failed_logins = 0
        user.locked_until = None
        session.add(user)
        record_admin_event(session, principal, "password_set", username)  # the event, never the password


def needs_reauthentication(approval_level: int) -> bool:
    """True if approving at this level asks for the password again (setting ``reauth_approval_level``)."""
    return approval_level >= get_settings().reauth_approval_level

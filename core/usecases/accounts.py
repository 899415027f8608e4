"""Local accounts: password hashes (argon2id), sign-in with a throttle, re-authentication, and disabling.

Passwords are hashed with argon2id (argon2-cffi) and only the hash is stored.

**No user enumeration.** Unknown users, disabled users, users without a password, wrong passwords and
throttled attempts all get the same ``AuthenticationFailed("invalid username or password")`` after the same
work: an argon2 verification (against a dummy hash when there is no real one to check).

**A throttle, not a lock-out.** Locking an account after N bad passwords let anyone lock approvers out. Now,
after ``login_max_failures`` bad passwords in a row, each further bad password makes the account wait
before its next attempt counts: 1 s, then 2, 4, 8 … up to ``login_lockout_s``. An attempt during the wait
is refused like a wrong password (without looking at the password) and does not lengthen the wait; the
first right password after it signs in and resets the count. A guesser gets one try per wait at most;
the real user waits at most ``login_lockout_s``.

**Tenants own their people** (DESIGN §13): a tenant admin never sets the password of, or disables, a user
who also belongs to another tenant; a system administrator may. Setting a password records
``credentials_changed_at``: console sessions signed in and API tokens issued before it are refused.
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
from core.identity import members, rbac, scopes
from core.identity.permissions import Permission
from core.identity.principals import resolve_principal, verify
from core.identity.proofs import CLAIMED, PASSWORD, TOKEN, issue
from core.schemas import Principal
from core.transactions import session_scope
from db.clock import utcnow
from db.settings import get_settings
from db.tables import Membership, Tenant, User

MIN_PASSWORD_LENGTH = 8
# A token created, or a password confirmed, this recently counts as "asked again" for a high-risk approval.
REAUTH_WINDOW_S = 300
_HASHER = PasswordHasher()


class AuthenticationFailed(PermissionDenied):
    """Wrong username or password, unknown, disabled or throttled account: one answer for all, on purpose."""

    def __init__(self, message: str = "invalid username or password") -> None:
        super().__init__(message)


def hash_password(password: str) -> str:
    """An argon2id hash of ``password`` (salted; safe to store)."""
    return _HASHER.hash(password)


@lru_cache(maxsize=8)
def shared_hash(password: str) -> str:
    """One hash of a *public* password reused for many rows (the demo accounts): hashing is slow on purpose."""
    return hash_password(password)


def _spend_a_verification() -> None:
    """Do the work of one real check, so an answer without a real hash to check takes as long."""
    _verify(shared_hash("timing-equaliser"), "not-the-timing-equaliser")


def _verify(stored: str, password: str) -> bool:
    try:
        return _HASHER.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False


def check_password_strength(password: str) -> None:
    """Raise InvalidInput unless ``password`` is acceptable for a local account."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInput(f"must be at least {MIN_PASSWORD_LENGTH} characters", path="password")


def throttle_s(failures: int) -> float:
    """How long an account with ``failures`` bad passwords in a row waits before its next attempt counts."""
    settings = get_settings()
    excess = failures - settings.login_max_failures
    if excess < 0:
        return 0.0
    return float(min(settings.login_lockout_s, 2 ** min(excess, 30)))


def _check(session: Session, user: User | None, password: str) -> None:
    """Verify ``password`` for ``user``, counting failures and throttling; raises AuthenticationFailed."""
    now = utcnow()
    if user is None or user.disabled or not user.password_hash:
        _spend_a_verification()
        raise AuthenticationFailed()
    if user.locked_until is not None and user.locked_until > now:
        _spend_a_verification()  # throttled: refused like a wrong password, and the wait does not grow
        raise AuthenticationFailed()
    if _verify(user.password_hash, password):
        user.failed_logins = 0
        user.locked_until = None
        session.add(user)
        return
    user.failed_logins += 1
    wait_s = throttle_s(user.failed_logins)
    user.locked_until = now + timedelta(seconds=wait_s) if wait_s else None
    session.add(user)
    raise AuthenticationFailed()


def authenticate(username: str, password: str, tenant: str | None = None) -> Principal:
    """The principal of ``username`` if ``password`` is right (and the account not throttled).

    Raises:
        AuthenticationFailed: wrong username or password, unknown, disabled or throttled account (alike).
        NotFound / InvalidInput: with the right password only: no role in that tenant, several tenants.
    """
    name = username.strip().lower()
    _check_committed(lambda session: session.exec(select(User).where(User.username == name)).first(), password)
    with session_scope() as session:
        return resolve_principal(session, name, tenant, auth=PASSWORD)


def reauthenticate(principal: Principal, password: str) -> Principal:
    """Confirm the signed-in user's password again (before a high-risk approval); counts toward the throttle.

    Returns the principal re-issued as confirmed now (pass it to ``approve``). Raises AuthenticationFailed,
    or PermissionDenied for a principal core did not issue.
    """
    with session_scope() as session:
        verify(session, principal)
    _check_committed(lambda session: session.get(User, principal.user_id), password)
    with session_scope() as session:
        user, membership, tenant = _member_rows(session, principal)
        return issue(user, membership, tenant, auth=PASSWORD, scopes=principal.scopes, token_id=principal.token_id)


def _member_rows(session: Session, principal: Principal) -> tuple[User, Membership, Tenant]:
    user = session.get(User, principal.user_id)
    membership = session.get(Membership, (principal.tenant_id, principal.user_id))
    tenant = session.get(Tenant, principal.tenant_id)
    if user is None or membership is None or tenant is None:
        raise PermissionDenied(f"{principal.username} no longer has a role in {principal.tenant}")
    return user, membership, tenant


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


def recently_authenticated(principal: Principal) -> bool:
    """True if the principal's credential was presented within ``REAUTH_WINDOW_S`` (a claimed name: always).

    On a demo box a claimed name proves nothing to ask again for, so it counts as fresh.
    """
    if principal.auth == CLAIMED:
        return True
    if principal.authenticated_at is None:
        return False
    return (utcnow() - principal.authenticated_at).total_seconds() <= REAUTH_WINDOW_S


def require_fresh_for_level(principal: Principal, approval_level: int) -> None:
    """Refuse a decision at a re-authentication level unless the credential is fresh (see ``recently_authenticated``).

    Raises:
        PermissionDenied: saying how to confirm (the password again, or a token created in the last 5 minutes).
    """
    if needs_reauthentication(approval_level) and not recently_authenticated(principal):
        raise PermissionDenied(
            f"approving at level {approval_level} needs your password again "
            f"(or an API token with the approve scope created in the last {REAUTH_WINDOW_S // 60} minutes)"
        )


def _member_of_tenant(session: Session, principal: Principal, username: str) -> User:
    user = session.exec(
        select(User)
        .join(Membership, Membership.user_id == User.id)  # type: ignore[arg-type]
        .where(User.username == username, Membership.tenant_id == principal.tenant_id)
    ).first()
    if user is None:
        raise NotFound("user", username)
    return user


def set_password(principal: Principal, username: str, password: str) -> None:
    """Set (or reset) a member's password and lift any throttle. Admins for members, anyone for themselves.

    Signs out the user's console sessions and refuses their API tokens issued before now.

    Raises:
        PermissionDenied: not an admin; the user also belongs to another tenant (only a system administrator
            may); your own password with an API token that lacks the admin scope.
        NotFound: no such member of this tenant. InvalidInput: too short.
    """
    check_password_strength(password)
    with session_scope() as session:
        own = username == principal.username
        if own:
            rbac.require(session, principal, Permission.READ)
            if principal.auth == TOKEN and scopes.ADMIN not in scopes.effective(principal.scopes):
                raise PermissionDenied("changing your password with an API token needs the admin scope")
        else:
            rbac.require(session, principal, Permission.ADMIN)
        user = _member_of_tenant(session, principal, username)
        if not own:
            members.require_owned(session, principal, user, "set the password of")
        now = utcnow()
        user.password_hash = hash_password(password)
        user.failed_logins = 0
        user.locked_until = None
        user.credentials_changed_at = now
        session.add(user)
        record_admin_event(session, principal, "password_set", username)  # the event, never the password


def set_user_disabled(principal: Principal, username: str, disabled: bool = True) -> None:
    """Disable (or enable again) a member's account everywhere: sign-in, tokens and roles stop working (admin).

    Raises:
        InvalidInput: your own account. PermissionDenied: not an admin, or the user also belongs to another
            tenant (only a system administrator may). NotFound: no such member of this tenant.
    """
    if username == principal.username:
        raise InvalidInput("you cannot disable your own account", path="username")
    with session_scope() as session:
        rbac.require(session, principal, Permission.ADMIN)
        user = _member_of_tenant(session, principal, username)
        members.require_owned(session, principal, user, "disable" if disabled else "enable")
        user.disabled = disabled
        session.add(user)
        record_admin_event(session, principal, "user_disabled" if disabled else "user_enabled", username)


def needs_reauthentication(approval_level: int) -> bool:
    """True if approving at this level asks for the password again (setting ``reauth_approval_level``)."""
    return approval_level >= get_settings().reauth_approval_level

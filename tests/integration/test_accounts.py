"""Local accounts: argon2 hashes, sign-in, the throttle after repeated failures, re-authentication, and the
runbook library (on both databases)."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlmodel import select

from core import (
    AuthenticationFailed,
    InvalidInput,
    NotFound,
    PermissionDenied,
    authenticate,
    delete_runbook,
    list_runbooks,
    principal,
    reauthenticate,
    save_runbook,
    set_password,
    submit,
)
from core.ops.setup import DEMO_PASSWORD, DEMO_RUNBOOKS
from core.transactions import session_scope
from db.settings import get_settings
from db.tables import User
from tests.factories import throttle_ends_in


def _user(username: str) -> User:
    with session_scope() as session:
        user = session.exec(select(User).where(User.username == username)).one()
        session.expunge(user)
        return user


def test_demo_accounts_sign_in_with_the_demo_password_and_only_the_hash_is_stored(db: str) -> None:
    who = authenticate("alice", DEMO_PASSWORD)
    assert (who.username, who.tenant, who.role.value) == ("alice", "demo", "operator")
    stored = _user("alice").password_hash or ""
    assert stored.startswith("$argon2id$") and DEMO_PASSWORD not in stored


def test_a_wrong_password_and_an_unknown_user_fail_alike(db: str) -> None:
    with pytest.raises(AuthenticationFailed) as wrong:
        authenticate("alice", "not-the-password")
    with pytest.raises(AuthenticationFailed) as unknown:
        authenticate("nobody", "whatever-it-is")
    assert str(wrong.value) == str(unknown.value) == "invalid username or password"


def test_repeated_failures_throttle_the_account_then_the_right_password_signs_in(
    db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After max failures the account waits (1 s, doubling): the right password is refused alike during the
    wait, and works after it; nobody can lock the real user out (issue 12)."""
    monkeypatch.setenv("OPSC_LOGIN_MAX_FAILURES", "3")
    get_settings.cache_clear()
    for _ in range(3):
        with pytest.raises(AuthenticationFailed):
            authenticate("bob", "guess-guess")
    locked_until = _user("bob").locked_until
    assert locked_until is not None
    # Hold the clock inside the wait (a loaded machine can take longer than 1 s to get here): still refused.
    throttle_ends_in("bob", dt.timedelta(minutes=5))
    with pytest.raises(AuthenticationFailed) as throttled:
        authenticate("bob", DEMO_PASSWORD)
    assert str(throttled.value) == "invalid username or password"
    # Other accounts are unaffected; once the wait is over the right password signs bob in and resets the count.
    authenticate("carol", DEMO_PASSWORD)
    throttle_ends_in("bob", -dt.timedelta(seconds=1))
    assert authenticate("bob", DEMO_PASSWORD).username == "bob"
    assert _user("bob").failed_logins == 0 and _user("bob").locked_until is None


def test_a_good_password_resets_the_failure_count(db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPSC_LOGIN_MAX_FAILURES", "2")
    get_settings.cache_clear()
    with pytest.raises(AuthenticationFailed):
        authenticate("carol", "guess-guess")
    authenticate("carol", DEMO_PASSWORD)
    with pytest.raises(AuthenticationFailed):
        authenticate("carol", "guess-guess")
    assert _user("carol").failed_logins == 1 and _user("carol").locked_until is None


def test_reauthentication_checks_the_signed_in_users_own_password(db: str) -> None:
    bob = principal("bob", "demo")
    reauthenticate(bob, DEMO_PASSWORD)
    with pytest.raises(AuthenticationFailed):
        reauthenticate(bob, "not-bobs-password")


def test_passwords_are_set_by_admins_or_by_the_user_and_must_be_long_enough(db: str) -> None:
    with pytest.raises(InvalidInput) as short:
        set_password(principal("admin", "demo"), "alice", "short")
    assert short.value.path == "password"
    with pytest.raises(PermissionDenied):
        set_password(principal("alice", "demo"), "bob", "long-enough-password")
    set_password(principal("alice", "demo"), "alice", "alices-own-password")
    assert authenticate("alice", "alices-own-password").username == "alice"
    # An admin of globex cannot reach a demo-only user.
    with pytest.raises(NotFound):
        set_password(principal("admin", "globex"), "bob", "long-enough-password")


def test_the_runbook_library_is_seeded_validated_and_tenant_scoped(db: str) -> None:
    alice = principal("alice", "demo")
    names = [r.name for r in list_runbooks(alice)]
    assert names == sorted(name for name, _d, _p in DEMO_RUNBOOKS)
    disk = next(r for r in list_runbooks(alice) if r.name == "Disk usage")
    assert submit(alice, disk.plan_text).execution.status == "completed"

    with pytest.raises(InvalidInput) as bad:
        save_runbook(alice, "broken", "name: x\nsteps:\n  - {name: a, action: nope, target: localhost}\n")
    assert bad.value.path.startswith("steps[0]")
    saved = save_runbook(alice, "echo", "name: echo\nsteps:\n  - {name: a, action: noop, target: localhost}\n")
    assert saved.updated_by == "alice"
    assert "echo" not in [r.name for r in list_runbooks(principal("mallory", "globex"))]
    with pytest.raises(PermissionDenied):
        save_runbook(principal("dave", "demo"), "viewer", saved.plan_text)
    with pytest.raises(NotFound):
        delete_runbook(principal("mallory", "globex"), "echo")
    delete_runbook(alice, "echo")
    assert "echo" not in [r.name for r in list_runbooks(alice)]

"""Console sessions from the attacker's side (issue 16 item 2), on both databases: a token that survives reload
must be unforgeable, bound to its user and tenant, expiring, and dead after sign-out.

The attacker here holds what a browser or a database dump could give: a token of their own, guesses, another
installation's key, and write access to the ``console_sessions`` rows."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import timedelta

import pytest
from sqlalchemy import update
from sqlmodel import col, select

from core import (
    PermissionDenied,
    Role,
    authenticate,
    console_session_principal,
    end_console_session,
    principal,
    remove_member,
    session_token_for,
    set_member,
    set_password,
    set_user_disabled,
    start_console_session,
)
from core.ops.setup import DEMO_PASSWORD
from core.transactions import session_scope
from db.clock import utcnow
from db.settings import get_settings
from db.tables import ConsoleSession, Tenant, User


def _signed_in(username: str = "alice", tenant: str = "demo") -> tuple[str, str]:
    """A password sign-in's (token, one-time code)."""
    return start_console_session(authenticate(username, DEMO_PASSWORD, tenant))


def _session_id(token: str) -> str:
    return token.split(".")[1]


def _edit(token: str, **values: object) -> None:
    with session_scope() as session:
        session.execute(update(ConsoleSession).where(col(ConsoleSession.id) == _session_id(token)).values(**values))


def test_the_token_restores_its_user_in_its_tenant_with_the_role_of_now(db: str) -> None:
    token, _code = _signed_in("bob")
    who = console_session_principal(token)
    assert (who.username, who.tenant, who.role.value, who.auth) == ("bob", "demo", "approver", "password")
    set_member(principal("admin", "demo"), "bob", Role.VIEWER)
    assert console_session_principal(token).role.value == "viewer"  # re-read on every check


def test_the_one_time_code_gives_the_same_token_once(db: str) -> None:
    token, code = _signed_in()
    assert session_token_for(code) == token
    with pytest.raises(PermissionDenied):
        session_token_for(code)  # used
    _other, late = _signed_in()
    with session_scope() as session:
        session.execute(update(ConsoleSession).values(handoff_expires_at=utcnow() - timedelta(seconds=1)))
    with pytest.raises(PermissionDenied):
        session_token_for(late)  # expired
    for guess in ("", "x" * 43, "x" * 500):
        with pytest.raises(PermissionDenied):
            session_token_for(guess)


@pytest.mark.parametrize(
    "forge",
    [
        lambda t: t[:-2] + ("AA" if not t.endswith("AA") else "BB"),  # MAC altered
        lambda t: t.rsplit(".", 1)[0] + ".",  # MAC dropped
        lambda t: "opsc1." + "0" * 32 + "." + t.rsplit(".", 1)[1],  # another id, this MAC
        lambda t: "opsc2." + t.split(".", 1)[1],  # another version
        lambda t: t + ".extra",
        lambda t: t.upper(),
        lambda t: "",
        lambda t: "opsc1." + "a" * 5000,
        lambda t: t.rsplit(".", 1)[0] + ".\u00e9" + t.rsplit(".", 1)[1][1:],  # non-ASCII (a cookie's latin-1)
        lambda t: t.rsplit(".", 1)[0] + ".\x00",
    ],
)
def test_forged_or_altered_tokens_are_refused(db: str, forge: object) -> None:
    token, _code = _signed_in()
    with pytest.raises(PermissionDenied, match="not valid"):
        console_session_principal(forge(token))  # type: ignore[operator]
    assert end_console_session(forge(token)) is False  # type: ignore[operator]  (the sign-out route's call)


def test_a_token_signed_with_another_installations_key_is_refused(db: str) -> None:
    """The attacker knows the row (id, user, tenant, time) and the format, but not this console's key."""
    token, _code = _signed_in()
    with session_scope() as session:
        row = session.get(ConsoleSession, _session_id(token))
        assert row is not None
        started = row.created_at.replace(tzinfo=None).isoformat(timespec="seconds")
        body = f"opsc1\x00{row.id}\x00{row.user_id}\x00{row.tenant_id}\x00{started}".encode()
    other_key = hashlib.sha256(b"opsconductor/console-session/v1\x00" + b"k" * 48).digest()
    mac = base64.urlsafe_b64encode(hmac.new(other_key, body, hashlib.sha256).digest()).rstrip(b"=").decode()
    with pytest.raises(PermissionDenied, match="not valid"):
        console_session_principal(f"opsc1.{row.id}.{mac}")


def test_a_row_pointed_at_another_user_or_tenant_no_longer_matches_its_token(db: str) -> None:
    """Database write access alone does not turn mallory's session into alice's, or globex's into demo's."""
    token, _code = _signed_in("mallory", "globex")
    assert console_session_principal(token).tenant == "globex"
    with session_scope() as session:
        alice = session.exec(select(User).where(User.username == "alice")).one()
        demo = session.exec(select(Tenant).where(Tenant.name == "demo")).one()
        alice_id, demo_id = alice.id, demo.id
    with session_scope() as session:
        row = session.get(ConsoleSession, _session_id(token))
        assert row is not None
        original = {"user_id": row.user_id, "tenant_id": row.tenant_id}
    for change in ({"tenant_id": demo_id}, {"user_id": alice_id}, {"created_at": utcnow() - timedelta(hours=1)}):
        _edit(token, **change)
        with pytest.raises(PermissionDenied, match="not valid"):
            console_session_principal(token)
        _edit(token, **original)


def test_a_row_written_with_a_chosen_one_time_code_does_not_mint_a_session(db: str) -> None:
    """Write access to the table without the key: a row for admin with the hash of the writer's own code (as a
    plain SHA-256 would store it) trades for nothing, however the hash is spelt."""
    code = "attacker-chosen-code-" + "x" * 20
    with session_scope() as session:
        admin = session.exec(select(User).where(User.username == "admin")).one()
        demo = session.exec(select(Tenant).where(Tenant.name == "demo")).one()
        now = utcnow()
        for digest in (hashlib.sha256(code.encode()).hexdigest(), hashlib.sha256(code.encode()).hexdigest().upper()):
            session.add(
                ConsoleSession(
                    user_id=admin.id, tenant_id=demo.id, auth="password", created_at=now, last_seen_at=now,
                    expires_at=now + timedelta(hours=1), handoff_hash=digest,
                    handoff_expires_at=now + timedelta(seconds=60),
                )
            )  # fmt: skip
    with pytest.raises(PermissionDenied, match="not valid"):
        session_token_for(code)


def test_signing_out_ends_the_session_for_every_tab(db: str) -> None:
    token, _code = _signed_in()
    console_session_principal(token)  # tab 1
    assert end_console_session(token) is True
    with pytest.raises(PermissionDenied, match="signed out"):
        console_session_principal(token)  # tab 2, or a reload
    assert end_console_session(token) is False  # twice: nothing more to end
    assert end_console_session("opsc1." + "0" * 32 + ".x") is False


def test_an_idle_session_expires_and_activity_keeps_it(db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    token, _code = _signed_in()
    idle_s = get_settings().session_idle_s
    _edit(token, last_seen_at=utcnow() - timedelta(seconds=idle_s - 60))
    console_session_principal(token)  # still in time: counts as activity
    with session_scope() as session:
        row = session.get(ConsoleSession, _session_id(token))
        assert row is not None and utcnow() - row.last_seen_at < timedelta(seconds=60)
    _edit(token, last_seen_at=utcnow() - timedelta(seconds=idle_s + 1))
    with pytest.raises(PermissionDenied, match="inactivity"):
        console_session_principal(token)


def test_a_session_ends_at_its_time_limit_however_active(db: str) -> None:
    token, _code = _signed_in()
    _edit(token, expires_at=utcnow() - timedelta(seconds=1))
    with pytest.raises(PermissionDenied, match="time limit"):
        console_session_principal(token)


def test_a_password_change_a_disabled_user_or_a_lost_role_end_the_session(db: str) -> None:
    admin = principal("admin", "demo")
    token, _code = _signed_in("bob")
    set_password(admin, "bob", "a-brand-new-password")
    with pytest.raises(PermissionDenied, match="password changed"):
        console_session_principal(token)
    token = start_console_session(authenticate("bob", "a-brand-new-password", "demo"))[0]
    console_session_principal(token)
    set_user_disabled(admin, "bob", True)
    with pytest.raises(PermissionDenied):
        console_session_principal(token)
    carol, _code = _signed_in("carol")
    remove_member(admin, "carol")
    with pytest.raises(PermissionDenied, match="no longer have a role"):
        console_session_principal(carol)


def test_only_a_password_or_single_sign_on_starts_a_session(db: str) -> None:
    with pytest.raises(PermissionDenied):
        start_console_session(principal("alice", "demo"))  # a claimed name


def test_a_new_sign_in_clears_the_users_ended_sessions_only(db: str) -> None:
    ended, _code = _signed_in()
    end_console_session(ended)
    idle, _code = _signed_in()
    _edit(idle, last_seen_at=utcnow() - timedelta(seconds=get_settings().session_idle_s + 1))
    open_tab, _code = _signed_in()
    bobs, _code = _signed_in("bob")
    end_console_session(bobs)
    _signed_in()  # alice again
    with session_scope() as session:
        left = {row.id for row in session.exec(select(ConsoleSession)).all()}
    assert _session_id(ended) not in left and _session_id(idle) not in left
    assert _session_id(open_tab) in left  # still usable: kept
    assert _session_id(bobs) in left  # another user's: his next sign-in clears it


def test_a_check_that_is_not_activity_leaves_the_idle_clock_running(db: str) -> None:
    """A live view refreshing itself checks the session without keeping it alive."""
    token, _code = _signed_in()
    idle_s = get_settings().session_idle_s
    _edit(token, last_seen_at=utcnow() - timedelta(seconds=idle_s - 60))
    console_session_principal(token, activity=False)
    with session_scope() as session:
        row = session.get(ConsoleSession, _session_id(token))
        assert row is not None and utcnow() - row.last_seen_at > timedelta(seconds=idle_s - 61)

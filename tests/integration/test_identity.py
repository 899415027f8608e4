"""Identity from the attacker's side (issue 12, DESIGN §13), on both databases: forged principals, claimed
names outside demo boxes, API tokens (scopes, revocation, expiry, password changes), tenants owning their
people, system administrators owning the policy matrix, and sign-in answers that say nothing."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from sqlalchemy import update
from sqlmodel import col, select

from core import (
    IDENTITY_HINT,
    ActionClass,
    AuthenticationFailed,
    NotFound,
    PermissionDenied,
    PolicyValues,
    Principal,
    Role,
    SlaClass,
    approve,
    authenticate,
    create_token,
    list_admin_events,
    list_executions,
    list_policies,
    list_tokens,
    principal,
    principal_from_token,
    reauthenticate,
    revoke_token,
    session_valid,
    set_member,
    set_password,
    set_user_disabled,
    submit,
    update_policy,
)
from core.identity.installation import set_claimed_identity
from core.ops.setup import DEMO_PASSWORD
from core.transactions import session_scope
from db.clock import utcnow
from db.settings import get_settings
from db.tables import ApiToken, Execution, User
from tests.factories import noop_plan, plan_text

DAY_S = 86400


def _production() -> None:
    with session_scope() as session:
        set_claimed_identity(session, False)


def _token(who: Principal, scopes: str = "read,submit,approve,admin", **kwargs: object) -> str:
    _view, value = create_token(who, name=f"t-{time.monotonic_ns()}", scopes=scopes, expires_in_s=DAY_S, **kwargs)  # type: ignore[arg-type]
    return value


# forged principals --------------------------------------------------------------------------------


def test_a_hand_built_principal_is_refused_by_submit_approve_and_set_password(db: str) -> None:
    real = principal("admin", "demo")
    forged = Principal(
        tenant_id=real.tenant_id, tenant="demo", user_id=real.user_id, username="admin", role=Role.ADMIN,
        auth="password", scopes=real.scopes,
    )  # fmt: skip
    pending = submit(principal("alice", "demo"), plan_text("p", action_class="modify")).execution.execution_id
    for call in (
        lambda: submit(forged, noop_plan()),
        lambda: approve(forged, pending),
        lambda: set_password(forged, "bob", "a-long-new-password"),
        lambda: list_executions(forged),
    ):
        with pytest.raises(PermissionDenied, match="not issued by OpsConductor"):
            call()
    # A genuine principal copied with another name, or a stolen proof on another body, is refused too.
    alice = principal("alice", "demo")
    as_bob = alice.model_copy(update={"username": "bob", "user_id": principal("bob", "demo").user_id})
    with pytest.raises(PermissionDenied):
        approve(as_bob, pending)
    with pytest.raises(PermissionDenied):
        submit(forged.model_copy(update={"proof": real.proof}), noop_plan())
    assert not session_valid(forged)


def test_claimed_names_are_refused_outside_a_demo_box_with_the_hint(db: str) -> None:
    _production()
    with pytest.raises(PermissionDenied) as refused:
        principal("alice", "demo")
    assert IDENTITY_HINT in str(refused.value)
    assert authenticate("alice", DEMO_PASSWORD).auth == "password"  # passwords still work


# tokens -------------------------------------------------------------------------------------------


def test_a_token_is_its_users_identity_and_is_stored_only_hashed(db: str) -> None:
    _production()
    alice = authenticate("alice", DEMO_PASSWORD)
    view, value = create_token(alice, name="ci", scopes="submit", expires_in_s=DAY_S)
    assert value.startswith("opsc_") and view.scopes == ["submit"] and view.prefix == value[:12]
    with session_scope() as session:
        stored = session.exec(select(ApiToken)).one()
        assert value not in (stored.token_hash, stored.prefix, stored.name) and len(stored.token_hash) == 64
    who = principal_from_token(value)
    assert (who.username, who.tenant, who.auth, who.scopes) == ("alice", "demo", "token", ("submit",))
    execution = submit(who, noop_plan()).execution
    with session_scope() as session:
        requester = session.get(User, session.get(Execution, execution.execution_id).requested_by)  # type: ignore[union-attr]
        assert requester is not None and requester.username == "alice"
    assert [t.last_used_at is not None for t in list_tokens(who)] == [True]
    events = list_admin_events(principal_from_token(_token(authenticate("admin", DEMO_PASSWORD, "demo"))))
    assert any(e.action == "token_created" and e.actor == "alice" and e.subject == "alice/ci" for e in events)


def test_scopes_limit_a_token_and_cannot_be_widened_by_it(db: str) -> None:
    reader = principal_from_token(_token(principal("admin", "demo"), "read"))
    assert list_executions(reader) == []
    with pytest.raises(PermissionDenied, match="lacks the submit scope"):
        submit(reader, noop_plan())
    with pytest.raises(PermissionDenied, match="lacks the admin scope"):
        set_member(reader, "erin", Role.VIEWER)
    with pytest.raises(PermissionDenied, match="scopes you do not hold"):
        create_token(reader, name="wider", scopes="admin", expires_in_s=DAY_S)
    with pytest.raises(PermissionDenied, match="admin scope"):
        set_password(reader, "admin", "a-long-new-password")  # a read token cannot take over the account
    # A token it makes lives no longer than itself.
    _view, child = create_token(reader, name="child", scopes="read", expires_in_s=300 * DAY_S)
    assert list_tokens(reader)[0].expires_at <= utcnow() + timedelta(days=1, seconds=5)
    assert principal_from_token(child).scopes == ("read",)


def test_revoked_expired_and_pre_password_change_tokens_are_refused(db: str) -> None:
    bob = principal("bob", "demo")
    revoked, expired, old = _token(bob), _token(bob), _token(bob)
    revoked_id = next(t.id for t in list_tokens(bob) if t.prefix == revoked[:12])
    held = principal_from_token(revoked)
    revoke_token(bob, revoked_id)
    with pytest.raises(PermissionDenied, match="revoked"):
        principal_from_token(revoked)
    with pytest.raises(PermissionDenied, match="revoked"):
        list_executions(held)  # a principal already made from it stops at once too
    with session_scope() as session:
        session.execute(
            update(ApiToken).where(col(ApiToken.prefix) == expired[:12]).values(expires_at=utcnow() - timedelta(1))
        )
    with pytest.raises(PermissionDenied, match="expired"):
        principal_from_token(expired)
    with pytest.raises(PermissionDenied, match="unknown"):
        principal_from_token("opsc_" + "x" * 43)
    set_password(principal("admin", "demo"), "bob", "bobs-new-password")
    with pytest.raises(PermissionDenied, match="password changed"):
        principal_from_token(old)
    assert principal_from_token(_token(bob)).username == "bob"  # a new one works


def test_a_disabled_user_signs_in_and_uses_tokens_no_more(db: str) -> None:
    carol_token = _token(principal("carol", "demo"))
    signed_in = authenticate("carol", DEMO_PASSWORD)
    set_user_disabled(principal("admin", "demo"), "carol")
    with pytest.raises(PermissionDenied):
        principal_from_token(carol_token)
    with pytest.raises(AuthenticationFailed):
        authenticate("carol", DEMO_PASSWORD)
    assert not session_valid(signed_in)


def test_a_service_account_token_may_not_approve(db: str) -> None:
    admin = principal("admin", "demo")
    set_member(admin, "ci-bot", Role.OPERATOR)
    with pytest.raises(PermissionDenied, match="approve"):
        create_token(admin, name="bot", scopes="approve", expires_in_s=DAY_S, for_user="ci-bot")
    bot = principal_from_token(_token(admin, "submit", for_user="ci-bot"))
    assert bot.username == "ci-bot" and submit(bot, noop_plan()).execution.status == "completed"
    with pytest.raises(PermissionDenied):
        create_token(principal("alice", "demo"), name="x", scopes="read", expires_in_s=DAY_S, for_user="bob")


def test_an_old_token_cannot_approve_a_high_level_without_the_password(db: str) -> None:
    plan = plan_text("deploy", action_class="deploy")  # level 2: the password is asked again
    pending = submit(principal("alice", "demo"), plan).execution.execution_id
    value = _token(principal("bob", "demo"), "approve")
    with session_scope() as session:
        session.execute(update(ApiToken).values(created_at=utcnow() - timedelta(minutes=10)))
    bob = principal_from_token(value)
    with pytest.raises(PermissionDenied, match="password again"):
        approve(bob, pending)
    assert approve(reauthenticate(bob, DEMO_PASSWORD), pending).status in {"pending_approval", "approved", "queued"}


# tenants own their people -------------------------------------------------------------------------


def test_a_tenant_admin_cannot_take_over_another_tenants_user(db: str) -> None:
    system = principal("admin", "globex")  # the demo's admin is the system administrator
    set_member(system, "gadmin", Role.ADMIN)
    gadmin = principal("gadmin", "globex")
    with pytest.raises(PermissionDenied, match="belongs to another tenant"):
        set_member(gadmin, "bob", Role.OPERATOR)
    with pytest.raises(NotFound):
        set_password(gadmin, "bob", "gadmin-chose-this")  # not even told bob exists
    # Once bob also belongs to globex (a system administrator's doing), gadmin still cannot touch him.
    set_member(system, "bob", Role.VIEWER)
    for call in (
        lambda: set_password(gadmin, "bob", "gadmin-chose-this"),
        lambda: set_user_disabled(gadmin, "bob"),
        lambda: set_member(gadmin, "bob", Role.ADMIN),
    ):
        with pytest.raises(PermissionDenied, match="another tenant"):
            call()
    assert authenticate("bob", DEMO_PASSWORD, "demo").username == "bob"
    # A name nobody holds, or a user with no role anywhere, is the tenant's to take.
    assert set_member(gadmin, "newbie", Role.VIEWER).username == "newbie"


def test_only_a_system_administrator_edits_the_policy_matrix(db: str) -> None:
    system = principal("admin", "globex")
    set_member(system, "gadmin", Role.ADMIN)
    row = next(p for p in list_policies(system) if (p.sla_class, p.action_class) == ("fast", "read"))
    values = PolicyValues(row.step_s, row.execution_s, row.lease_s, row.approval_s, row.max_attempts)
    with pytest.raises(PermissionDenied, match="system administrator"):
        update_policy(principal("gadmin", "globex"), SlaClass.FAST, ActionClass.READ, values)
    assert update_policy(system, SlaClass.FAST, ActionClass.READ, values).step_s == row.step_s
    assert any(e.action == "policy_updated" for e in list_admin_events(system))


# sign-in ------------------------------------------------------------------------------------------


def test_sign_in_answers_alike_for_unknown_wrong_and_throttled(db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Same message, same type, about the same time: nothing tells a guesser which case it hit."""
    monkeypatch.setenv("OPSC_LOGIN_MAX_FAILURES", "1")
    monkeypatch.setenv("OPSC_LOGIN_LOCKOUT_S", "60")
    get_settings.cache_clear()

    def answer(username: str, password: str) -> tuple[str, str, float]:
        # This thread's CPU time, not wall time: the argon2 verification is CPU work done here, and a loaded
        # machine can stretch one wall-clock answer several times over.
        start = time.thread_time()
        with pytest.raises(AuthenticationFailed) as failed:
            authenticate(username, password)
        return type(failed.value).__name__, str(failed.value), time.thread_time() - start

    # Failures already counted, so the wrong answer locks carol for the whole 60 s (the first excess failure
    # would lock her 1 s, which a loaded machine's argon2 verification can outlast before the next answer).
    with session_scope() as session:
        session.execute(update(User).where(col(User.username) == "carol").values(failed_logins=10))
    wrong = answer("carol", "not-the-password")  # carol is now throttled
    throttled = answer("carol", DEMO_PASSWORD)
    unknown = answer("nobody-at-all", "whatever")
    assert wrong[:2] == throttled[:2] == unknown[:2] == ("AuthenticationFailed", "invalid username or password")
    slowest, fastest = max(wrong[2], throttled[2], unknown[2]), min(wrong[2], throttled[2], unknown[2])
    assert fastest > slowest / 4, (wrong, throttled, unknown)  # each did an argon2 verification

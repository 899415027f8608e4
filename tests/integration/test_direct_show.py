"""The one-shot reader of ``show`` (core/reads/direct.py, issue 15) against the ORM path, on both databases.

The contract: for an execution in any state, ``DirectReader.get_execution`` returns the ``ExecutionView``
that ``core.get_execution`` returns, field by field; and for any identity an attacker can present, it
refuses with the same error type and the same message as the ORM path (``principal_from_token``,
``principal``, ``principal_for``, then ``rbac.require(READ)``).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any, Protocol

import pytest
from sqlalchemy import update
from sqlalchemy.engine import URL, make_url
from sqlmodel import col, select

import core
from core import (
    CoreError,
    DirectReadUnavailable,
    ExecutionView,
    Principal,
    Role,
    TenantMode,
    approve,
    cancel,
    create_token,
    direct_reader,
    get_execution,
    list_tokens,
    principal,
    principal_from_token,
    reject,
    remove_member,
    revoke_token,
    set_member,
    set_password,
    set_tenant_mode,
    set_user_disabled,
    submit,
)
from core.identity.installation import set_claimed_identity
from core.ops.setup import DEMO_PASSWORD
from core.plans import canonical_json, plan_hash
from core.transactions import session_scope
from db.clock import utcnow
from db.dbapi import read_only
from db.tables import ApiToken, Asset, Execution, ExecutionStep, Tenant
from tests.factories import noop_plan, plan_text

DAY_S = 86400
SECRET_VALUE = "demo-demo-s3cr3t-value"  # what core/ops/setup.py seeds for demo_token in tenant demo


class Issuer(Protocol):
    """``core`` or a DirectReader: the three ways to a Principal that ``show`` uses (ui/cli/options.py)."""

    def principal_from_token(self, value: str) -> Principal: ...

    def principal(self, username: str, tenant: str | None = None) -> Principal: ...

    def principal_for(self, username: str, execution_id: str) -> Principal: ...


Identify = Callable[[Issuer], Principal]


def by_orm(identify: Identify, execution_id: str) -> ExecutionView:
    """What ``show`` printed before issue 15: core's principal, then ``core.get_execution``."""
    return get_execution(identify(core), execution_id)  # type: ignore[arg-type]


def by_direct(identify: Identify, execution_id: str) -> ExecutionView:
    """What ``show`` prints now: the direct reader's principal and view, on one DB-API connection."""
    with direct_reader() as reader:
        return reader.get_execution(identify(reader), execution_id)


def outcome(read: Callable[[], ExecutionView]) -> ExecutionView | tuple[type[CoreError], str]:
    """The view, or the refusal as (type, message): what a user of either path sees."""
    try:
        return read()
    except CoreError as exc:
        return type(exc), str(exc)


def claimed(name: str, tenant: str | None = None) -> Identify:
    return lambda via: via.principal(name, tenant)


def claimed_for(name: str, execution_id: str) -> Identify:
    return lambda via: via.principal_for(name, execution_id)


def token(value: str) -> Identify:
    return lambda via: via.principal_from_token(value)


def assert_same_view(execution_id: str, identify: Identify | None = None) -> ExecutionView:
    """The direct view equals the ORM's, field by field (and as the JSON ``show --json`` prints)."""
    who = identify or claimed_for("bob", execution_id)
    orm = by_orm(who, execution_id)
    direct = by_direct(who, execution_id)
    for field in ExecutionView.model_fields:
        assert getattr(direct, field) == getattr(orm, field), field
    assert direct.model_dump(mode="json") == orm.model_dump(mode="json")
    return orm


def assert_same_refusal(identify: Identify, execution_id: str) -> tuple[type[CoreError], str]:
    """Both paths refuse, with the same error type and message; returns them."""
    orm = outcome(lambda: by_orm(identify, execution_id))
    direct = outcome(lambda: by_direct(identify, execution_id))
    assert isinstance(orm, tuple), f"the ORM path did not refuse: {orm}"
    assert direct == orm
    return orm


def _submit(plan: str, user: str = "alice", **kwargs: Any) -> str:
    return submit(principal(user, "demo"), plan, **kwargs).execution.execution_id


def _token(who: Principal, scopes: str = "read,submit,approve,admin") -> str:
    _view, value = create_token(who, name=f"t-{time.monotonic_ns()}", scopes=scopes, expires_in_s=DAY_S)
    return value


def _shell(name: str, command: str) -> str:
    ref = "{{ secret:demo_token }}"
    return (
        f"name: {name}\ndescription: nightly fetch\nsteps:\n"
        f"  - {{name: fetch, action: shell, target: localhost, params: {{command: [{command}], env: {{TOKEN: '{ref}'}}}}}}\n"
        "  - {name: rest, action: sleep, target: localhost, timeout_s: 3, params: {seconds: 1}}\n"
    )


def _edit(execution_id: str, **values: Any) -> None:
    with session_scope() as session:
        session.execute(update(Execution).where(col(Execution.id) == execution_id).values(**values))


# the view: every state, field by field ---------------------------------------------------------------


def test_a_pending_approval_with_a_secret_reference_reads_the_same(db: str) -> None:
    """Pending (level 1), params carrying a secret reference, a dry run, a description, limits, expiry."""
    execution_id = _submit(_shell("fetch", "printenv, TOKEN"))
    view = assert_same_view(execution_id)
    assert (view.status, view.approval_level, view.plan_intact) == ("pending_approval", 1, True)
    assert view.approval_expires_at is not None and view.steps[0].dry_run and view.steps[1].step_limit_s == 3
    assert SECRET_VALUE not in view.model_dump_json()


def test_approvals_rejections_and_their_comments_read_the_same(db: str) -> None:
    """Level 2 with one approval of two, and with both (in order); a rejected plan; an approved (queued) one."""
    one_of_two = _submit(plan_text("one-of-two", action_class="deploy"))
    approve(principal("bob", "demo"), one_of_two, comment="looks fine")
    two = _submit(plan_text("two", action_class="deploy"))
    approve(principal("carol", "demo"), two)
    approve(principal("bob", "demo"), two, comment="second")
    rejected = _submit(plan_text("declined", action_class="modify"))
    reject(principal("carol", "demo"), rejected, comment="not today")
    queued = _submit(plan_text("accepted", action_class="modify"))
    approve(principal("bob", "demo"), queued)
    assert [a.approver for a in assert_same_view(one_of_two).approvals] == ["bob"]
    assert [a.approver for a in assert_same_view(two).approvals] == ["carol", "bob"]
    assert assert_same_view(rejected).status == "rejected"
    assert assert_same_view(queued).status == "queued"


def test_completed_failed_and_cancelled_runs_read_the_same(db: str) -> None:
    """Level 0 plans that ran at once (output, times, a step error, the execution's error), and a cancel."""
    done = _submit(plan_text("ok", command="echo hello"))
    failed = _submit(plan_text("bad", command="false"))
    cancelled = _submit(noop_plan("c", level=1))
    cancel(principal("alice", "demo"), cancelled, reason="changed my mind")
    assert assert_same_view(done).steps[0].output
    view = assert_same_view(failed)
    assert view.status == "failed" and view.error and view.steps[0].error
    assert assert_same_view(cancelled).status == "cancelled"


def test_a_running_dry_run_with_a_deadline_and_a_cancel_request_reads_the_same(db: str) -> None:
    """A dry-run tenant's execution, marked running with a deadline and a cancel request (row state only)."""
    set_tenant_mode(principal("admin", "demo"), TenantMode.DRY_RUN)
    execution_id = _submit(plan_text("dry", action_class="modify"))
    now = utcnow()
    _edit(execution_id, status="running", started_at=now, deadline_at=now + timedelta(seconds=15),
          cancel_requested_at=now, attempt=2)  # fmt: skip
    view = assert_same_view(execution_id)
    assert (view.run_mode, view.status, view.attempt) == ("dry_run", "running", 2)
    assert view.deadline_at is not None and view.cancel_requested_at is not None


def test_a_rerun_with_a_change_shows_the_same_diff(db: str) -> None:
    """The third run of an approved plan name differs from it: the same diff, compared with the approved run,
    never with a rejected one in between, nor with a later approved run of the same name in another tenant."""
    first = _submit(_shell("nightly", "echo, one"), idempotency_key="k1")
    approve(principal("bob", "demo"), first)
    rejected = _submit(_shell("nightly", "echo, rejected"), idempotency_key="k2")
    reject(principal("bob", "demo"), rejected)
    globex = submit(principal("mallory", "globex"), _shell("nightly", "echo, theirs")).execution.execution_id
    approve(principal("admin", "globex"), globex)
    second = _submit(_shell("nightly", "echo, two"), idempotency_key="k3")
    view = assert_same_view(second)
    assert view.compared_with == first and view.changes_since_approved
    assert SECRET_VALUE not in (view.changes_since_approved or "")


def test_a_plan_that_no_longer_matches_its_hash_reads_the_same(db: str) -> None:
    """The stored text edited after the fact: plan_intact False, the steps from the rows, no params."""
    execution_id = _submit(plan_text("tampered", action_class="modify"))
    with session_scope() as session:
        row = session.get(Execution, execution_id)
        assert row is not None
        edited = row.plan_json.replace("echo hi", "rm -rf /")
    _edit(execution_id, plan_json=edited)
    view = assert_same_view(execution_id)
    assert view.plan_intact is False and view.steps[0].params is None


def test_step_rows_that_disagree_with_the_plan_read_the_same(db: str) -> None:
    """A step row's copy edited: the plan still shows what runs, and plan_intact is False."""
    execution_id = _submit(plan_text("rows", action_class="modify"))
    with session_scope() as session:
        session.execute(
            update(ExecutionStep).where(col(ExecutionStep.execution_id) == execution_id).values(name="renamed")
        )
    view = assert_same_view(execution_id)
    assert view.plan_intact is False and view.steps[0].name == "s0"


def test_a_missing_asset_and_another_tenants_asset_read_the_same(db: str) -> None:
    """A plan rewritten (hash recomputed) to name an unknown asset, or another tenant's: both read as missing."""
    with session_scope() as session:
        globex = session.exec(select(Tenant.id).where(Tenant.name == "globex")).one()
        theirs = session.exec(select(Asset.id).where(Asset.tenant_id == globex)).one()
    for target in ("f" * 32, theirs):
        execution_id = _submit(plan_text(f"moved-{target[:4]}", action_class="modify"))
        with session_scope() as session:
            row = session.get(Execution, execution_id)
            assert row is not None
            data = json.loads(row.plan_json)
            data["steps"][0]["target"] = target
            text = canonical_json(data)
            row.plan_json, row.plan_hash = text, plan_hash(text)
            session.add(row)
        view = assert_same_view(execution_id)
        assert view.steps[0].target == f"(asset {target[:8]} not found)"


def test_an_execution_of_another_tenant_is_not_found_alike(db: str) -> None:
    """mallory (globex) asks for a demo execution: by claimed name, with --tenant, and with her token."""
    execution_id = _submit(noop_plan("mine", level=1))
    assert assert_same_refusal(claimed_for("mallory", execution_id), execution_id)[0] is core.NotFound
    assert assert_same_refusal(claimed("mallory", "globex"), execution_id)[0] is core.NotFound
    assert assert_same_refusal(claimed("admin", "globex"), execution_id)[0] is core.NotFound
    mallorys = _token(principal("mallory", "globex"))
    principal_from_token(mallorys)  # its first use is recorded by the ORM path (see the last-use test)
    assert assert_same_refusal(token(mallorys), execution_id)[0] is core.NotFound
    assert assert_same_refusal(claimed_for("bob", "0" * 32), "0" * 32)[1] == f"execution '{'0' * 32}' not found"


# identity from the attacker's side ---------------------------------------------------------------------


def test_tokens_revoked_expired_unknown_or_older_than_the_password_are_refused_alike(db: str) -> None:
    """Each refusal of principal_from_token, and a principal made from a token revoked since."""
    execution_id = _submit(noop_plan("t", level=1))
    bob = principal("bob", "demo")
    revoked, expired, old = _token(bob), _token(bob), _token(bob)
    held = principal_from_token(revoked)
    revoke_token(bob, next(t.id for t in list_tokens(bob) if t.prefix == revoked[:12]))
    assert "revoked" in assert_same_refusal(token(revoked), execution_id)[1]
    assert "revoked" in assert_same_refusal(lambda _via: held, execution_id)[1]
    with session_scope() as session:
        session.execute(
            update(ApiToken).where(col(ApiToken.prefix) == expired[:12]).values(expires_at=utcnow() - timedelta(1))
        )
    assert "expired" in assert_same_refusal(token(expired), execution_id)[1]
    assert "unknown" in assert_same_refusal(token("opsc_" + "x" * 43), execution_id)[1]
    assert "not an OpsConductor" in assert_same_refusal(token("ghp_something"), execution_id)[1]
    set_password(principal("admin", "demo"), "bob", "bobs-new-password")
    assert "password changed" in assert_same_refusal(token(old), execution_id)[1]


def test_a_token_reads_the_same_view_once_its_last_use_is_recorded(db: str) -> None:
    """A token's last use is written at most once a minute, by the ORM path: until then the direct reader steps
    aside (DirectReadUnavailable); after it, both read the same view, and the direct read writes nothing."""
    execution_id = _submit(noop_plan("tok", level=1))
    value = _token(principal("bob", "demo"), "read")
    with pytest.raises(DirectReadUnavailable), direct_reader() as reader:
        reader.principal_from_token(value)
    assert assert_same_view(execution_id, token(value)).execution_id == execution_id  # the ORM read goes first
    used = [t.last_used_at for t in list_tokens(principal("bob", "demo"))]
    by_direct(token(value), execution_id)
    assert [t.last_used_at for t in list_tokens(principal("bob", "demo"))] == used


def test_claimed_names_on_an_installation_that_does_not_accept_them_are_refused_alike(db: str) -> None:
    """Production box: --as is refused with the hint, with or without --tenant; a token still reads."""
    execution_id = _submit(noop_plan("prod", level=1))
    value = _token(core.authenticate("bob", DEMO_PASSWORD))
    principal_from_token(value)
    with session_scope() as session:
        set_claimed_identity(session, False)
    for who in (claimed_for("bob", execution_id), claimed("bob", "demo")):
        kind, message = assert_same_refusal(who, execution_id)
        assert kind is core.PermissionDenied and core.IDENTITY_HINT in message
    assert_same_view(execution_id, token(value))


def test_unknown_disabled_and_ambiguous_names_are_refused_alike(db: str) -> None:
    """An unknown name, a disabled user (claimed, by token, and a principal issued before), a user of two
    tenants without --tenant, a tenant the user has no role in."""
    execution_id = _submit(noop_plan("who", level=1))
    assert assert_same_refusal(claimed_for("nobody", execution_id), execution_id)[0] is core.NotFound
    assert assert_same_refusal(claimed("admin"), execution_id)[0] is core.InvalidInput
    assert assert_same_refusal(claimed("bob", "globex"), execution_id)[0] is core.NotFound
    carol = principal("carol", "demo")
    carols = _token(carol)
    principal_from_token(carols)
    set_user_disabled(principal("admin", "demo"), "carol")
    for who in (claimed_for("carol", execution_id), claimed("carol", "demo"), token(carols), lambda _via: carol):
        assert_same_refusal(who, execution_id)


def test_a_removed_membership_is_refused_alike(db: str) -> None:
    """dave's role is taken away: a principal issued before, his token, and his claimed name are refused."""
    execution_id = _submit(noop_plan("gone", level=1))
    dave = principal("dave", "demo")
    daves = _token(dave, "read")
    principal_from_token(daves)
    remove_member(principal("admin", "demo"), "dave")
    kind, message = assert_same_refusal(lambda _via: dave, execution_id)
    assert kind is core.PermissionDenied and "no role in demo" in message and "needs viewer" in message
    assert_same_refusal(token(daves), execution_id)
    assert_same_refusal(claimed_for("dave", execution_id), execution_id)


def test_forged_principals_are_refused_alike(db: str) -> None:
    """A Principal built by hand, or copied into another tenant or role: not issued by OpsConductor."""
    execution_id = _submit(noop_plan("forged", level=1))
    real = principal("dave", "demo")
    with session_scope() as session:
        globex = session.exec(select(Tenant.id).where(Tenant.name == "globex")).one()
    forged = [
        Principal(tenant_id=real.tenant_id, tenant="demo", user_id=real.user_id, username="dave", role=Role.ADMIN,
                  auth="password", scopes=real.scopes),
        real.model_copy(update={"role": Role.ADMIN}),
        real.model_copy(update={"tenant_id": globex}),
    ]  # fmt: skip
    for fake in forged:
        kind, message = assert_same_refusal(lambda _via, fake=fake: fake, execution_id)  # type: ignore[misc]
        assert kind is core.PermissionDenied and "not issued by OpsConductor" in message


def test_a_role_change_takes_effect_on_the_next_read_alike(db: str) -> None:
    """The role is re-read on every call: a viewer made admin, and an admin made viewer, read as before
    (every role may read), with the role they hold now; nothing cached in the direct path."""
    execution_id = _submit(noop_plan("roles", level=1))
    dave = principal("dave", "demo")
    set_member(principal("admin", "demo"), "dave", Role.ADMIN)
    assert_same_view(execution_id, lambda _via: dave)


# the database it opens ----------------------------------------------------------------------------------


def test_the_query_names_the_postgresql_database_as_for_sqlalchemy(postgres_db: str) -> None:
    """``?dbname=`` wins over the URL's path in SQLAlchemy's psycopg2 dialect: the direct reader reads the
    database the query names (and no other), so ``show`` never reads another database than every other command."""
    real = make_url(postgres_db)
    elsewhere = real.set(database=f"{real.database}_absent")
    with pytest.raises(DirectReadUnavailable), read_only(f"{render(real)}?dbname={elsewhere.database}"):
        pass  # the ORM fails on that database too: the direct reader leaves it to say so
    with read_only(f"{render(elsewhere)}?dbname={real.database}") as connection:
        assert connection.rows("SELECT count(*) FROM installation") == [(1,)]


@pytest.mark.parametrize("hidden", [None, "psycopg2"])
def test_postgresql_is_read_through_psycopg2_or_else_psycopg_read_only(
    postgres_db: str, monkeypatch: pytest.MonkeyPatch, hidden: str | None
) -> None:
    """Whichever driver the URL names, the one-shot read takes psycopg2 when it is installed (its import costs a
    fifth of psycopg's) and psycopg when it is not; either reads the same rows and refuses to write."""
    if hidden is not None:
        monkeypatch.setitem(sys.modules, hidden, None)  # ``import psycopg2`` raises ImportError
    for driver in ("psycopg", "psycopg2"):
        url = render(make_url(postgres_db).set(drivername=f"postgresql+{driver}"))
        with read_only(url) as connection:
            assert connection.rows("SELECT count(*) FROM installation") == [(1,)]
            with pytest.raises(DirectReadUnavailable):
                connection.rows("DELETE FROM installation")
            assert type(connection._raw).__module__.split(".")[0] == ("psycopg" if hidden else "psycopg2")


def render(url: URL) -> str:
    return url.render_as_string(hide_password=False)

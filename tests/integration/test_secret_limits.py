"""Secrets limited to assets (DESIGN §13), and the smaller holes of issue 12 item 6 that need a database:
a secret used off its assets is refused at submit and again in the worker; the workers list names no other
tenant's execution."""

from __future__ import annotations

import pytest

from core import (
    InvalidInput,
    NotFound,
    PermissionDenied,
    add_asset,
    approve,
    get_execution,
    limit_secret,
    list_admin_events,
    list_secrets,
    list_workers,
    principal,
    set_secret,
    submit,
)
from core.engine.workers import register_worker, report_position
from db.engine import session_scope
from db.enums import Connection
from tests.engine_support import drive

VALUE = "limited-s3cret-v4lue-7781"
ADMIN = ("admin", "demo")


def _plan(target: str, secret: str = "limited") -> str:  # noqa: S107  a secret name, not a value
    return (
        f"name: uses-secret\nsteps:\n  - {{name: s, action: shell, target: {target}, "
        f"params: {{command: [printenv, T], env: {{T: '{{{{ secret:{secret} }}}}'}}}}}}\n"
    )


@pytest.fixture
def limited(db: str) -> str:
    """Secret ``limited`` may be used on ``localhost`` only; ``other`` is a second local asset."""
    add_asset(principal(*ADMIN), "other", Connection.LOCAL)
    info = set_secret(principal(*ADMIN), "limited", VALUE, assets=["localhost"])
    assert info.allowed_assets == ["localhost"]
    return db


def test_a_secret_limited_to_one_asset_is_refused_on_another_at_submit(limited: str) -> None:
    with pytest.raises(InvalidInput) as info:
        submit(principal("alice", "demo"), _plan("other"))
    assert info.value.path == "steps[0].params"
    assert "limited" in str(info.value) and "other" in str(info.value) and VALUE not in str(info.value)


def test_a_limit_narrowed_after_approval_is_enforced_by_the_worker(limited: str) -> None:
    view = submit(principal("alice", "demo"), _plan("localhost"), background=True).execution
    assert view.status == "pending_approval"  # a step with a secret is at least modify
    approve(principal("bob", "demo"), view.execution_id)
    limit_secret(principal(*ADMIN), "limited", ["other"])
    drive(view.execution_id)
    done = get_execution(principal("alice", "demo"), view.execution_id)
    assert done.status == "failed"
    error = done.steps[0].error or ""
    assert "may not be used on localhost" in error and VALUE not in error and VALUE not in (done.steps[0].output or "")


def test_the_secret_runs_on_its_asset(limited: str) -> None:
    view = submit(principal("alice", "demo"), _plan("localhost"), background=True).execution
    approve(principal("bob", "demo"), view.execution_id)
    drive(view.execution_id)
    done = get_execution(principal("alice", "demo"), view.execution_id)
    assert done.status == "completed" and VALUE not in (done.steps[0].output or "")


def test_rotating_keeps_the_limit_and_lifting_it_is_explicit(limited: str) -> None:
    assert set_secret(principal(*ADMIN), "limited", VALUE + "-2").allowed_assets == ["localhost"]
    assert limit_secret(principal(*ADMIN), "limited", None).allowed_assets is None
    assert submit(principal("alice", "demo"), _plan("other"), background=True).execution.status == "pending_approval"
    trail = [(e.action, e.data.get("assets")) for e in list_admin_events(principal(*ADMIN))]
    assert trail[:2] == [("secret_limited", None), ("secret_set", ["localhost"])]
    assert VALUE not in str(list_secrets(principal(*ADMIN)))


def test_limits_name_assets_of_the_tenant_and_only_admins_set_them(limited: str) -> None:
    with pytest.raises(InvalidInput) as info:
        limit_secret(principal(*ADMIN), "limited", ["no-such-asset"])
    assert info.value.path == "assets"
    with pytest.raises(InvalidInput):
        limit_secret(principal(*ADMIN), "limited", [])
    with pytest.raises(NotFound):
        limit_secret(principal(*ADMIN), "nope", ["localhost"])
    with pytest.raises(PermissionDenied):
        limit_secret(principal("alice", "demo"), "limited", None)
    with pytest.raises(InvalidInput):  # globex has a localhost too, but not an asset called other
        set_secret(principal("admin", "globex"), "x", VALUE, assets=["other"])


def test_an_assets_credential_limited_elsewhere_is_refused(limited: str) -> None:
    add_asset(principal(*ADMIN), "third", Connection.LOCAL, credential_ref="limited")
    with pytest.raises(InvalidInput) as info:
        submit(principal("alice", "demo"), "name: c\nsteps:\n  - {name: n, action: noop, target: third}\n")
    assert info.value.path == "steps[0].target" and VALUE not in str(info.value)


def test_the_workers_list_names_only_the_callers_tenants_execution(db: str) -> None:
    view = submit(principal("alice", "demo"), _plan("localhost", "demo_token"), background=True).execution
    register_worker("w-shared", kind="test", threads=1)
    with session_scope() as session:
        report_position(session, "w-shared", view.execution_id, 0)
    mine = next(w for w in list_workers(principal("alice", "demo")) if w.id == "w-shared")
    assert (mine.current_execution_id, mine.current_step_index, mine.busy) == (view.execution_id, 0, True)
    theirs = next(w for w in list_workers(principal("mallory", "globex")) if w.id == "w-shared")
    assert (theirs.current_execution_id, theirs.current_step_index, theirs.busy) == (None, None, True)
    assert view.execution_id not in str(list_workers(principal("mallory", "globex")))

"""The CLI's identity from the attacker's side (issue 12): on a box set up without --demo nobody acts without a
token; tokens are the caller's identity, shown once, stored hashed, refused when revoked, expired or in a
file others can read; tenant admins cannot reach another tenant's people."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import update
from sqlmodel import col
from typer.testing import CliRunner, Result

from core import IDENTITY_HINT, authenticate, create_token
from core.ops.setup import DEMO_PASSWORD
from core.transactions import session_scope
from db.clock import utcnow
from db.engine import dispose_engines
from db.settings import get_settings
from db.tables import ApiToken, User
from tests.cli.support import READ_PLAN, Cli, PlanFile, ok_json
from ui.cli import app

ACTING_VERBS = [
    ["submit", "PLAN"],
    ["approve", "x1"],
    ["reject", "x1"],
    ["cancel", "x1"],
    ["show", "x1"],
    ["list"],
    ["watch", "x1"],
    ["dlq", "list"],
    ["dlq", "requeue", "x1"],
    ["dlq", "discard", "x1", "--comment", "c"],
    ["locks"],
    ["users", "list"],
    ["users", "add", "erin", "--role", "viewer"],
    ["users", "password", "erin"],
    ["users", "disable", "erin"],
    ["assets", "list"],
    ["secrets", "list"],
    ["tenant", "mode", "acme", "live"],
    ["audit", "admin"],
    ["audit", "verify"],
    ["prune", "--older-than", "30d"],
    ["tokens", "list"],
    ["tokens", "create", "x", "--scopes", "read"],
    ["policies", "list"],
]


@pytest.fixture
def box(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh SQLite file initialised *without* --demo (a production box). Yields the DB file's path."""
    path = tmp_path / "prod.db"
    monkeypatch.setenv("OPSC_DATABASE_URL", f"sqlite:///{path}")
    monkeypatch.delenv("OPSC_TOKEN", raising=False)
    get_settings.cache_clear()
    dispose_engines()
    yield path
    dispose_engines()
    monkeypatch.undo()
    get_settings.cache_clear()


def run(*args: str, token: str | None = None, input: str | None = None) -> Result:
    env = {"OPSC_TOKEN": token} if token is not None else None
    return CliRunner().invoke(app, list(args), input=input, env=env)


def bootstrap(admin: str = "root", tenant: str = "acme") -> str:
    """``init --admin``: the token is the last line of stdout."""
    result = run("init", "--admin", admin, "--tenant", tenant)
    assert result.exit_code == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]


def test_without_a_token_every_acting_verb_exits_3_with_the_hint(box: Path, plan_file: PlanFile) -> None:
    assert run("init").exit_code == 0
    plan = plan_file(READ_PLAN)
    for verb in ACTING_VERBS:
        args = [plan if a == "PLAN" else a for a in verb]
        for extra in ([], ["--as", "root"]):  # and a claimed name is no way in either
            result = run(*args, *extra, input="some-password\n")
            assert result.exit_code == 3, (args, extra, result.output)
            assert result.stderr.strip().count("\n") == 0 and IDENTITY_HINT in result.stderr, (args, result.stderr)


def test_init_admin_prints_a_token_that_works_and_is_not_stored_in_clear(box: Path) -> None:
    token = bootstrap()
    assert token.startswith("opsc_")
    listed = ok_json(run("users", "list", "--json", token=token))
    assert [(u["username"], u["role"]) for u in listed["users"]] == [("root", "admin")]
    dispose_engines()
    stored = b"".join(p.read_bytes() for p in box.parent.glob("prod.db*"))
    assert token.encode() not in stored and token[12:].encode() not in stored
    # The tenant has an admin now: a second bootstrap of it is refused.
    assert run("init", "--admin", "mallory", "--tenant", "acme").exit_code == 3


def test_with_a_token_the_audit_rows_carry_the_tokens_user(box: Path, plan_file: PlanFile) -> None:
    token = bootstrap()
    assert run("assets", "add", "localhost", "--connection", "local", token=token).exit_code == 0
    assert run("users", "add", "alice", "--role", "operator", token=token).exit_code == 0
    created = run("tokens", "create", "alice-ci", "--scopes", "submit", "--for", "alice", token=token)
    assert created.exit_code == 0, created.stderr
    alice_token = created.stdout.strip()
    assert alice_token.startswith("opsc_") and alice_token not in created.stderr
    submitted = ok_json(run("submit", plan_file(READ_PLAN), "--json", token=alice_token))
    events = ok_json(run("audit", "admin", "--json", token=token))["events"]
    assert {e["actor"] for e in events} == {"root"}
    assert [e["action"] for e in events] == ["token_created", "member_set", "asset_added"]
    shown = ok_json(run("show", submitted["execution_id"], "--json", token=alice_token))
    assert shown["requested_by"] == "alice"
    # --as must agree with the token; the token decides the tenant too.
    assert run("list", "--as", "root", token=alice_token).exit_code == 3
    assert run("list", "--as", "alice", token=alice_token).exit_code == 0
    assert run("list", "--tenant", "demo", token=alice_token).exit_code == 3
    # A submit-scoped token does not administer.
    assert run("users", "add", "eve", "--role", "admin", token=alice_token).exit_code == 3


def test_revoked_and_expired_tokens_are_refused(box: Path) -> None:
    token = bootstrap()
    short = run("tokens", "create", "short", "--scopes", "read", "--expires", "1s", token=token).stdout.strip()
    other = run("tokens", "create", "other", "--scopes", "read", token=token).stdout.strip()
    listed = ok_json(run("tokens", "list", "--json", token=token))["tokens"]
    assert all("token" not in t and other not in json.dumps(t) for t in listed)
    other_id = next(t["id"] for t in listed if t["name"] == "other")
    assert run("list", token=other).exit_code == 0
    assert run("tokens", "revoke", other_id, token=token).exit_code == 0
    refused = run("list", token=other)
    assert refused.exit_code == 3 and "revoked" in refused.stderr
    time.sleep(1.1)
    expired = run("list", token=short)
    assert expired.exit_code == 3 and "expired" in expired.stderr


def test_a_token_file_others_can_read_is_refused(box: Path, tmp_path: Path) -> None:
    token = bootstrap()
    path = tmp_path / "token"
    path.write_text(token + "\n")
    os.chmod(path, 0o644)
    refused = run("--token-file", str(path), "list")
    assert refused.exit_code == 3 and "chmod 600" in refused.stderr
    assert token not in refused.output
    os.chmod(path, 0o600)
    assert run("--token-file", str(path), "list").exit_code == 0


def test_a_high_level_approval_needs_a_fresh_token_or_the_password(box: Path, plan_file: PlanFile) -> None:
    root = bootstrap()
    assert run("tenant", "mode", "acme", "live", "--max-live-level", "3", token=root).exit_code == 0
    for name, role in (("alice", "operator"), ("bob", "approver")):
        assert run("users", "add", name, "--role", role, token=root).exit_code == 0
        assert run("users", "password", name, token=root, input=DEMO_PASSWORD + "\n").exit_code == 0
    alice = run("tokens", "create", "a", "--scopes", "submit", "--for", "alice", token=root).stdout.strip()
    plan = "name: d\nsteps:\n  - {name: a, action: noop, target: here, action_class: deploy}\n"
    assert run("assets", "add", "here", "--connection", "local", token=root).exit_code == 0
    execution = ok_json(run("submit", plan_file(plan), "--json", token=alice))
    assert execution["approval_level"] >= 2
    # bob's own token, made after signing in, then aged to look 10 minutes old (password older still).
    _view, bob = create_token(authenticate("bob", DEMO_PASSWORD), name="b", scopes="approve", expires_in_s=3600)
    with session_scope() as session:
        past = utcnow() - timedelta(minutes=10)
        session.execute(update(ApiToken).where(col(ApiToken.name) == "b").values(created_at=past))
        session.execute(
            update(User).where(col(User.username) == "bob").values(credentials_changed_at=past - timedelta(1))
        )
    stale = run("approve", execution["execution_id"], token=bob)
    assert stale.exit_code == 3 and "password again" in stale.stderr
    wrong = run("approve", execution["execution_id"], "--password-stdin", token=bob, input="nope-nope\n")
    assert wrong.exit_code == 3
    done = run("approve", execution["execution_id"], "--password-stdin", token=bob, input=DEMO_PASSWORD + "\n")
    assert done.exit_code == 0, done.stderr
    # A token created within the last 5 minutes counts as asking again.
    _view, fresh = create_token(authenticate("bob", DEMO_PASSWORD), name="f", scopes="approve", expires_in_s=600)
    second = ok_json(run("submit", plan_file(plan.replace("name: d", "name: d2")), "--json", token=alice))
    assert run("approve", second["execution_id"], token=fresh).exit_code == 0


# tenants own their people (on the demo data: the demo's admin is the system administrator) ---------


def test_a_globex_admin_cannot_add_password_or_disable_bob_of_demo(db: str, cli: Cli) -> None:
    assert cli("users", "add", "gadmin", "--role", "admin", "--as", "admin", "--tenant", "globex").exit_code == 0
    taken = cli("users", "add", "bob", "--role", "operator", "--as", "gadmin")
    assert taken.exit_code == 3 and "belongs to another tenant" in taken.stderr
    assert cli("users", "password", "bob", "--as", "gadmin", input="gadmin-chose-this\n").exit_code == 4
    # bob in globex too (the system administrator's doing): still not gadmin's to change.
    assert cli("users", "add", "bob", "--role", "viewer", "--as", "admin", "--tenant", "globex").exit_code == 0
    assert cli("users", "password", "bob", "--as", "gadmin", input="gadmin-chose-this\n").exit_code == 3
    assert cli("users", "disable", "bob", "--as", "gadmin").exit_code == 3
    assert cli("users", "add", "bob", "--role", "admin", "--as", "gadmin").exit_code == 3
    assert authenticate("bob", DEMO_PASSWORD, "demo").username == "bob"


def test_a_user_gets_their_own_token_by_signing_in_with_their_password(box: Path) -> None:
    """The way to an approver's token: a password sign-in (tokens made --for others cannot approve)."""
    root = bootstrap()
    assert run("users", "add", "bob", "--role", "approver", token=root).exit_code == 0
    assert run("users", "password", "bob", token=root, input="bobs-password-1\n").exit_code == 0
    wrong = run("tokens", "create", "mine", "--scopes", "approve", "--as", "bob", "--password-stdin", input="nope\n")
    assert wrong.exit_code == 3 and "invalid username or password" in wrong.stderr
    made = run("tokens", "create", "mine", "--scopes", "approve", "--as", "bob", "--password-stdin",
               input="bobs-password-1\n")  # fmt: skip
    assert made.exit_code == 0, made.stderr
    assert ok_json(run("tokens", "list", "--json", token=made.stdout.strip()))["tokens"][0]["scopes"] == ["approve"]
    assert run("tokens", "create", "x", "--scopes", "approve", "--for", "bob", token=root).exit_code == 3

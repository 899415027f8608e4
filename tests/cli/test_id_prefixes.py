"""Execution ids by unique prefix (6+ characters) in every command that takes one, and ``list``'s filters
(issue 16 item 6), on PostgreSQL. A prefix is looked up in the caller's own tenant(s) only: another tenant's
execution with the same prefix neither matches, nor makes it ambiguous, nor is named in an error."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from core.transactions import session_scope
from db.enums import ExecutionStatus
from tests.cli.support import MODIFY_PLAN, READ_PLAN, Cli, PlanFile, execution_ids, ok_json, submit_json
from tests.factories import raw_execution

pytestmark = pytest.mark.integration

SHARED = "abcdef"  # a prefix given to executions of both tenants below


def _raw(status: ExecutionStatus, suffix: str, *, tenant: str = "demo", user: str = "alice", name: str = "raw") -> str:
    execution_id = (SHARED + suffix).ljust(32, "0")
    with session_scope() as session:
        raw_execution(session, status, tenant=tenant, user=user, execution_id=execution_id, name=name)
    return execution_id


def test_every_command_taking_an_id_accepts_the_eight_characters_the_console_shows(
    postgres_db: str, cli: Cli, plan_file: PlanFile
) -> None:
    pending = submit_json(cli, plan_file(MODIFY_PLAN))["execution_id"]
    short = pending[:8]
    shown = ok_json(cli("show", short, "--as", "alice", "--json"))
    assert shown["execution_id"] == pending
    assert ok_json(cli("show", short.upper(), "--as", "bob", "--tenant", "demo", "--json"))["execution_id"] == pending
    approved = ok_json(cli("approve", short, "--as", "bob", "--json"))
    assert (approved["execution_id"], approved["status"]) == (pending, "queued")
    cancelled = ok_json(cli("cancel", pending[:6], "--as", "alice", "--reason", "done", "--json"))
    assert (cancelled["execution_id"], cancelled["status"]) == (pending, "cancelled")
    other = submit_json(cli, plan_file(MODIFY_PLAN.replace("rotate-logs", "other")))["execution_id"]
    rejected = ok_json(cli("reject", other[:7], "--as", "carol", "--json"))
    assert (rejected["execution_id"], rejected["status"]) == (other, "rejected")
    watched = cli("watch", other[:8], "--as", "alice")
    assert watched.exit_code == 0, watched.stderr
    assert other in watched.stdout


def test_a_prefix_shorter_than_six_is_refused_with_the_rule(postgres_db: str, cli: Cli, plan_file: PlanFile) -> None:
    execution_id = submit_json(cli, plan_file(READ_PLAN))["execution_id"]
    result = cli("show", execution_id[:5], "--as", "alice")
    assert result.exit_code == 2
    assert "at least 6 characters" in result.stderr
    assert "Traceback" not in result.stderr


def test_an_ambiguous_prefix_lists_the_callers_candidates_and_never_another_tenants(postgres_db: str, cli: Cli) -> None:
    first = _raw(ExecutionStatus.PENDING_APPROVAL, "01", name="first")
    second = _raw(ExecutionStatus.FAILED, "02", name="second")
    theirs = _raw(ExecutionStatus.PENDING_APPROVAL, "03", tenant="globex", user="mallory", name="globex-secret")
    for extra in ([], ["--tenant", "demo"]):  # the claimed name's tenant found by the prefix, or named
        result = cli("show", SHARED, "--as", "alice", *extra)
        assert result.exit_code == 2, result.stderr
        assert first in result.stderr and second in result.stderr and "give more characters" in result.stderr
        assert theirs not in result.stderr and "globex-secret" not in result.stderr
    # One more character picks one; the other tenant's never competes for it.
    assert ok_json(cli("show", first[:8], "--as", "alice", "--json"))["execution_id"] == first
    # mallory's prefix is unique in her tenant: alice's two do not make it ambiguous for her, nor show.
    shown = ok_json(cli("show", SHARED, "--as", "mallory", "--json"))
    assert shown["execution_id"] == theirs


def test_another_tenants_execution_is_not_found_by_prefix_as_by_id(postgres_db: str, cli: Cli) -> None:
    theirs = _raw(ExecutionStatus.PENDING_APPROVAL, "99", tenant="globex", user="mallory", name="globex-only")
    for ref in (theirs[:8], theirs):
        for extra in ([], ["--tenant", "demo"]):
            result = cli("show", ref, "--as", "alice", *extra)
            assert result.exit_code == 4, (ref, extra, result.stderr)
            assert "not found" in result.stderr and "globex-only" not in result.stderr
    assert cli("cancel", theirs[:8], "--as", "alice").exit_code == 4


def test_list_filters_like_the_console(postgres_db: str, cli: Cli, plan_file: PlanFile) -> None:
    read = submit_json(cli, plan_file(READ_PLAN))["execution_id"]
    modify = submit_json(cli, plan_file(MODIFY_PLAN), "bob")["execution_id"]
    assert execution_ids(cli, "alice", "--requester", "bob") == [modify]
    assert execution_ids(cli, "alice", "--search", "disk") == [read]
    assert execution_ids(cli, "alice", "--search", read[:6]) == [read]
    assert execution_ids(cli, "alice", "--asset", "localhost") == [modify, read]
    assert execution_ids(cli, "alice", "--asset", "nowhere") == []
    assert execution_ids(cli, "alice", "--since", "1h") == [modify, read]
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).date().isoformat()
    assert execution_ids(cli, "alice", "--since", tomorrow) == []
    assert execution_ids(cli, "alice", "--status", "pending_approval", "--requester", "bob", "--since", "2d") == [
        modify
    ]
    text = cli("list", "--as", "alice", "--requester", "alice")
    assert text.exit_code == 0 and read in text.stdout and modify not in text.stdout
    bad = cli("list", "--as", "alice", "--since", "last tuesday")
    assert bad.exit_code == 2
    assert "--since" in bad.stderr and "Traceback" not in bad.stderr
    assert cli("list", "--as", "alice", "--search", "ab").exit_code == 2  # as the console: 3 characters at least

"""The execution commands of the CLI: submit, approve, reject, cancel, show, list (DESIGN §11)."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

import core
from db.settings import get_settings
from tests.cli.support import (
    MODIFY_PLAN,
    READ_PLAN,
    Cli,
    PlanFile,
    execution_ids,
    ok_json,
    status_of,
    submit_json,
)
from tests.engine_support import drive

SECTION_11_KEYS = {
    "execution_id", "status", "tenant_id", "requested_by", "approval_level", "sla_class", "execution_mode",
    "run_mode", "plan_hash", "idempotency_key", "created_at", "started_at", "finished_at", "error", "steps",
}  # fmt: skip
STEP_KEYS = {"index", "name", "action", "target", "status", "attempts", "started_at", "finished_at", "output", "error"}


def assert_utc_iso(value: str) -> None:
    """``value`` is an ISO 8601 timestamp in UTC."""
    parsed = datetime.fromisoformat(value)
    assert parsed.utcoffset() == timedelta(0), value


# the main flow ----------------------------------------------------------------------------------


def test_modify_plan_needs_someone_else_to_approve_then_is_queued(db: str, cli: Cli, plan_file: PlanFile) -> None:
    """alice submits a modify plan (pending_approval); her own approval is refused (3); bob's queues it."""
    submitted = cli("submit", plan_file(MODIFY_PLAN), "--as", "alice", "--tenant", "demo")
    assert submitted.exit_code == 0, submitted.stderr
    assert "pending_approval" in submitted.stdout
    execution_id = execution_ids(cli)[0]
    assert execution_id in submitted.stdout

    own = cli("approve", execution_id, "--as", "alice")
    assert own.exit_code == 3
    assert own.stderr.startswith("error: ")
    assert status_of(cli, execution_id) == "pending_approval"

    approved = cli("approve", execution_id, "--as", "bob", "--comment", "looks fine")
    assert approved.exit_code == 0, approved.stderr
    assert "queued" in approved.stdout
    assert "approvals 1/1" in approved.stdout
    view = ok_json(cli("show", execution_id, "--as", "bob", "--json"))
    assert view["status"] == "queued"
    assert [(a["approver"], a["decision"], a["comment"]) for a in view["approvals"]] == [
        ("bob", "approved", "looks fine")
    ]


def test_submit_json_carries_every_section_11_key_in_utc(db: str, cli: Cli, plan_file: PlanFile) -> None:
    """submit --json prints one object with the §11 keys, step keys, ``created`` and UTC ISO times."""
    data = submit_json(cli, plan_file(MODIFY_PLAN))
    assert data.keys() >= SECTION_11_KEYS
    assert data["created"] is True
    assert (data["status"], data["tenant"], data["requested_by"]) == ("pending_approval", "demo", "alice")
    assert (data["approval_level"], data["run_mode"], data["execution_mode"]) == (1, "live", "background")
    assert len(data["plan_hash"]) == 64
    assert_utc_iso(data["created_at"])
    assert data["started_at"] is None and data["finished_at"] is None and data["error"] is None
    assert [s["name"] for s in data["steps"]] == ["check", "rotate"]
    for index, step in enumerate(data["steps"]):
        assert step.keys() >= STEP_KEYS
        assert (step["index"], step["status"], step["attempts"], step["target"]) == (index, "pending", 0, "localhost")


def test_human_output_summarises_id_status_level_approvals_and_steps(
    sqlite_db: str, cli: Cli, plan_file: PlanFile
) -> None:
    """show without --json prints a readable summary with a steps table."""
    execution_id = submit_json(cli, plan_file(MODIFY_PLAN))["execution_id"]
    out = cli("show", execution_id, "--as", "dave").stdout
    for expected in (execution_id, "rotate-logs", "pending_approval", "level      1", "approvals 0/1", "STATUS"):
        assert expected in out
    assert [line.split()[1] for line in out.splitlines() if line[:1].isdigit()] == ["check", "rotate"]


def test_duplicate_submit_returns_the_existing_execution(sqlite_db: str, cli: Cli, plan_file: PlanFile) -> None:
    """Submitting the same plan again creates nothing, says so, and exits 0 with the same id."""
    path = plan_file(MODIFY_PLAN)
    first = submit_json(cli, path)
    again = cli("submit", path, "--as", "alice")
    assert again.exit_code == 0, again.stderr
    assert "existing execution" in again.stdout
    assert first["execution_id"] in again.stdout
    as_json = submit_json(cli, path)
    assert (as_json["execution_id"], as_json["created"]) == (first["execution_id"], False)
    assert execution_ids(cli) == [first["execution_id"]]


def test_same_idempotency_key_with_another_plan_is_a_conflict(sqlite_db: str, cli: Cli, plan_file: PlanFile) -> None:
    """A caller key reused for a different plan exits 5 and creates nothing."""
    submit_json(cli, plan_file(MODIFY_PLAN), "alice", "--idempotency-key", "change-42")
    other = cli("submit", plan_file(READ_PLAN), "--as", "alice", "--idempotency-key", "change-42")
    assert other.exit_code == 5
    assert "change-42" in other.stderr
    assert len(execution_ids(cli)) == 1


def test_submit_reads_the_plan_from_stdin(sqlite_db: str, cli: Cli) -> None:
    """PLAN ``-`` reads the plan from stdin."""
    result = cli("submit", "-", "--as", "alice", "--json", input=READ_PLAN)
    assert ok_json(result)["name"] == "disk-usage"


def test_submit_background_wait_runs_in_an_embedded_worker(sqlite_db: str, cli: Cli, plan_file: PlanFile) -> None:
    """On the embedded default, --wait runs worker threads in the CLI until the execution ends."""
    result = cli("submit", plan_file(READ_PLAN), "--as", "alice", "--background", "--wait", "--timeout", "30", "--json")
    body = ok_json(result)
    assert (body["execution_mode"], body["status"]) == ("background", "completed")
    assert body["steps"][0]["output"]


def test_submit_wait_on_a_plan_needing_approval_says_so(sqlite_db: str, cli: Cli, plan_file: PlanFile) -> None:
    """--wait on a level-1 plan stops at --timeout with a note that it waits for approval (exit 0)."""
    result = cli("submit", plan_file(MODIFY_PLAN), "--as", "alice", "--wait", "--timeout", "0.2")
    assert result.exit_code == 0, result.stderr
    assert "pending_approval" in result.stdout
    assert "waiting for approval" in result.stderr


def test_fast_read_plan_runs_at_once_and_shows_its_output(sqlite_db: str, cli: Cli, plan_file: PlanFile) -> None:
    """A fast level-0 plan runs in the caller: submit prints it completed, with the step's output in the JSON."""
    plan = "name: hello\nsteps:\n  - {name: greet, action: shell, target: localhost, params: {command: [echo, hi-there]}}\n"
    data = submit_json(cli, plan_file(plan))
    assert (data["status"], data["execution_mode"]) == ("completed", "immediate")
    assert data["steps"][0]["status"] == "completed"
    assert "hi-there" in data["steps"][0]["output"]
    assert_utc_iso(data["started_at"])
    assert_utc_iso(data["steps"][0]["finished_at"])


# invalid input ----------------------------------------------------------------------------------

INVALID_PLANS = {
    "missing field": (
        "steps:\n  - {name: a, action: shell, target: localhost, params: {command: ls}}\n",
        "name: required",
    ),
    "missing param": (
        "name: p\nsteps:\n  - {name: a, action: shell, target: localhost, params: {}}\n",
        "steps[0].params.command: required",
    ),
    "unknown action": (
        "name: p\nsteps:\n  - {name: a, action: teleport, target: localhost, params: {}}\n",
        "steps[0].action: unknown action 'teleport'",
    ),
    "unknown asset": (
        "name: p\nsteps:\n  - {name: a, action: shell, target: web-99, params: {command: ls}}\n",
        "steps[0].target: unknown asset 'web-99'",
    ),
    "malformed yaml": ("name: p\nsteps: [\n  {name: a\n", "invalid YAML at line"),
    "secret literal": (
        "name: p\nsteps:\n  - {name: a, action: shell, target: localhost, params: {command: ls, env: {DB_PASSWORD: hunter2}}}\n",
        "steps[0].params.env.DB_PASSWORD:",
    ),
}


@pytest.mark.parametrize("case", list(INVALID_PLANS))
def test_invalid_plan_exits_2_naming_the_path_and_creates_nothing(
    db: str, cli: Cli, plan_file: PlanFile, case: str
) -> None:
    """Each kind of bad plan is refused with exit 2, an ``error: <path>: …`` line, and no execution."""
    text, expected = INVALID_PLANS[case]
    result = cli("submit", plan_file(text), "--as", "alice", "--json")
    assert result.exit_code == 2
    assert result.stdout == ""
    assert f"error: {expected}" in result.stderr
    assert "hunter2" not in result.stderr
    assert "Traceback" not in result.output
    assert execution_ids(cli) == []


def test_every_issue_of_a_plan_gets_its_own_line(sqlite_db: str, cli: Cli, plan_file: PlanFile) -> None:
    """Two problems in a plan print two error lines."""
    text = "name: p\nsteps:\n  - {name: a, action: teleport, target: x}\n  - {name: b, action: shell, target: x, params: {}}\n"
    lines = cli("submit", plan_file(text), "--as", "alice").stderr.splitlines()
    assert lines[0].startswith("error: steps[0].action: ")
    assert lines[1] == "error: steps[1].params.command: required"


def test_missing_plan_file_exits_2(sqlite_db: str, cli: Cli, tmp_path: object) -> None:
    """A plan path that does not exist, or is a directory, is invalid input."""
    missing = cli("submit", "/nonexistent/plan.yaml", "--as", "alice")
    assert missing.exit_code == 2
    assert missing.stderr.strip() == "error: plan file not found: /nonexistent/plan.yaml"
    directory = cli("submit", str(tmp_path), "--as", "alice")
    assert directory.exit_code == 2
    assert "is a directory" in directory.stderr


# permissions, tenants, not found --------------------------------------------------------------


@pytest.mark.parametrize("command", ["show", "approve", "cancel", "reject"])
def test_unknown_execution_id_exits_4(sqlite_db: str, cli: Cli, command: str) -> None:
    """An id nobody has is not found."""
    result = cli(command, "0" * 32, "--as", "bob")
    assert result.exit_code == 4
    assert "not found" in result.stderr


@pytest.mark.parametrize("command", ["show", "approve", "cancel"])
def test_other_tenant_cannot_see_or_touch_an_execution(db: str, cli: Cli, plan_file: PlanFile, command: str) -> None:
    """mallory (globex) gets 'not found' for a demo execution, and it stays as it was."""
    execution_id = submit_json(cli, plan_file(MODIFY_PLAN))["execution_id"]
    result = cli(command, execution_id, "--as", "mallory")
    assert result.exit_code == 4
    assert "rotate-logs" not in result.output
    assert status_of(cli, execution_id) == "pending_approval"


def test_naming_another_tenant_does_not_reach_its_executions(sqlite_db: str, cli: Cli, plan_file: PlanFile) -> None:
    """admin acting in globex cannot show a demo execution (not found), though admin of demo can."""
    execution_id = submit_json(cli, plan_file(MODIFY_PLAN))["execution_id"]
    assert cli("show", execution_id, "--as", "admin", "--tenant", "globex").exit_code == 4
    assert cli("show", execution_id, "--as", "admin", "--tenant", "demo").exit_code == 0


def test_viewer_cannot_submit(db: str, cli: Cli, plan_file: PlanFile) -> None:
    """dave (viewer) gets exit 3 and nothing is created."""
    result = cli("submit", plan_file(READ_PLAN), "--as", "dave")
    assert result.exit_code == 3
    assert "dave" in result.stderr
    assert execution_ids(cli, "dave") == []


def test_user_in_several_tenants_must_name_one(sqlite_db: str, cli: Cli) -> None:
    """admin is in demo and globex: without --tenant the command is invalid input (2)."""
    result = cli("list", "--as", "admin")
    assert result.exit_code == 2
    assert "--tenant" in result.stderr
    assert cli("list", "--as", "admin", "--tenant", "globex").exit_code == 0


def test_unknown_user_is_not_found(sqlite_db: str, cli: Cli) -> None:
    """An unknown --as user exits 4."""
    assert cli("list", "--as", "nobody").exit_code == 4


# decisions and cancellation ---------------------------------------------------------------------


def test_cancel_twice_is_a_no_op(db: str, cli: Cli, plan_file: PlanFile) -> None:
    """The second cancel of the same execution also exits 0 and it stays cancelled."""
    execution_id = submit_json(cli, plan_file(MODIFY_PLAN))["execution_id"]
    first = cli("cancel", execution_id, "--as", "alice", "--reason", "wrong window")
    assert first.exit_code == 0, first.stderr
    assert "cancelled" in first.stdout
    second = cli("cancel", execution_id, "--as", "alice")
    assert second.exit_code == 0, second.stderr
    assert status_of(cli, execution_id) == "cancelled"


def test_approving_a_cancelled_execution_is_a_conflict(sqlite_db: str, cli: Cli, plan_file: PlanFile) -> None:
    """bob cannot approve what alice cancelled: exit 5."""
    execution_id = submit_json(cli, plan_file(MODIFY_PLAN))["execution_id"]
    assert cli("cancel", execution_id, "--as", "alice").exit_code == 0
    result = cli("approve", execution_id, "--as", "bob")
    assert result.exit_code == 5
    assert "cancelled" in result.stderr


def test_approving_an_already_approved_execution_is_a_conflict(db: str, cli: Cli, plan_file: PlanFile) -> None:
    """Once bob's approval queued it, carol's approval (and bob's again) exits 5."""
    execution_id = submit_json(cli, plan_file(MODIFY_PLAN))["execution_id"]
    assert cli("approve", execution_id, "--as", "bob").exit_code == 0
    assert cli("approve", execution_id, "--as", "carol").exit_code == 5
    assert cli("approve", execution_id, "--as", "bob").exit_code == 5
    assert status_of(cli, execution_id) == "queued"


def test_reject_ends_it_and_cancel_afterwards_is_a_conflict(sqlite_db: str, cli: Cli, plan_file: PlanFile) -> None:
    """bob rejects (exit 0, rejected); alice's cancel of a rejected execution exits 5."""
    execution_id = submit_json(cli, plan_file(MODIFY_PLAN))["execution_id"]
    rejected = cli("reject", execution_id, "--as", "bob", "--comment", "not today", "--json")
    assert ok_json(rejected)["status"] == "rejected"
    assert cli("cancel", execution_id, "--as", "alice").exit_code == 5


def test_operator_cannot_cancel_someone_elses_execution(sqlite_db: str, cli: Cli, plan_file: PlanFile) -> None:
    """An approver who did not request it cannot cancel it (3); an admin can."""
    execution_id = submit_json(cli, plan_file(MODIFY_PLAN))["execution_id"]
    assert cli("cancel", execution_id, "--as", "bob").exit_code == 3
    assert cli("cancel", execution_id, "--as", "admin").exit_code == 0


def test_tenant_mode_off_refuses_submissions(db: str, cli: Cli, plan_file: PlanFile) -> None:
    """After ``tenant mode demo off`` a submit exits 3 (safety refused) and creates nothing."""
    switched = cli("tenant", "mode", "demo", "off", "--as", "admin")
    assert switched.exit_code == 0, switched.stderr
    assert "mode off" in switched.stdout
    result = cli("submit", plan_file(READ_PLAN), "--as", "alice")
    assert result.exit_code == 3
    assert result.stderr.startswith("error: ")
    assert execution_ids(cli) == []


# list ---------------------------------------------------------------------------------------------


def test_list_json_is_one_object_of_full_executions_newest_first(sqlite_db: str, cli: Cli, plan_file: PlanFile) -> None:
    """list --json prints {"executions": [...]}, each with the §11 keys, newest first."""
    older = submit_json(cli, plan_file(MODIFY_PLAN))["execution_id"]
    newer = submit_json(cli, plan_file(READ_PLAN))["execution_id"]
    data = ok_json(cli("list", "--as", "dave", "--json"))
    assert list(data) == ["executions"]
    assert [e["execution_id"] for e in data["executions"]] == [newer, older]
    for execution in data["executions"]:
        assert execution.keys() >= SECTION_11_KEYS


def test_list_filters_by_status_and_limit(sqlite_db: str, cli: Cli, plan_file: PlanFile) -> None:
    """--status (repeatable) and --limit narrow the list; the text form lists ids."""
    pending = submit_json(cli, plan_file(MODIFY_PLAN))["execution_id"]
    queued = submit_json(cli, plan_file(READ_PLAN), "alice", "--background")["execution_id"]
    assert execution_ids(cli, "alice", "--status", "pending_approval") == [pending]
    assert sorted(execution_ids(cli, "alice", "--status", "queued", "--status", "pending_approval")) == sorted(
        [pending, queued]
    )
    assert execution_ids(cli, "alice", "--limit", "1") == [queued]
    text = cli("list", "--as", "alice", "--status", "queued").stdout
    assert queued in text and pending not in text


def test_list_of_an_empty_tenant_says_so(sqlite_db: str, cli: Cli) -> None:
    """No executions: a plain message, exit 0."""
    result = cli("list", "--as", "mallory")
    assert (result.exit_code, result.stdout.strip()) == (0, "no executions")


def test_approve_step_opens_a_level_three_gate(sqlite_db: str, cli: Cli, plan_file: PlanFile) -> None:
    """`approve ID --step N` gives the go for a step of a level-3 execution; on a level-1 one it is exit 2."""
    level3 = plan_file("name: l3\napproval_level: 3\nsteps:\n  - {name: a, action: noop, target: localhost}\n")
    execution_id = ok_json(cli("submit", level3, "--as", "alice", "--json"))["execution_id"]
    assert cli("approve", execution_id, "--as", "bob").exit_code == 0
    assert cli("approve", execution_id, "--as", "carol").exit_code == 0
    assert cli("approve", execution_id, "--as", "alice", "--step", "0").exit_code == 3
    opened = cli("approve", execution_id, "--as", "bob", "--step", "0", "--json")
    assert [(a["approver"], a["step_index"]) for a in ok_json(opened)["approvals"] if a["step_index"] is not None] == [
        ("bob", 0)
    ]
    level1 = ok_json(cli("submit", plan_file(MODIFY_PLAN), "--as", "alice", "--json"))["execution_id"]
    result = cli("approve", level1, "--as", "bob", "--step", "0")
    assert result.exit_code == 2 and "no step gates" in result.stderr


def test_locks_shows_the_holder_and_waiters(sqlite_db: str, cli: Cli) -> None:
    """`locks` lists held asset locks with their holder; with none held it says so."""
    from datetime import UTC
    from datetime import datetime as dt

    import core
    from core.engine import locks
    from db.engine import session_scope
    from tests.factories import noop_plan

    assert cli("locks", "--as", "dave").stdout.strip() == "no asset is locked"
    execution_id = core.submit(
        core.principal("alice", "demo"), noop_plan("held"), background=True
    ).execution.execution_id
    asset_id = next(a.id for a in core.list_assets(core.principal("alice", "demo")) if a.name == "localhost")
    with session_scope() as session:
        locks.acquire(
            session,
            tenant_id=core.principal("alice", "demo").tenant_id,
            execution_id=execution_id,
            asset_ids=[asset_id],
            expires_at=dt(2100, 1, 1, tzinfo=UTC),
        )
    listed = ok_json(cli("locks", "--as", "dave", "--json"))["locks"]
    assert [(r["asset"], r["execution_id"], r["waiters"]) for r in listed] == [("localhost", execution_id, 0)]


# what the approver sees (issue 13) -----------------------------------------------------------------

SECRET_PLAN = """
name: token-check
steps:
  - name: fetch
    action: shell
    target: localhost
    params: {command: [printenv, TOKEN], env: {TOKEN: "{{ secret:demo_token }}"}}
"""


def test_show_prints_what_runs_with_the_secret_reference_and_the_diff(db: str, cli: Cli, plan_file: PlanFile) -> None:
    """show --json carries each step's canonical params (the reference, never the value) and its dry run;
    show prints them, and the diff against the last approved run of the same plan name."""
    first = submit_json(cli, plan_file(SECRET_PLAN))["execution_id"]
    shown = ok_json(cli("show", first, "--as", "bob", "--json"))
    step = shown["steps"][0]
    assert step["params"]["env"] == {"TOKEN": "{{ secret:demo_token }}"} and step["params"]["command"] == [
        "printenv",
        "TOKEN",
    ]
    assert "would run printenv TOKEN on localhost" in step["dry_run"]
    assert (shown["plan_intact"], shown["changes_since_approved"]) == (True, None)
    assert ok_json(cli("approve", first, "--as", "bob", "--json"))["status"] == "queued"

    second = submit_json(cli, plan_file(SECRET_PLAN.replace("printenv, TOKEN", "printenv, HOME")))["execution_id"]
    text = cli("show", second, "--as", "bob")
    assert text.exit_code == 0, text.stderr
    assert '"env": {"TOKEN": "{{ secret:demo_token }}"}' in text.stdout
    assert "dry run  would run printenv HOME on localhost" in text.stdout
    assert f"changed since the last approved run of token-check ({first})" in text.stdout
    assert '-       "TOKEN"' in text.stdout and '+       "HOME"' in text.stdout
    for output in (text.stdout, cli("show", second, "--as", "bob", "--json").stdout):
        assert "s3cr3t" not in output


def test_show_json_links_a_rerun_to_the_execution_it_reran(db: str, cli: Cli, plan_file: PlanFile) -> None:
    """Issue 16: a rerun is a new execution; ``rerun_of`` names the old one (null for a fresh submit)."""
    old = submit_json(cli, plan_file(READ_PLAN), "alice", "--background")["execution_id"]
    drive(old)
    new = core.rerun(core.principal("alice", "demo"), old).execution.execution_id
    shown = ok_json(cli("show", new, "--as", "alice", "--json"))
    assert shown["rerun_of"] == old and new != old
    assert ok_json(cli("show", old, "--as", "alice", "--json"))["rerun_of"] is None
    assert f"rerun of {old}" in cli("show", new[:8], "--as", "alice").stdout


def test_show_lists_rollback_steps_apart_with_their_status(
    db: str, cli: Cli, plan_file: PlanFile, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failing step ran its on_failure step: ``show --json`` has it under ``rollback_steps`` (not ``steps``)
    with ``rollback_status``; ``show`` prints a rollback table (DESIGN §14)."""
    monkeypatch.setenv("OPSC_RETRY_BACKOFF_S", "0.01")
    get_settings.cache_clear()
    plan = (
        "name: undo\nsteps:\n  - {name: break, action: shell, target: localhost, params: {command: 'false'}}\n"
        "on_failure:\n  - {name: restore, action: shell, target: localhost, params: {command: [echo, restored]}}\n"
        "on_cancel:\n  - {name: tidy, action: noop, target: localhost}\n"
    )
    submitted = submit_json(cli, plan_file(plan))
    execution_id = submitted["execution_id"]
    drive(execution_id)
    view = ok_json(cli("show", execution_id, "--as", "alice", "--json"))
    assert (view["status"], view["rollback_status"]) == ("failed", "completed")
    assert [s["name"] for s in view["steps"]] == ["break"]
    assert [(s["index"], s["phase"], s["name"], s["status"]) for s in view["rollback_steps"]] == [
        (1, "on_failure", "restore", "completed"),
        (2, "on_cancel", "tidy", "skipped"),
    ]
    assert set(view["rollback_steps"][0]) >= STEP_KEYS and "restored" in view["rollback_steps"][0]["output"]
    text = cli("show", execution_id, "--as", "alice")
    assert text.exit_code == 0, text.stderr
    assert "rollback   completed" in text.stdout
    assert "1. restore [on_failure]: shell on localhost" in text.stdout
    get_settings.cache_clear()


def test_show_lists_a_fan_outs_targets_per_step(db: str, cli: Cli, plan_file: PlanFile) -> None:
    """Issue 17 item 2: ``show --json`` has each target's step (with its ``fanout`` record) and ``fanouts``, the
    targets grouped per written step with their statuses; ``show`` prints one line per fan-out."""
    admin = core.principal("admin", "demo")
    for name in ("web-a", "web-b"):
        core.add_asset(admin, name, core.Connection.LOCAL, tags=["web"])
    plan = "name: fan\nsteps:\n  - {name: ping, action: noop, targets: {tags: [web]}, max_concurrency: 50%}\n"
    execution_id = submit_json(cli, plan_file(plan), "alice", "--background")["execution_id"]
    drive(execution_id)
    shown = ok_json(cli("show", execution_id, "--as", "alice", "--json"))
    assert [(s["name"], s["target"], s["fanout"]["position"]) for s in shown["steps"]] == [
        ("ping[web-a]", "web-a", 0),
        ("ping[web-b]", "web-b", 1),
    ]
    [group] = shown["fanouts"]
    assert (group["step"], group["max_concurrency"], group["max_errors"], group["counts"]) == (
        "ping",
        1,
        0,
        {"completed": 2},
    )
    assert [(t["index"], t["target"], t["status"]) for t in group["targets"]] == [
        (0, "web-a", "completed"),
        (1, "web-b", "completed"),
    ]
    text = cli("show", execution_id, "--as", "alice").stdout
    assert "fan-out ping: 2 targets, 1 at a time, max_errors 0: 2 completed" in text

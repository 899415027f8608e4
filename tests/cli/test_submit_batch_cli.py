"""``opsconductor submit`` with several plan files: one batch (core.submit_many), the same JSON per plan."""

from __future__ import annotations

from tests.cli.support import MODIFY_PLAN, READ_PLAN, Cli, PlanFile, execution_ids, ok_json
from tests.cli.test_executions import SECTION_11_KEYS, STEP_KEYS

BAD_TARGET = "name: nowhere\nsteps:\n  - {name: a, action: noop, target: web-99}\n"


def test_several_plans_print_one_object_per_plan(db: str, cli: Cli, plan_file: PlanFile) -> None:
    """--json prints {"executions": [...]}, each item what submitting that plan alone prints."""
    paths = [plan_file(MODIFY_PLAN), plan_file(READ_PLAN)]
    body = ok_json(cli("submit", *paths, "--as", "alice", "--background", "--json"))
    items = body["executions"]
    assert [(i["name"], i["status"], i["created"]) for i in items] == [
        ("rotate-logs", "pending_approval", True),
        ("disk-usage", "queued", True),
    ]
    for item in items:
        assert item.keys() >= SECTION_11_KEYS and all(s.keys() >= STEP_KEYS for s in item["steps"])
    assert sorted(execution_ids(cli)) == sorted(i["execution_id"] for i in items)


def test_one_bad_plan_refuses_the_batch(db: str, cli: Cli, plan_file: PlanFile) -> None:
    """Exit 2 naming the plan's index and path; nothing is created."""
    result = cli("submit", plan_file(READ_PLAN), plan_file(BAD_TARGET), "--as", "alice")
    assert result.exit_code == 2
    assert "plans[1].steps[0].target" in result.stderr and "web-99" in result.stderr
    assert execution_ids(cli) == []


def test_one_key_per_plan(sqlite_db: str, cli: Cli, plan_file: PlanFile) -> None:
    """--idempotency-key repeated gives each plan its key, in order; a count that does not match is exit 2."""
    paths = [plan_file(MODIFY_PLAN), plan_file(READ_PLAN)]
    items = ok_json(
        cli(
            "submit",
            *paths,
            "--as",
            "alice",
            "--background",
            "--json",
            "--idempotency-key",
            "a",
            "--idempotency-key",
            "b",
        )
    )["executions"]
    assert [i["idempotency_key"] for i in items] == ["a", "b"]
    assert cli("submit", *paths, "--as", "alice", "--idempotency-key", "a").exit_code == 2
    assert cli("submit", paths[0], "--as", "alice", "--idempotency-key", "a", "--idempotency-key", "b").exit_code == 2


def test_text_output_shows_each_plan_and_says_which_existed(sqlite_db: str, cli: Cli, plan_file: PlanFile) -> None:
    """Without --json each execution is rendered in order; a duplicate says nothing new was created."""
    first = plan_file(MODIFY_PLAN)
    cli("submit", first, "--as", "alice")
    result = cli("submit", first, plan_file(READ_PLAN), "--as", "alice", "--background")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.count("existing execution") == 1
    assert result.stdout.index("rotate-logs") < result.stdout.index("disk-usage")


def test_stdin_is_read_once(sqlite_db: str, cli: Cli) -> None:
    """Two ``-`` are refused (exit 2): stdin holds one plan."""
    assert cli("submit", "-", "-", "--as", "alice", input=READ_PLAN).exit_code == 2

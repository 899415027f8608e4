"""`opsconductor dlq plan` and `dlq requeue --plan` (issue 16 item 4): the steps that did not complete, edited
and run as a new execution linked to the old one, with the entry closed."""

from __future__ import annotations

from pathlib import Path

import core
from tests.cli.support import Cli, PlanFile, ok_json, submit_json
from tests.engine_support import drive

FAILING = """
name: three-steps
steps:
  - {name: s0, action: shell, target: localhost, action_class: modify, params: {command: "true"}}
  - {name: s1, action: shell, target: localhost, action_class: modify, params: {command: "false"}}
  - {name: s2, action: shell, target: localhost, action_class: modify, params: {command: "true"}}
"""


def _failed(cli: Cli, plan_file: PlanFile) -> str:
    execution_id = str(submit_json(cli, plan_file(FAILING), "alice", "--background")["execution_id"])
    assert cli("approve", execution_id, "--as", "bob").exit_code == 0
    drive(execution_id)
    assert core.get_execution(core.principal("alice", "demo"), execution_id).status == core.ExecutionStatus.FAILED
    return execution_id


def test_dlq_plan_prints_the_remaining_steps_and_requeue_plan_runs_the_edit(
    db: str, cli: Cli, plan_file: PlanFile
) -> None:
    old_id = _failed(cli, plan_file)
    printed = cli("dlq", "plan", old_id[:8], "--as", "alice")
    assert printed.exit_code == 0, printed.stderr
    assert "name: s1" in printed.stdout and "name: s2" in printed.stdout and "name: s0" not in printed.stdout
    assert "command: 'false'" in printed.stdout
    edited = plan_file(printed.stdout.replace("command: 'false'", "command: 'true'"))
    assert "command: 'false'" not in Path(edited).read_text()  # the edit took
    new = ok_json(cli("dlq", "requeue", old_id, "--as", "alice", "--plan", edited, "--comment", "fixed", "--json"))
    assert new["rerun_of"] == old_id and new["status"] == "pending_approval"
    listed = ok_json(cli("dlq", "list", "--as", "admin", "--tenant", "demo", "--json"))
    assert old_id not in {e["execution_id"] for e in listed["entries"]}  # closed: no longer open


def test_requeue_with_a_plan_that_does_not_validate_exits_2_and_keeps_the_entry(
    db: str, cli: Cli, plan_file: PlanFile
) -> None:
    old_id = _failed(cli, plan_file)
    refused = cli("dlq", "requeue", old_id, "--as", "alice", "--plan", plan_file("name: x\nsteps: []\n"))
    assert refused.exit_code == 2, refused.stdout + refused.stderr
    assert "steps" in refused.stderr and "Traceback" not in refused.stderr
    listed = ok_json(cli("dlq", "list", "--as", "admin", "--tenant", "demo", "--json"))
    assert old_id in {e["execution_id"] for e in listed["entries"]}

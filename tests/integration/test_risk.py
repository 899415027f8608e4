"""The server decides risk (DESIGN §13), seen from the attacker's side: an operator cannot get a command
run at level 0 that no admin vouched for; declarations are per tenant, word for word, and end with an edit.

The demo tenants start with the read-only prefixes ``[df]`` and ``[uptime]`` and the published runbooks
"Disk usage" and "Service status" (core/ops/setup.py).
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from core import (
    Conflict,
    InvalidInput,
    NotFound,
    PermissionDenied,
    add_asset,
    add_read_only_command,
    approve,
    delete_runbook,
    get_execution,
    list_admin_events,
    list_read_only_commands,
    list_runbooks,
    principal,
    publish_runbook,
    remove_read_only_command,
    save_runbook,
    submit,
    unpublish_runbook,
)
from core.ops.setup import DEMO_RUNBOOKS
from db.enums import Connection
from tests.engine_support import drive

ALICE = ("alice", "demo")


def shell_plan(command: Any, **params: Any) -> dict[str, Any]:
    return {
        "name": "p",
        "steps": [{"name": "s", "action": "shell", "target": "localhost", "params": {"command": command, **params}}],
    }


def derived(plan: Any, who: tuple[str, str] = ALICE) -> tuple[str, int, str]:
    """(action class, approval level, status) the server gives ``plan`` (background: nothing runs inline)."""
    view = submit(principal(*who), plan, background=True).execution
    return view.action_class, view.approval_level, view.status


@pytest.mark.parametrize(
    "command",
    [
        ["rm", "-f", "/tmp/opsc-risk-x"],
        ["sh", "-c", "df; rm -f /tmp/opsc-risk-x"],
        ["python3", "-c", "import os; os.remove('/tmp/opsc-risk-x')"],
        ["bash"],
        "rm -f /tmp/opsc-risk-x",
    ],
    ids=["rm", "sh-c", "python3-c", "bash", "rm-string"],
)
def test_an_operators_unvouched_command_waits_for_approval(db: str, command: Any) -> None:
    assert derived(shell_plan(command)) == ("modify", 1, "pending_approval")


def test_asking_for_read_does_not_lower_a_command(db: str) -> None:
    plan = shell_plan(["rm", "-f", "/tmp/opsc-risk-x"])
    plan["steps"][0]["action_class"] = "read"
    assert derived(plan) == ("modify", 1, "pending_approval")


def test_an_allow_listed_prefix_runs_at_level_0_at_once(db: str) -> None:
    view = submit(principal(*ALICE), shell_plan(["df", "-h"])).execution
    assert (view.action_class, view.approval_level, view.execution_mode, view.status) == (
        "read",
        0,
        "immediate",
        "completed",
    )
    assert derived(shell_plan("df -h")) == ("read", 0, "queued")  # the string form splits to the same argv


@pytest.mark.parametrize(
    "command",
    [["dfx"], ["sh", "-c", "df; rm -f /tmp/opsc-risk-x"], ["/bin/df"], ["env", "df"], ["df -h"]],
    ids=["dfx", "sh-c-df", "abs-path", "env-df", "one-word"],
)
def test_a_prefix_matches_word_by_word_and_nothing_else(db: str, command: list[str]) -> None:
    """[df] is declared: [dfx], a shell running df, another path to df, a wrapper, a joined word are not read."""
    assert derived(shell_plan(command))[0] == "modify"


def test_shell_true_is_never_read_even_with_a_declared_prefix(db: str) -> None:
    assert derived(shell_plan("df -h", shell=True))[0] == "modify"  # noqa: S604  a plan parameter, not a subprocess


def test_a_declared_prefix_does_not_vouch_for_a_changed_environment(db: str) -> None:
    """PATH (or LD_PRELOAD) decides what `df` runs: a step that sets env is not read by prefix."""
    assert derived(shell_plan(["df"], env={"PATH": "/tmp/opsc-evil"}))[0] == "modify"


def test_declarations_are_per_tenant(db: str) -> None:
    add_read_only_command(principal("admin", "demo"), ["hostname"])
    assert derived(shell_plan(["hostname"]))[0] == "read"
    assert derived(shell_plan(["hostname"]), ("mallory", "globex"))[0] == "modify"


def test_a_step_with_a_secret_is_at_least_modify(db: str) -> None:
    """Even under a declared prefix and asking for read: what a secret unlocks is not a read."""
    plan = shell_plan(["df", "{{ secret:demo_token }}"])
    plan["steps"][0]["action_class"] = "read"
    assert derived(plan) == ("modify", 1, "pending_approval")


# --- read-only commands: admin use cases -------------------------------------------------------------------


def test_admins_manage_the_allow_list_and_every_change_is_audited(db: str) -> None:
    admin = principal("admin", "demo")
    added = add_read_only_command(admin, ["systemctl", "status"])
    assert added.argv == ["systemctl", "status"] and added.created_by == "admin"
    listed = [c.argv for c in list_read_only_commands(principal(*ALICE))]
    assert listed[:2] == [["df"], ["uptime"]] and listed[-1] == ["systemctl", "status"]  # in declaration order
    assert derived(shell_plan(["systemctl", "status", "nginx"]))[0] == "read"
    assert derived(shell_plan(["systemctl", "restart", "nginx"]))[0] == "modify"
    remove_read_only_command(admin, added.id)
    assert derived(shell_plan(["systemctl", "status", "nginx"]))[0] == "modify"
    trail = [(e.action, e.data.get("argv")) for e in list_admin_events(admin)]
    assert trail[:2] == [
        ("read_only_command_removed", ["systemctl", "status"]),
        ("read_only_command_added", ["systemctl", "status"]),
    ]


def test_the_allow_list_refuses_operators_duplicates_empties_and_other_tenants_ids(db: str) -> None:
    with pytest.raises(PermissionDenied):
        add_read_only_command(principal(*ALICE), ["rm"])
    with pytest.raises(Conflict):
        add_read_only_command(principal("admin", "demo"), ["df"])
    with pytest.raises(InvalidInput) as info:
        add_read_only_command(principal("admin", "demo"), [])
    assert info.value.path == "argv"
    with pytest.raises(InvalidInput) as info:
        add_read_only_command(principal("admin", "demo"), ["ls", ""])
    assert info.value.path == "argv[1]"
    demo_df = list_read_only_commands(principal(*ALICE))[0]
    with pytest.raises(NotFound):
        remove_read_only_command(principal("admin", "globex"), demo_df.id)
    with pytest.raises(PermissionDenied):
        remove_read_only_command(principal(*ALICE), demo_df.id)


# --- published runbooks ---------------------------------------------------------------------------------


def _runbook(name: str) -> str:
    return next(plan for n, _d, plan in DEMO_RUNBOOKS if n == name)


def test_published_demo_runbooks_run_at_level_0(db: str) -> None:
    published = {r.name: r.published for r in list_runbooks(principal(*ALICE))}
    assert published == {
        "Disk usage": True,
        "Service status": True,
        "Log rotation": False,
        "Restart a service": False,
        "Lab disk usage (fan-out)": False,  # read all the same: its one argv is the declared [df]
        "Failing check": False,
    }
    assert derived(_runbook("Service status")) == ("read", 0, "queued")  # no approval: queued for a worker
    view = submit(principal(*ALICE), _runbook("Disk usage")).execution
    assert (view.action_class, view.approval_level, view.status) == ("read", 0, "completed")


def test_an_edited_published_runbook_loses_level_0(db: str) -> None:
    """`ps` is no declared prefix: only the publication made it read, and an edit ends the publication."""
    text = _runbook("Service status")
    with pytest.raises(PermissionDenied):
        save_runbook(principal(*ALICE), "Service status", text + "  - {name: extra, action: noop, target: localhost}\n")
    edited = save_runbook(
        principal("admin", "demo"), "Service status", text + "  - {name: extra, action: noop, target: localhost}\n"
    )
    assert not edited.published and edited.published_by == "init"  # who vouched for the old text stays visible
    assert derived(text)[0] == "modify"
    assert publish_runbook(principal("admin", "demo"), "Service status").published
    assert derived(text)[0] == "read"


def test_a_changed_step_of_a_published_runbook_is_not_vouched_for(db: str) -> None:
    plan = {"name": "x", "steps": [_ps_step(["ps", "-eo", "pid,etime,comm", "--sort=-pcpu"])]}
    assert derived(plan)[0] == "read"  # the published step, word for word (another plan around it is fine)
    assert derived({"name": "x", "steps": [_ps_step(["ps", "-eo", "pid,etime,comm,args"])]})[0] == "modify"


def _ps_step(command: list[str]) -> dict[str, Any]:
    return {"name": "processes", "action": "shell", "target": "localhost", "params": {"command": command}}


def test_publication_vouches_for_a_step_as_the_runbook_writes_it_no_lower(db: str) -> None:
    """Log rotation's steps say `modify`: publishing it does not make the same step without that field read."""
    publish_runbook(principal("admin", "demo"), "Log rotation")
    step = next(s for s in _yaml_steps(_runbook("Log rotation")) if s["name"] == "prepare")
    step.pop("action_class")
    assert derived({"name": "x", "steps": [step]})[0] == "modify"


def _yaml_steps(text: str) -> list[dict[str, Any]]:
    steps: list[dict[str, Any]] = yaml.safe_load(text)["steps"]
    return steps


def test_only_admins_publish_and_unpublishing_ends_level_0(db: str) -> None:
    with pytest.raises(PermissionDenied):
        publish_runbook(principal(*ALICE), "Failing check")
    with pytest.raises(PermissionDenied):
        unpublish_runbook(principal(*ALICE), "Service status")
    unpublish_runbook(principal("admin", "demo"), "Service status")
    assert derived(_runbook("Service status"))[0] == "modify"
    actions = [e.action for e in list_admin_events(principal("admin", "demo"))]
    assert actions[0] == "runbook_unpublished"


def test_a_runbook_published_in_one_tenant_vouches_for_nothing_in_another(db: str) -> None:
    save_runbook(principal("admin", "demo"), "who", "name: who\nsteps:\n  - {name: w, action: shell, target: localhost, "
                 "params: {command: [whoami]}}\n")  # fmt: skip
    publish_runbook(principal("admin", "demo"), "who")
    assert derived(shell_plan(["whoami"]))[0] == "read"
    assert derived(shell_plan(["whoami"]), ("mallory", "globex"))[0] == "modify"


def test_a_published_runbook_may_not_be_deleted_by_an_operator(db: str) -> None:
    with pytest.raises(PermissionDenied):
        delete_runbook(principal(*ALICE), "Disk usage")
    delete_runbook(principal("admin", "demo"), "Disk usage")


# --- the approval path still works ------------------------------------------------------------------------


def test_a_modify_shell_step_runs_once_approved(db: str) -> None:
    view = submit(principal(*ALICE), shell_plan(["true"]), background=True).execution
    approve(principal("bob", "demo"), view.execution_id)
    drive(view.execution_id)
    assert get_execution(principal(*ALICE), view.execution_id).status == "completed"


def test_an_asset_added_later_starts_without_declarations(db: str) -> None:
    """Declarations are about argv, not assets: a new local asset of the tenant gets the same derivation."""
    add_asset(principal("admin", "demo"), "box-2", Connection.LOCAL)
    plan = shell_plan(["df"])
    plan["steps"][0]["target"] = "box-2"
    assert derived(plan)[0] == "read"


def test_publishing_binds_to_the_text_the_admin_reviewed(db: str) -> None:
    """The owner's save between the admin's read and their click is not published unseen."""
    save_runbook(principal(*ALICE), "mine", "name: f\nsteps:\n  - {name: x, action: noop, target: localhost}\n")
    reviewed = next(r for r in list_runbooks(principal("admin", "demo")) if r.name == "mine")
    save_runbook(principal(*ALICE), "mine", "name: f\nsteps:\n  - {name: x, action: shell, target: localhost, "
                 "params: {command: [rm, -rf, /tmp/opsc-risk-x]}}\n")  # fmt: skip
    with pytest.raises(Conflict):
        publish_runbook(principal("admin", "demo"), "mine", reviewed_hash=reviewed.text_hash)
    assert not next(r for r in list_runbooks(principal(*ALICE)) if r.name == "mine").published

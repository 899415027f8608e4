"""The administration commands of the CLI: users, assets, secrets, tenant mode, policies."""

from __future__ import annotations

import pytest

from core import MAX_PRIORITY, authenticate
from tests.cli.support import READ_PLAN, Cli, PlanFile, ok_json, submit_json

SECRET_VALUE = "pa55-Word-from-stdin-7f3a"


# secrets ------------------------------------------------------------------------------------------


def test_secret_set_from_stdin_is_listed_by_name_only(db: str, cli: Cli) -> None:
    """secrets set reads the value on stdin; neither its output nor secrets list ever shows the value."""
    set_result = cli("secrets", "set", "deploy_key", "--as", "admin", "--tenant", "demo", input=SECRET_VALUE + "\n")
    assert set_result.exit_code == 0, set_result.stderr
    assert "deploy_key" in set_result.stdout and "version 1" in set_result.stdout
    listed = cli("secrets", "list", "--as", "admin", "--tenant", "demo")
    listed_json = ok_json(cli("secrets", "list", "--as", "admin", "--tenant", "demo", "--json"))
    assert {s["name"] for s in listed_json["secrets"]} == {"demo_token", "deploy_key"}
    for output in (set_result.output, listed.output, str(listed_json)):
        assert SECRET_VALUE not in output
    assert "deploy_key" in listed.stdout


def test_secret_set_again_rotates_the_version(sqlite_db: str, cli: Cli) -> None:
    """Setting an existing secret bumps its version."""
    result = cli("secrets", "set", "demo_token", "--as", "admin", "--tenant", "demo", input="new-value")
    assert result.exit_code == 0, result.stderr
    assert "version 2" in result.stdout


def test_secret_set_by_an_operator_is_denied_and_not_echoed(db: str, cli: Cli) -> None:
    """alice (operator) gets exit 3; the value she piped appears nowhere."""
    result = cli("secrets", "set", "stolen", "--as", "alice", input=SECRET_VALUE)
    assert result.exit_code == 3
    assert SECRET_VALUE not in result.output
    names = {
        s["name"] for s in ok_json(cli("secrets", "list", "--as", "admin", "--tenant", "demo", "--json"))["secrets"]
    }
    assert "stolen" not in names


@pytest.mark.parametrize("stdin", ["", "\n"])
def test_secret_set_with_an_empty_value_is_invalid(sqlite_db: str, cli: Cli, stdin: str) -> None:
    """Nothing (or just a newline) on stdin is invalid input (2)."""
    result = cli("secrets", "set", "empty", "--as", "admin", "--tenant", "demo", input=stdin)
    assert result.exit_code == 2
    assert "error: value:" in result.stderr


def test_secret_value_is_never_an_argument(sqlite_db: str, cli: Cli) -> None:
    """A value given on the command line is a usage error (2), not stored."""
    result = cli("secrets", "set", "tok", SECRET_VALUE, "--as", "admin", "--tenant", "demo")
    assert result.exit_code == 2
    names = {
        s["name"] for s in ok_json(cli("secrets", "list", "--as", "admin", "--tenant", "demo", "--json"))["secrets"]
    }
    assert "tok" not in names


def test_secret_delete_then_delete_again_is_not_found(sqlite_db: str, cli: Cli) -> None:
    """Deleting removes the secret; deleting it again exits 4."""
    assert cli("secrets", "delete", "demo_token", "--as", "admin", "--tenant", "demo").exit_code == 0
    assert cli("secrets", "delete", "demo_token", "--as", "admin", "--tenant", "demo").exit_code == 4


# users --------------------------------------------------------------------------------------------


def test_users_list_shows_the_tenants_members(db: str, cli: Cli) -> None:
    """users list (any role) shows each demo user with their role."""
    result = cli("users", "list", "--as", "dave")
    assert result.exit_code == 0, result.stderr
    rows = {line.split()[0]: line.split()[1] for line in result.stdout.splitlines()[1:]}
    assert rows == {"admin": "admin", "alice": "operator", "bob": "approver", "carol": "approver", "dave": "viewer"}


def test_users_add_and_remove_by_admin(sqlite_db: str, cli: Cli) -> None:
    """admin adds erin as a read-only operator, then removes her."""
    added = cli(
        "users", "add", "erin", "--role", "operator", "--max-action-class", "read", "--as", "admin", "--tenant", "demo"
    )
    assert added.exit_code == 0, added.stderr
    users = ok_json(cli("users", "list", "--as", "alice", "--json"))["users"]
    erin = next(u for u in users if u["username"] == "erin")
    assert (erin["role"], erin["max_action_class"]) == ("operator", "read")
    assert cli("users", "remove", "erin", "--as", "admin", "--tenant", "demo").exit_code == 0
    assert "erin" not in {u["username"] for u in ok_json(cli("users", "list", "--as", "alice", "--json"))["users"]}


def test_users_add_by_non_admin_or_with_a_bad_role(sqlite_db: str, cli: Cli) -> None:
    """alice may not add users (3); an unknown role is a usage error (2)."""
    assert cli("users", "add", "erin", "--role", "operator", "--as", "alice").exit_code == 3
    assert cli("users", "add", "erin", "--role", "overlord", "--as", "admin", "--tenant", "demo").exit_code == 2


def test_admin_cannot_remove_their_own_role(sqlite_db: str, cli: Cli) -> None:
    """Removing yourself is invalid input (2)."""
    assert cli("users", "remove", "admin", "--as", "admin", "--tenant", "demo").exit_code == 2


# assets -------------------------------------------------------------------------------------------


def test_assets_add_list_remove(db: str, cli: Cli) -> None:
    """admin adds an ssh asset with tags; it is listed; removing it leaves the demo's own (localhost, lab-1..3)."""
    added = cli(
        "assets", "add", "web-01", "--connection", "ssh", "--host", "10.0.0.5", "--port", "2222",
        "--tag", "web", "--tag", "prod", "--credential-ref", "demo_token", "--as", "admin", "--tenant", "demo",
    )  # fmt: skip
    assert added.exit_code == 0, added.stderr
    assets = {a["name"]: a for a in ok_json(cli("assets", "list", "--as", "alice", "--json"))["assets"]}
    assert set(assets) == {"localhost", "lab-1", "lab-2", "lab-3", "web-01"}
    web = assets["web-01"]
    assert (web["connection"], web["host"], web["port"], web["tags"], web["credential_ref"]) == (
        "ssh", "10.0.0.5", 2222, ["prod", "web"], "demo_token",
    )  # fmt: skip
    assert "web-01" in cli("assets", "list", "--as", "alice").stdout
    assert cli("assets", "remove", "web-01", "--as", "admin", "--tenant", "demo").exit_code == 0
    listed = [a["name"] for a in ok_json(cli("assets", "list", "--as", "alice", "--json"))["assets"]]
    assert listed == ["lab-1", "lab-2", "lab-3", "localhost"]


def test_assets_add_errors_map_to_exit_codes(sqlite_db: str, cli: Cli) -> None:
    """ssh without host is 2 (naming host); a taken name is 5; a bad connection is 2; an operator is 3."""
    no_host = cli("assets", "add", "web-02", "--connection", "ssh", "--as", "admin", "--tenant", "demo")
    assert no_host.exit_code == 2
    assert "error: host:" in no_host.stderr
    assert (
        cli("assets", "add", "localhost", "--connection", "local", "--as", "admin", "--tenant", "demo").exit_code == 5
    )
    assert cli("assets", "add", "x", "--connection", "ftp", "--as", "admin", "--tenant", "demo").exit_code == 2
    assert cli("assets", "add", "x", "--connection", "local", "--as", "alice").exit_code == 3


def test_assets_remove_unknown_or_in_use(sqlite_db: str, cli: Cli, plan_file: PlanFile) -> None:
    """An unknown asset is 4; one that an execution targets is 5."""
    assert cli("assets", "remove", "nope", "--as", "admin", "--tenant", "demo").exit_code == 4
    assert cli("submit", plan_file(READ_PLAN), "--as", "alice").exit_code == 0
    assert cli("assets", "remove", "localhost", "--as", "admin", "--tenant", "demo").exit_code == 5


# tenant mode, policies ----------------------------------------------------------------------------


def test_tenant_mode_needs_admin_and_validates_the_level(sqlite_db: str, cli: Cli) -> None:
    """alice may not switch modes (3); a live level above 3 is invalid (2); admin sets dry_run (0)."""
    assert cli("tenant", "mode", "demo", "off", "--as", "alice").exit_code == 3
    assert cli("tenant", "mode", "demo", "live", "--max-live-level", "7", "--as", "admin").exit_code == 2
    result = cli("tenant", "mode", "demo", "dry_run", "--max-live-level", "1", "--as", "admin")
    assert result.exit_code == 0, result.stderr
    assert "mode dry_run" in result.stdout and "level 1" in result.stdout


def test_tenant_mode_dry_run_makes_new_executions_dry_runs(sqlite_db: str, cli: Cli, plan_file: PlanFile) -> None:
    """After switching demo to dry_run, a submitted execution's run_mode is dry_run."""
    assert cli("tenant", "mode", "demo", "dry_run", "--as", "admin").exit_code == 0
    data = ok_json(cli("submit", plan_file(READ_PLAN), "--as", "alice", "--json"))
    assert data["run_mode"] == "dry_run"


PRIORITY_PLAN = "name: asks-{n}\npriority: {n}\nsteps:\n  - {{name: s, action: noop, target: localhost}}\n"


def test_tenant_show_has_the_priority_cap_in_text_and_json(sqlite_db: str, cli: Cli) -> None:
    """Any member reads the settings; the cap is there beside the mode, and in `tenant mode --json` too."""
    shown = cli("tenant", "show", "demo", "--as", "dave")
    assert shown.exit_code == 0, shown.stderr
    assert "plans may request priority 0-3;" in shown.stdout
    assert ok_json(cli("tenant", "show", "demo", "--as", "dave", "--json")) == {
        "tenant": "demo", "mode": "live", "max_live_level": 3, "over_level": "dry_run", "max_priority": 3,
        "fanout_approval_targets": 10,
    }  # fmt: skip
    switched = ok_json(cli("tenant", "mode", "demo", "dry_run", "--as", "admin", "--json"))
    assert (switched["mode"], switched["max_priority"]) == ("dry_run", 3)
    assert cli("tenant", "show", "globex", "--as", "alice").exit_code == 4  # not a member there


def test_tenant_priority_cap_is_what_submit_then_allows(sqlite_db: str, cli: Cli, plan_file: PlanFile) -> None:
    """admin raises the cap to 5: a plan asking 5 is accepted, one asking 6 exits 2 naming priority; the admin
    trail has the change with the old and the new cap."""
    raised = cli("tenant", "priority-cap", "demo", "5", "--as", "admin")
    assert raised.exit_code == 0, raised.stderr
    assert "plans may request priority 0-5" in raised.stdout
    assert ok_json(cli("tenant", "show", "demo", "--as", "alice", "--json"))["max_priority"] == 5
    assert submit_json(cli, plan_file(PRIORITY_PLAN.format(n=5)), "alice", "--background")["priority"] == 7
    above = cli("submit", plan_file(PRIORITY_PLAN.format(n=6)), "--as", "alice", "--background")
    assert above.exit_code == 2
    assert "error: priority: priority 6 is above this tenant's cap of 5" in above.stderr
    trail = ok_json(cli("audit", "admin", "--as", "admin", "--tenant", "demo", "--json"))["events"]
    assert (trail[0]["action"], trail[0]["subject"], trail[0]["data"]) == ("priority_cap", "demo", {"old": 3, "new": 5})
    as_json = ok_json(cli("tenant", "priority-cap", "demo", "0", "--as", "admin", "--json"))
    assert as_json["max_priority"] == 0


@pytest.mark.parametrize(
    ("args", "code", "says"),
    [
        (["demo", "2", "--as", "alice"], 3, "needs admin"),
        (["demo", "2", "--as", "dave"], 3, "needs admin"),
        (["demo", "10", "--as", "admin"], 2, "error: max_priority: must be a whole number from 0 to 9"),
        (["--as", "admin", "--", "demo", "-1"], 2, "error: max_priority: must be a whole number from 0 to 9"),
        (["demo", "high", "--as", "admin"], 2, "Invalid value for 'N'"),
        (["nope", "2", "--as", "admin"], 4, "not found"),
    ],
)
def test_tenant_priority_cap_refusals_exit_per_the_contract(
    sqlite_db: str, cli: Cli, args: list[str], code: int, says: str
) -> None:
    """Not an admin 3, out of range or not a number 2, no such tenant 4; the cap stays 3 and nothing is traced."""
    result = cli("tenant", "priority-cap", *args)
    assert result.exit_code == code, result.output
    assert says in result.stderr
    assert ok_json(cli("tenant", "show", "demo", "--as", "admin", "--json"))["max_priority"] == 3
    assert ok_json(cli("audit", "admin", "--as", "admin", "--tenant", "demo", "--json"))["events"] == []


def test_tenant_priority_cap_help_gives_cores_bound(cli: Cli) -> None:
    """The help writes the bound out (no settings load for --help); it must be core's."""
    assert f"(0-{MAX_PRIORITY})" in cli("tenant", "priority-cap", "--help").stdout


def test_policies_list_shows_the_nine_rows(sqlite_db: str, cli: Cli) -> None:
    """policies list --json has the 9 seeded rows; the text form shows the fast/read row's numbers."""
    policies = ok_json(cli("policies", "list", "--as", "dave", "--json"))["policies"]
    assert len(policies) == 9
    fast_read = next(p for p in policies if (p["sla_class"], p["action_class"]) == ("fast", "read"))
    assert (fast_read["step_s"], fast_read["execution_s"], fast_read["max_attempts"]) == (5, 10, 3)
    text = cli("policies", "list", "--as", "dave").stdout
    assert text.splitlines()[1].split() == ["fast", "read", "5", "10", "15", "300", "3"]


def test_users_password_from_stdin_lets_the_user_sign_in(db: str, cli: Cli) -> None:
    assert cli("users", "add", "erin", "--role", "operator", "--as", "admin", "--tenant", "demo").exit_code == 0
    done = cli("users", "password", "erin", "--as", "admin", "--tenant", "demo", input="erins-password-1\n")
    assert done.exit_code == 0, done.stderr
    assert "erins-password-1" not in done.stdout + done.stderr
    assert authenticate("erin", "erins-password-1").username == "erin"
    short = cli("users", "password", "erin", "--as", "admin", "--tenant", "demo", input="short\n")
    assert short.exit_code == 2 and "password: must be at least 8 characters" in short.stderr
    assert cli("users", "password", "bob", "--as", "alice", input="bobs-new-password\n").exit_code == 3


def test_tenant_fanout_approval_sets_from_how_many_targets_a_fan_out_needs_a_level_more(
    sqlite_db: str, cli: Cli, plan_file: PlanFile
) -> None:
    """Issue 17 item 2: at the default (10) a read fan-out over the demo's three lab assets runs at level 0; with
    the threshold at 3 it needs one approval; 0 turns the rise off. Only an admin sets it, within 0-200, audited."""
    lab = "steps:\n  - {name: df, action: shell, targets: {tags: [lab]}, params: {command: [df]}}\n"
    assert submit_json(cli, plan_file("name: lab-1\n" + lab), "alice", "--background")["approval_level"] == 0
    lowered = cli("tenant", "fanout-approval", "demo", "3", "--as", "admin")
    assert lowered.exit_code == 0, lowered.stderr
    assert "a fan-out to 3+ targets needs a level more" in lowered.stdout
    raised = submit_json(cli, plan_file("name: lab-2\n" + lab), "alice")
    assert (raised["approval_level"], raised["status"], len(raised["steps"])) == (1, "pending_approval", 3)
    off = ok_json(cli("tenant", "fanout-approval", "demo", "0", "--as", "admin", "--json"))
    assert off["fanout_approval_targets"] == 0
    assert submit_json(cli, plan_file("name: lab-3\n" + lab), "alice", "--background")["approval_level"] == 0
    assert cli("tenant", "fanout-approval", "demo", "4", "--as", "alice").exit_code == 3
    refused = cli("tenant", "fanout-approval", "demo", "201", "--as", "admin")
    assert refused.exit_code == 2 and "fanout_approval_targets" in refused.stderr
    trail = ok_json(cli("audit", "admin", "--as", "admin", "--tenant", "demo", "--json"))["events"]
    assert [(e["action"], e["data"]) for e in trail if e["action"] == "fanout_approval_targets"] == [
        ("fanout_approval_targets", {"old": 3, "new": 0}),
        ("fanout_approval_targets", {"old": 10, "new": 3}),
    ]
